#!/usr/bin/env bash
# Set up cloudctl in ./.venv on a fresh Debian machine (run as root or with sudo for apt).
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
need_apt=()
command -v "$PY" >/dev/null 2>&1 || need_apt+=(python3)
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then need_apt+=(python3-venv); fi
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

"$PY" - <<'PYCHECK'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"setup: cloudctl needs Python 3.10 or newer, found {sys.version.split()[0]}")
PYCHECK

if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel 2>&1 \
    | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 \
    | grep -v '^WARNING: Location' || true
.venv/bin/cloudctl --version >/dev/null
echo "setup: ready — activate with 'source .venv/bin/activate' or call .venv/bin/cloudctl" >&2
