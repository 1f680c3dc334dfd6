"""An independent, count-based EASY backfilling simulator (nodes are interchangeable).

It is the textbook algorithm (Lifka's EASY as in AccaSim/CQSim), written separately from
cloudctl's scheduler so the two can check each other on SWF traces.
"""

from __future__ import annotations

import heapq
import sys


def easy(jobs: list[tuple[int, int, int, int, int]], nodes: int) -> dict[str, float]:
    """jobs: (id, submit, nodes, estimate, run) sorted by submit; run <= estimate."""
    queue: list[tuple[int, int, int, int, int]] = []
    running: list[tuple[int, int, int]] = []  # (end, estimated end, nodes)
    free = nodes
    waits = []
    slowdowns = []
    busy = 0
    last_end = 0
    i = 0
    n = len(jobs)
    while i < n or queue or running:
        t = min(jobs[i][1] if i < n else 1 << 62, running[0][0] if running else 1 << 62)
        while running and running[0][0] <= t:
            _, _, k = heapq.heappop(running)
            free += k
        while i < n and jobs[i][1] <= t:
            queue.append(jobs[i])
            i += 1

        def start(job: tuple[int, int, int, int, int], t: int = t) -> None:
            nonlocal free, busy, last_end
            _, submit, k, est, run = job
            free -= k
            heapq.heappush(running, (t + run, t + est, k))
            waits.append(t - submit)
            slowdowns.append(max(1.0, (t + run - submit) / max(run, 10)))
            busy += k * run
            last_end = max(last_end, t + run)

        while queue and queue[0][2] <= free:
            start(queue.pop(0))
        if queue:
            head = queue[0]
            avail = free
            shadow = t
            for _, est_end, k in sorted((r[1], r[1], r[2]) for r in running):
                if avail >= head[2]:
                    break
                avail += k
                shadow = est_end
            extra = avail - head[2]
            rest = []
            for job in queue[1:]:
                if job[2] <= free and (t + job[3] <= shadow or job[2] <= extra):
                    if t + job[3] > shadow:
                        extra -= job[2]
                    start(job)
                else:
                    rest.append(job)
            queue = [head] + rest
    first = jobs[0][1]
    return {"mean_wait_s": sum(waits) / len(waits),
            "mean_bounded_slowdown": sum(slowdowns) / len(slowdowns),
            "utilization": busy / (nodes * (last_end - first))}


def load_swf(path: str, estimates: str) -> tuple[list[tuple[int, int, int, int, int]], int]:
    jobs = []
    nodes = 0
    for line in open(path):
        if line.startswith(";"):
            if "MaxNodes" in line:
                nodes = int(line.split(":")[1])
            continue
        f = line.split()
        if not f:
            continue
        k = int(f[7]) if int(f[7]) > 0 else int(f[4])
        run = int(f[3])
        req = int(f[8])
        if k <= 0 or run <= 0:
            continue
        est = req if estimates == "requested" and req > 0 else run
        jobs.append((int(f[0]), int(f[1]), k, est, min(run, est)))
    jobs.sort(key=lambda j: j[1])
    return jobs, nodes


if __name__ == "__main__":
    jobs, nodes = load_swf(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "requested")
    print(easy(jobs, nodes))
