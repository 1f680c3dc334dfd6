#!/usr/bin/env bash
# Set up cloudctl in ./.venv on a fresh Debian machine (run as root or with sudo for apt).
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
need_apt=()
command -v "$PY" >/dev/null 2>&1 || need_apt+=(python3)
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then need_apt+=(python3-venv); fi
# Python's C headers: libvirt-python and the scheduler's mypyc build (setup.py) compile against
# them. Without them (or gcc) the scheduler installs as pure Python, about half as fast.
if ! "$PY" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        >/dev/null 2>&1; then
    need_apt+=(python3-dev)
fi
# libvirt-python has no wheels: it compiles against libvirt's headers. libvirt0 ships the
# RelaxNG schemas (/usr/share/libvirt/schemas) the tests validate domain XML against;
# qemu-img (qemu-utils) makes VM disks; openssh-server (sshd, ssh-keygen) and iproute2
# (network namespaces) serve the SSH transfer tests' throwaway hosts.
for pkg in libvirt-dev libvirt0 pkg-config gcc qemu-utils openssh-server openssh-client iproute2; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_apt+=("$pkg")
done
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
pip_install() {
    # pip's warnings about the venv location are noise; its failures are not.
    .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 \
        | { grep -v '^WARNING: Location' || true; }
    return "${PIPESTATUS[0]}"
}
pip_install --upgrade pip setuptools wheel
pip_install -e '.[test]'
# pip byte-compiles what `pip install .` installs, but not an editable install's sources:
# compile them once, so that no command recompiles every module it imports on each start
# (where PYTHONDONTWRITEBYTECODE is set, Python would never cache them itself).
.venv/bin/python -m compileall -q cloudctl drivers policies >/dev/null
.venv/bin/cloudctl --version >/dev/null
echo "setup: ready — activate with 'source .venv/bin/activate' or call .venv/bin/cloudctl" >&2
