"""`lease list --json` prints the JSON the store keeps with each lease: it must be what the
CLI's own renderer makes of the lease, and a store from before that column gets it filled
by its migration."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cloud_helpers import in_process, make_cloud

from cloudctl.app.leases import LeaseSpec
from cloudctl.errors import Conflict, Unsatisfiable
from cloudctl.scheduler.model import LeaseType
from cloudctl.views import lease_view

NOW = 1_800_000_000


def _listed(env: dict[str, str]) -> tuple[list[object], list[object]]:
    with in_process(env) as cloud:
        rendered = [lease_view(r) for r in cloud.leases.all()]
        stored = [json.loads(text) for text in cloud.leases.list_json()]
    return rendered, stored


def test_stored_list_json_is_the_cli_rendering_and_migrates(tmp_path: Path) -> None:
    env = make_cloud(tmp_path, [("node-1", 4, 8192), ("node-2", 4, 8192)], now=NOW).environ()
    specs = [LeaseSpec(LeaseType.BE, 3600, 2, 2, 1024, name="batch"),
             LeaseSpec(LeaseType.AR, 1800, 2, 4, 2048, start=NOW + 600, name="demo"),
             LeaseSpec(LeaseType.IM, 600, 1, 1, 512),
             LeaseSpec(LeaseType.AR, 1800, 8, 4, 2048, start=NOW + 900),  # rejected
             LeaseSpec(LeaseType.BE, 7200, 1, 4, 4096, preemptible=False)]
    for step, spec in enumerate(specs):
        env["CLOUDCTL_NOW"] = str(NOW + 60 * step)
        with in_process(env) as cloud:
            try:
                cloud.leases.request(spec)
            except Unsatisfiable:
                pass
    env["CLOUDCTL_NOW"] = str(NOW + 700)
    with in_process(env) as cloud:
        cloud.leases.cancel(1)
    rendered, stored = _listed(env)
    assert len(rendered) == 5 and stored == rendered
    assert {lease["state"] for lease in stored} >= {"cancelled", "rejected", "active"}

    db = sqlite3.connect(env["CLOUDCTL_DB"])
    with db:  # the store as it was before the column
        db.execute("ALTER TABLE leases DROP COLUMN list_json")
        db.execute("DELETE FROM schema_migrations WHERE name = '0005-lease-list-json'")
    db.close()
    with in_process(env) as cloud, pytest.raises(Conflict, match="cloudctl db migrate"):
        cloud.leases.all()
    with in_process(env) as cloud:
        assert cloud.admin.db_migrate() == ["0005-lease-list-json"]
    assert _listed(env) == (rendered, rendered)
