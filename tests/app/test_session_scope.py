"""An advance reservation is decided on a session that loads only the leases around its
window; what it decides and what it saves must be exactly what the whole state would give."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cloud_helpers import in_process, make_cloud

import cloudctl.session
from cloudctl.app.leases import LeaseSpec
from cloudctl.errors import Unsatisfiable
from cloudctl.scheduler.model import LeaseType
from cloudctl.store.sqlite import LeaseTable

pytestmark = pytest.mark.slow  # hundreds of requests per case

NOW = 1_800_000_000


def _busy_cloud(tmp: Path, seed: int, suspension: str) -> tuple[dict[str, str], int]:
    """A cloud of 16 hosts after a few hundred AR, BE and IM requests over a day and a half:
    leases running, suspended, queued and reserved far ahead."""
    tmp.mkdir()
    (tmp / "config.toml").write_text(f'[scheduler]\nsuspension = "{suspension}"\n')
    env = make_cloud(tmp, [(f"node-{i}", 8, 16384) for i in range(16)], now=NOW).environ()
    rng = random.Random(seed)
    t = NOW
    for _ in range(240):
        t += rng.randrange(0, 600)
        kind = rng.choice([LeaseType.BE, LeaseType.BE, LeaseType.AR, LeaseType.IM])
        start = t + rng.randrange(300, 3 * 86400) if kind is LeaseType.AR else None
        env["CLOUDCTL_NOW"] = str(t)
        with in_process(env) as cloud:
            try:
                cloud.leases.request(LeaseSpec(kind, rng.choice([1800, 3600, 7200, 14400]),
                                              rng.randint(1, 4), rng.choice([1, 2, 4]),
                                              rng.choice([1024, 4096]), start))
            except Unsatisfiable:
                pass
    return env, t


def _dump(db: Path) -> list[Any]:
    con = sqlite3.connect(db)
    try:
        tables = [con.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                  for t in ("leases", "reservations", "vms", "meta")]
        tables.append(con.execute("SELECT time, entity, from_state, to_state, reason "
                                  "FROM events ORDER BY id").fetchall())
        return tables
    finally:
        con.close()


def _whole(store: Any, config: Any, now: int, act: Any, *, window: Any = None,
           save: bool = True) -> Any:
    return _decide(store, config, now, act, save=save)


_decide = cloudctl.session.decide


@pytest.mark.parametrize(("seed", "suspension"), [(1, "none"), (2, "all"), (5, "all")])
def test_an_ar_decided_around_its_window_is_decided_as_on_the_whole_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, suspension: str) -> None:
    env, now = _busy_cloud(tmp_path / "base", seed, suspension)
    base = Path(env["CLOUDCTL_DB"])
    whole_loads = []
    live_leases = LeaseTable.live

    def counted(leases: LeaseTable) -> Any:
        whole_loads.append(1)
        return live_leases(leases)

    monkeypatch.setattr(LeaseTable, "live", counted)
    rng = random.Random(seed)
    requests = 40
    for i in range(requests):
        # Near windows meet running and queued leases (and preempt); far ones meet few.
        start = now + rng.choice([rng.randrange(0, 4 * 3600), rng.randrange(0, 4 * 86400)])
        spec = LeaseSpec(LeaseType.AR, rng.choice([1800, 7200, 14400]), rng.randint(1, 6),
                         rng.choice([1, 2, 4, 8]), rng.choice([1024, 4096, 16384]), start)
        dry_run = i % 4 == 3
        seen = []
        for how in (_decide, _whole):
            monkeypatch.setattr(cloudctl.session, "decide", how)
            copy = tmp_path / f"copy-{how.__name__}"
            shutil.rmtree(copy, ignore_errors=True)
            copy.mkdir()
            shutil.copyfile(base, copy / "state.db")
            with in_process({**env, "CLOUDCTL_DB": str(copy / "state.db"),
                             "CLOUDCTL_NOW": str(now)}) as cloud:
                try:
                    o = cloud.leases.request(spec, dry_run=dry_run)
                    outcome: Any = (o.lease, o.decision, o.preempted, o.delayed)
                except Unsatisfiable as error:
                    outcome = str(error)
            seen.append((outcome, _dump(copy / "state.db")))
        assert seen[0] == seen[1], (i, spec, dry_run)
    # The whole state is loaded once per decision (twice per dry run: then the delays are
    # looked for) when asked to; scoped decisions load it only when they must: both kinds
    # were compared.
    decisions = requests + requests // 4
    fallbacks = len(whole_loads) - decisions
    assert 0 < fallbacks < decisions
