"""The store behind its repository protocols: the SQLite store implements every one of them
(same methods, same parameters), nothing above the store knows SQLite, and the named state
keeps the `meta` keys stores in the field already hold."""

from __future__ import annotations

import ast
import inspect
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from paths import REPO

from cloudctl.store import repositories
from cloudctl.store.db import open_store
from cloudctl.store.sqlite import SQLiteStore

ROOT = REPO
REPOSITORIES = {name: protocol for name, protocol in inspect.get_annotations(
    repositories.Store).items()}


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(value) for name, value in vars(cls).items()
            if callable(value) and not name.startswith("_")}


@pytest.fixture
def store(tmp_path: Path) -> Any:
    store = open_store(tmp_path / "state.db", create=True, check_schema=False)
    store.migrate(0)
    yield store
    store.close()


def test_the_sqlite_store_implements_every_repository(store: Any) -> None:
    assert set(REPOSITORIES) == {"hosts", "images", "transfers", "leases", "vms", "events",
                                 "clouds", "instances", "state", "moves", "lock"}
    for attribute, protocol_name in REPOSITORIES.items():
        protocol = getattr(repositories, protocol_name)
        implementation = type(getattr(store, attribute))
        for name, signature in _methods(protocol).items():
            assert hasattr(implementation, name), (attribute, name)
            found = inspect.signature(getattr(implementation, name))
            assert list(found.parameters) == list(signature.parameters), (attribute, name)
    for name, signature in _methods(repositories.Store).items():
        found = inspect.signature(getattr(SQLiteStore, name))
        assert list(found.parameters) == list(signature.parameters), name


def test_nothing_above_the_store_knows_sqlite() -> None:
    found = []
    for folder in ("cloudctl", "drivers", "policies"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.parent == ROOT / "cloudctl" / "store" and path.name == "sqlite.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(n in ("sqlite3", "cloudctl.store.sqlite") for n in names):
                    found.append(str(path.relative_to(ROOT)))
    assert found == ["cloudctl/store/db.py"]  # open_store: the one place that picks it


def test_named_state_keeps_the_stored_meta_keys(store: Any, tmp_path: Path) -> None:
    with store.write():
        assert store.state.clock() is None and store.state.next_event() is None
        store.state.set_clock(1_800_000_000)
        store.state.set_next_event(None)
        store.state.set_vm_prefix("cloudctl-lab")
        store.state.set_uid("abc123")
        store.moves.record("cloudctl-lab-2-0", {"from": "a", "to": "b", "live": True})
        store.moves.record("cloudctl-lab-1-0", {"from": "b", "to": "a", "live": False})
    raw = sqlite3.connect(tmp_path / "state.db")
    assert dict(raw.execute("SELECT key, value FROM meta")) == {
        "clock": "1800000000", "next_event": "", "vm_prefix": "cloudctl-lab", "uid": "abc123",
        "vm-migrate cloudctl-lab-2-0": '{"from": "a", "to": "b", "live": true}',
        "vm-migrate cloudctl-lab-1-0": '{"from": "b", "to": "a", "live": false}'}
    raw.close()
    with store.write():
        assert store.state.clock() == 1_800_000_000 and store.state.next_event() is None
        assert list(store.moves.intents()) == ["cloudctl-lab-1-0", "cloudctl-lab-2-0"]
        store.moves.forget("cloudctl-lab-1-0")
        store.state.set_next_event(1_800_000_600)
        assert store.moves.intents() == {"cloudctl-lab-2-0": {"from": "a", "to": "b",
                                                              "live": True}}
        assert store.state.next_event() == 1_800_000_600
        assert store.state.vm_prefix() == "cloudctl-lab" and store.state.uid() == "abc123"


def test_the_tick_lock_is_held_by_one_at_a_time(store: Any, tmp_path: Path) -> None:
    other = open_store(tmp_path / "state.db")
    try:
        with store.lock.hold(blocking=False) as holder:
            assert holder == ""
            with other.lock.hold(blocking=False) as held_by:
                assert held_by.startswith("pid ")
        with other.lock.hold(blocking=False) as holder:
            assert holder == ""
    finally:
        other.close()
