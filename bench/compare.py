"""Two checkouts' benchmarks side by side, interleaved in one run, as ratios of medians.

    .venv/bin/python bench/compare.py OTHER_CHECKOUT [--rounds 3] [--only kth,admission,...]

Each round runs `bench/run.py --quick --json --only NAME` in the other checkout, then in this
one (each with its own `.venv` and its own bench/run.py), so both see the same machine load;
the medians over the rounds are compared. Ratios above 1 mean this checkout is slower. On a
shared, noisy machine only such ratios mean anything.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/run.py's --only names, and the figure each is compared on (lower is better).
FIGURES = {"kth": "median_wall_s", "admission": "median_ms", "list": "median_ms",
           "request": "median_ms", "version": "median_ms"}


def run(checkout: Path, only: str) -> dict[str, float]:
    python = checkout / ".venv" / "bin" / "python"
    cmd = [str(python), str(checkout / "bench" / "run.py"), "--quick", "--json", "--only", only]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=checkout).stdout
    rows = [json.loads(line) for line in out.splitlines()[1:]]
    return {row["bench"]: float(row[FIGURES[only]]) for row in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the checkout to compare with (its .venv set up)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(FIGURES))
    args = parser.parse_args()
    names = args.only.split(",")
    for checkout in (args.other.resolve(), ROOT):
        # As scripts/setup.sh does: with PYTHONDONTWRITEBYTECODE set, stale bytecode would
        # be compiled again at every start and charged to the benchmark.
        subprocess.run([str(checkout / ".venv" / "bin" / "python"), "-m", "compileall", "-q",
                        "cloudctl", "drivers", "policies"], cwd=checkout, check=True,
                       stdout=subprocess.DEVNULL)
    seen: dict[str, dict[str, list[float]]] = {}
    for round_ in range(args.rounds):
        for name in names:
            for side, checkout in (("other", args.other.resolve()), ("this", ROOT)):
                for bench, value in run(checkout, name).items():
                    seen.setdefault(bench, {"other": [], "this": []})[side].append(value)
        print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    print(f"{'benchmark':58} {'other':>10} {'this':>10} {'this/other':>10}")
    for bench, sides in seen.items():
        before, after = statistics.median(sides["other"]), statistics.median(sides["this"])
        print(f"{bench:58} {before:10.3f} {after:10.3f} {after / before:10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
