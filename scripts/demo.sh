#!/usr/bin/env bash
# Set up cloudctl and run its main job on the embedded defaults: replay Haizea's preemption
# scenario to the second, then a month of SDSC Blue Horizon with injected advance
# reservations, and print what happened.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CLOUDCTL=.venv/bin/cloudctl
TRACES=${CLOUDCTL_TRACES:-../shared/traces}
out=${CLOUDCTL_DEMO_DIR:-$(mktemp -d)}
mkdir -p "$out"

echo "== Haizea's preemption scenario (4 nodes; an AR preempts a running best-effort lease)"
$CLOUDCTL simulate "$TRACES/haizea/scenarios/preemption.lwf" \
    --enactment-overhead 2 --override-suspend-time 0 --resume-rate 32 \
    --start 2026-01-01T13:00:00Z --per-lease "$out/preemption.jsonl" --plot "$out/preemption.svg"
echo "-- per lease:"
cat "$out/preemption.jsonl"

echo
echo "== 30 days of SDSC Blue Horizon (144 nodes) with injected advance reservations"
$CLOUDCTL simulate "$TRACES/blue/30days.swf" --nodes 144 \
    --inject "$TRACES/blue/injected-30days/work_10-dur_3h-size_2medium.lwf" \
    --per-lease "$out/blue.jsonl" --plot "$out/blue.png"
echo
echo "schedules and plots written to $out"
