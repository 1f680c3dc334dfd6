"""Schedule digests: a fixed list of simulations, each lease's record hashed.

    .venv/bin/python bench/digests.py            # compare with bench/digests.json (exit 1: changed)
    .venv/bin/python bench/digests.py --write    # record the current schedules as the reference
    .venv/bin/python bench/digests.py --only kth # the runs whose name contains "kth"

Every run is `cloudctl simulate ... --per-lease FILE`; its digest is the SHA-256 of FILE (every
lease's state, hosts, and times of every run, suspension, resumption and transfer). A change
of a digest means a change of some schedule: a move of code must leave them all alone, a
change of the scheduler says which ones it meant to change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces"
KTH = str(TRACES / "kth" / "KTH-SP2-1996-2.1-cln.swf")
BLUE = [str(TRACES / "blue" / "30days.swf"), "--nodes", "144", "--inject",
        str(TRACES / "blue" / "injected-30days" / "work_10-dur_3h-size_2medium.lwf")]
MULTI = [str(TRACES / "haizea" / "multi" / "withprematureend.lwf"), "--nodes", "4"]
# The same with Haizea's first injection set: 13 ARs that preempt, so suspension, migration
# and the transfer modes matter.
MULTI_AR = [*MULTI, "--inject", str(TRACES / "haizea" / "multi" / "inj1.lwf")]
BLUE_1000 = [str(TRACES / "blue" / "1000requests.swf"), "--nodes", "144"]
REFERENCE = Path(__file__).with_name("digests.json")

RUNS: dict[str, list[str]] = {
    "kth-easy-user": [KTH, "--backfilling", "easy", "--estimates", "requested"],
    "kth-easy-perfect": [KTH, "--backfilling", "easy", "--estimates", "actual"],
    "kth-conservative": [KTH, "--backfilling", "conservative"],
    "kth-4-pack": [KTH, "--backfilling", "4", "--host-score-policy", "pack"],
    "blue-ar-suspend-all": [*BLUE, "--suspension", "all"],
    "blue-ar-suspend-none": [*BLUE, "--suspension", "none"],
    "blue-ar-pack-conservative": [*BLUE, "--host-score-policy", "pack",
                                  "--backfilling", "conservative"],
    "blue-ar-global-migration": [*BLUE, "--suspend-exclusion", "global", "--migration", "yes"],
    "multi-unicast-migration": [*MULTI, "--image-transfer", "unicast", "--migration", "yes"],
    "multi-multicast-global": [*MULTI, "--image-transfer", "multicast",
                               "--suspend-exclusion", "global"],
    "multi-ar-unicast-migration": [*MULTI_AR, "--image-transfer", "unicast",
                                   "--migration", "yes"],
    "multi-ar-multicast-global": [*MULTI_AR, "--image-transfer", "multicast",
                                  "--suspend-exclusion", "global"],
    "blue1000-multicast-conservative": [*BLUE_1000, "--image-transfer", "multicast",
                                        "--backfilling", "conservative"],
}


def cloudctl() -> list[str]:
    exe = ROOT / ".venv" / "bin" / "cloudctl"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "cloudctl"]


def digest(name: str) -> tuple[str, str, int, float]:
    """(name, SHA-256 of the per-lease records, number of leases, wall seconds) of one run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "leases.jsonl"
        cmd = [*cloudctl(), "simulate", *RUNS[name], "--per-lease", str(out), "--json"]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"digests: {name} failed ({proc.returncode}): {proc.stderr.strip()}")
        data = out.read_bytes()
        return name, hashlib.sha256(data).hexdigest(), data.count(b"\n"), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record these as the reference")
    parser.add_argument("--only", default="", help="runs whose name contains this")
    parser.add_argument("--jobs", type=int, default=2, help="simulations at once (2)")
    args = parser.parse_args()
    names = [n for n in RUNS if args.only in n]
    with ThreadPoolExecutor(args.jobs) as pool:
        found = {name: (sha, count, wall) for name, sha, count, wall in pool.map(digest, names)}
    reference = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    changed = 0
    for name in names:
        sha, count, wall = found[name]
        before = reference.get(name, {}).get("sha256")
        mark = "new" if before is None else ("same" if before == sha else "CHANGED")
        changed += mark == "CHANGED"
        print(f"{mark:8} {name:34} {count:6} leases  {sha[:16]}  {wall:6.1f} s", flush=True)
    if args.write:
        reference.update({name: {"sha256": sha, "leases": count, "args": RUNS[name]}
                          for name, (sha, count, _) in found.items()})
        # Trace paths are stored relative to the shared directory, so any checkout compares.
        text = json.dumps(reference, indent=2, sort_keys=True).replace(str(TRACES), "TRACES")
        REFERENCE.write_text(text + "\n")
        return 0
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
