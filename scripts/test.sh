#!/usr/bin/env bash
# Set up everything the test suite needs, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" -eq 0 ]; then
    # Real libvirt + QEMU for tests/real and the contract suite's qemu case. The daemons' first
    # QEMU probe (~8 s) and the guest build (~4 s) overlap; apt runs first, alone.
    began=$SECONDS
    bash scripts/real-libvirt.sh install
    bash scripts/real-libvirt.sh start &
    daemons=$!
    bash scripts/build-guest.sh
    wait "$daemons"
    echo "test: libvirtd and the tiny guest ready in $((SECONDS - began)) s" >&2
else
    echo "test: not root, so no real libvirtd: the real-QEMU tests will skip" >&2
fi
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "test: pytest collected no tests — that is a failure here" >&2
    exit 1
fi
exit "$status"
