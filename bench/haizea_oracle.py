"""Replay Haizea 1.0's recorded runs (../shared/haizea-oracle) and count the leases that match.

    .venv/bin/python bench/haizea_oracle.py                      # --profile haizea-1.0
    .venv/bin/python bench/haizea_oracle.py --profile cloudctl   # cloudctl's defaults
    .venv/bin/python bench/haizea_oracle.py --only migrate -v    # the differing leases too

A lease matches when its final state, first start and end are Haizea's to the second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloudctl.sim.oracle import compare, load_run, replay  # noqa: E402

SHARED = ROOT.parent / "shared"
ORACLE = SHARED / "haizea-oracle"
TRACES = SHARED / "traces"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="haizea-1.0")
    parser.add_argument("--only", default="", help="run files whose name contains this")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--dict-order", action="store_true",
                        help="queue leases of one step in Haizea's recorded order (Q8)")
    args = parser.parse_args()
    files = sorted(p for p in ORACLE.glob("*.json")
                   if p.name != "summary.json" and args.only in p.name)
    exact = 0
    for path in files:
        run = load_run(path)
        diffs = compare(run, replay(run, TRACES, args.profile, args.dict_order))
        n = len(run["leases"])
        exact += not diffs
        print(f"{'same' if not diffs else 'DIFF':4}  {n - len(diffs):4}/{n:<4} {path.stem}")
        if args.verbose:
            for line in diffs[:10]:
                print(f"        {line}")
    print(f"{exact}/{len(files)} runs identical for every lease")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
