"""Opening the state store: the one place that chooses its implementation (today SQLite).
Everything above the store sees only the protocols of `cloudctl.store.repositories`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from cloudctl.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from cloudctl.store.repositories import Store


def open_store(path: str | os.PathLike[str], *, create: bool = False,
               check_schema: bool = True,
               lock_path: str | os.PathLike[str] | None = None) -> Store:
    """The store at `path` (created when `create`), checked to need no migration unless
    `check_schema` is False; its tick lock at `lock_path` (default: beside the file)."""
    return SQLiteStore(path, create=create, check_schema=check_schema, lock_path=lock_path)
