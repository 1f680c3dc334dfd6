#!/usr/bin/env bash
# The demo's operating steps (scripts/demo.sh) with --json, printed in order: run it with two
# builds and diff, to show that a change left every output alone (times aside).
#   bash bench/demo_json.sh [CLOUDCTL] > out.txt
# Wall-clock times (what `init` and `host add` record, which the demo does not fix) are
# replaced by WALL.
set -uo pipefail
CLOUDCTL=${1:-.venv/bin/cloudctl}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export CLOUDCTL_DB="$out/state.db" CLOUDCTL_CONFIG="$out/config.toml" NO_COLOR=1
at() { CLOUDCTL_NOW="2026-11-23T$1:00Z" "${@:2}"; }
run() { echo "\$ ${*/#$CLOUDCTL/cloudctl}"; "$@" 2>&1; echo "exit $?"; }
today=$(date -u +%Y-%m-%d)
now=$(date +%s)
{
run "$CLOUDCTL" init --json
run "$CLOUDCTL" host add node-1 --cpus 4 --memory 8192 --json
run "$CLOUDCTL" host add node-2 --cpus 4 --memory 8192 --json
run "$CLOUDCTL" host list --json
run at 13:00 "$CLOUDCTL" lease request --type be --name batch --duration 3h --nodes 2 --cpus 4 \
    --memory 4096 --json
run at 13:00 "$CLOUDCTL" tick --json
run at 13:30 "$CLOUDCTL" lease request --type ar --name urgent --start 2026-11-23T14:00:00Z \
    --duration 1h --nodes 1 --cpus 4 --memory 4096 --dry-run --json
run at 13:30 "$CLOUDCTL" lease request --type ar --name urgent --start 2026-11-23T14:00:00Z \
    --duration 1h --nodes 1 --cpus 4 --memory 4096 --json
for t in 13:58 14:00 15:00 17:00 17:30; do
    run at "$t" "$CLOUDCTL" tick --json
done
run at 17:30 "$CLOUDCTL" schedule show --from 2026-11-23T13:00:00Z --to 2026-11-23T17:30:00Z \
    --json
run at 17:30 "$CLOUDCTL" lease show 1 --json
run at 17:30 "$CLOUDCTL" lease show 2 --json
run at 17:30 "$CLOUDCTL" lease explain 1 --json
run at 17:30 "$CLOUDCTL" lease list --json
run at 17:30 "$CLOUDCTL" lease list
run at 17:30 "$CLOUDCTL" lease list --state preparing --json
run at 17:30 "$CLOUDCTL" vm list --all --json
run at 17:30 "$CLOUDCTL" host show node-1 --json
run at 17:30 "$CLOUDCTL" lease show 99 --json
run at 17:30 "$CLOUDCTL" db status --json
} | sed -E "s#$out#OUT#g; s#$CLOUDCTL#cloudctl#g; s/${today}T[0-9:]{8}Z/WALL/g; s/${now:0:6}[0-9]{4}/WALL/g"
