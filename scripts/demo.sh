#!/usr/bin/env bash
# Set up cloudctl and run its main job on the embedded defaults (SQLite store, libvirt's test
# driver): build a two-host cloud, run a best-effort lease, let an advance reservation
# preempt it, tick through the afternoon, and show the schedule and both leases' stories.
# Then replay a month of SDSC Blue Horizon with injected ARs through the same scheduler.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CLOUDCTL=.venv/bin/cloudctl
TRACES=${CLOUDCTL_TRACES:-../shared/traces}
out=${CLOUDCTL_DEMO_DIR:-$(mktemp -d)}
mkdir -p "$out"
# A private store and config, so the demo never touches yours; the clock is stepped by hand
# (CLOUDCTL_NOW) so an afternoon passes in seconds.
export CLOUDCTL_DB="$out/state.db" CLOUDCTL_CONFIG="$out/config.toml"
at() { CLOUDCTL_NOW="2026-11-23T$1:00Z" "${@:2}"; }
step() { echo; echo "-- $*"; }

echo "== A private cloud on libvirt's test driver, in $out"
rm -f "$out/state.db" "$out/state.db-wal" "$out/state.db-shm"; rm -rf "$out/state.d"
$CLOUDCTL init
$CLOUDCTL host add node-1 --cpus 4 --memory 8192
$CLOUDCTL host add node-2 --cpus 4 --memory 8192
$CLOUDCTL host list

step "13:00 a best-effort lease: 2 VMs x 4 CPUs for 3 hours"
at 13:00 $CLOUDCTL lease request --type be --name batch --duration 3h --nodes 2 --cpus 4 \
    --memory 4096
at 13:00 $CLOUDCTL tick

step "13:30 what would an advance reservation at 14:00 do? (--dry-run changes nothing)"
at 13:30 $CLOUDCTL lease request --type ar --name urgent --start 2026-11-23T14:00:00Z \
    --duration 1h --nodes 1 --cpus 4 --memory 4096 --dry-run
step "13:30 ask for it"
at 13:30 $CLOUDCTL lease request --type ar --name urgent --start 2026-11-23T14:00:00Z \
    --duration 1h --nodes 1 --cpus 4 --memory 4096

for t in 13:58 14:00 15:00 17:00 17:30; do
    step "$t tick"
    at "$t" $CLOUDCTL tick
done

step "the schedule"
at 17:30 $CLOUDCTL schedule show --from 2026-11-23T13:00:00Z --to 2026-11-23T17:30:00Z \
    --width 54 --svg "$out/schedule.svg"
step "lease 1 (batch), its VMs and its story"
at 17:30 $CLOUDCTL lease show 1
step "lease 2 (urgent)"
at 17:30 $CLOUDCTL lease show 2
step "as scripts see it"
at 17:30 $CLOUDCTL lease list --json

echo
echo "== 30 days of SDSC Blue Horizon (144 nodes) with injected advance reservations"
$CLOUDCTL simulate "$TRACES/blue/30days.swf" --nodes 144 \
    --inject "$TRACES/blue/injected-30days/work_10-dur_3h-size_2medium.lwf" \
    --per-lease "$out/blue.jsonl" --plot "$out/blue.png"
echo
echo "store, schedule and plots in $out"
