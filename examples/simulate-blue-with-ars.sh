#!/usr/bin/env bash
# What do advance reservations cost best-effort users? Replay 30 days of SDSC Blue Horizon
# with and without one set of injected ARs, with suspension and without.
set -euo pipefail
T=${TRACES:-../shared/traces}
for suspension in all none; do
  for inject in "" "--inject $T/blue/injected-30days/work_10-dur_3h-size_2medium.lwf"; do
    printf '%-5s %-8s ' "$suspension" "${inject:+with-ARs}"
    cloudctl simulate "$T/blue/30days.swf" --nodes 144 --suspension "$suspension" $inject --json \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["all_best_effort_s"], d["mean_wait_s"], d["preemptions"])'
  done
done
