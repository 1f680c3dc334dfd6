"""The SQLite state store: one file; the only module that speaks SQL (or knows SQLite).

The repositories of `cloudctl.store.repositories` as tables on one connection (`HostTable`,
`LeaseTable`, ...; the `meta` table behind `MetaState` and `MoveIntents`), the tick lock as a
file lock beside the store, the schema and its migrations.

WAL so readers never wait for a writer, foreign keys on, a busy timeout so that concurrent
commands queue instead of failing, and write transactions that take the lock up front
(`BEGIN IMMEDIATE`) so a read-modify-write can never be overtaken. Migrations are named and
each is applied in one transaction together with its record.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudctl.domain import STEP_STARTED
from cloudctl.errors import BackendError, Conflict, NotFound
from cloudctl.store.records import (
    CloudRecord,
    EventRecord,
    HostRecord,
    ImageRecord,
    InstanceRecord,
    LeaseRecord,
    ReservationRecord,
    TransferRecord,
    VMRecord,
)

if TYPE_CHECKING:
    from cloudctl.store import repositories

BUSY_TIMEOUT_MS = 60_000

# A lease as `cloudctl lease list --json` printed it when migration 0005 added the kept list
# text (`leases.list_json`) and filled it for the leases already stored. Since then the text is
# `cloudctl.views.lease_list_text` of the lease, handed to `leases.save` by whoever saves it.
_ISO = "strftime('%Y-%m-%dT%H:%M:%SZ', {}, 'unixepoch')"
LEASE_LIST_JSON = (
    "json_object('id', id, 'name', name, 'type', type, 'state', state, "
    f"'start', {_ISO.format('start')}, 'end', {_ISO.format('end')}, "
    "'duration_s', duration, 'nodes', nodes, 'cpus', cpus, 'memory_mib', memory_mib, "
    "'image', image, 'preemptible', json(CASE WHEN preemptible THEN 'true' "
    "ELSE 'false' END), 'hosts', json(hosts), "
    f"'submitted', {_ISO.format('submitted')}, "
    f"'start_requested', {_ISO.format('start_req')}, 'remaining_s', remaining, "
    "'preempted', preempted, 'reason', reason, "
    "'burst', json(coalesce(json_extract(history, '$.burst'), 'null')))")

MIGRATIONS: list[tuple[str, str]] = [
    ("0001-initial", """
CREATE TABLE hosts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    cpus INTEGER NOT NULL CHECK (cpus > 0),
    memory_mib INTEGER NOT NULL CHECK (memory_mib > 0),
    disk_mib INTEGER NOT NULL CHECK (disk_mib >= 0),
    driver TEXT NOT NULL,
    uri TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'ok',
    status_reason TEXT NOT NULL DEFAULT '',
    added_at INTEGER NOT NULL
);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('qcow2', 'raw')),
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE TABLE leases (
    id INTEGER PRIMARY KEY,
    name TEXT,
    type TEXT NOT NULL CHECK (type IN ('ar', 'be', 'im')),
    state TEXT NOT NULL,
    submitted INTEGER NOT NULL,
    start_req INTEGER,
    duration INTEGER NOT NULL CHECK (duration > 0),
    nodes INTEGER NOT NULL CHECK (nodes > 0),
    cpus INTEGER NOT NULL,
    memory_mib INTEGER NOT NULL,
    disk_mib INTEGER NOT NULL,
    image TEXT,
    image_size_mib INTEGER NOT NULL DEFAULT 0,
    preemptible INTEGER NOT NULL,
    remaining INTEGER NOT NULL,
    first_start INTEGER,
    done_at INTEGER,
    preempted INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    history TEXT NOT NULL DEFAULT '{}',
    start INTEGER,
    end INTEGER,
    hosts TEXT NOT NULL DEFAULT '[]',
    final INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX leases_live ON leases (final, id);
CREATE TABLE reservations (
    lease_id INTEGER PRIMARY KEY REFERENCES leases (id) ON DELETE CASCADE,
    hosts TEXT NOT NULL,
    start INTEGER NOT NULL,
    migrated INTEGER NOT NULL,
    run_start INTEGER NOT NULL,
    run_end INTEGER NOT NULL,
    end INTEGER NOT NULL,
    post TEXT NOT NULL,
    step INTEGER NOT NULL,
    channel TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE vms (
    id INTEGER PRIMARY KEY,
    lease_id INTEGER NOT NULL REFERENCES leases (id) ON DELETE CASCADE,
    node INTEGER NOT NULL,
    name TEXT NOT NULL UNIQUE,
    host TEXT,
    state TEXT NOT NULL,
    want TEXT NOT NULL,
    save_path TEXT,
    error TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    retry_at INTEGER,
    updated_at INTEGER NOT NULL,
    UNIQUE (lease_id, node)
);
CREATE INDEX vms_host ON vms (host);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    entity TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_entity ON events (entity, id);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- The events table is append-only.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
"""),
    ("0002-vm-old-host", """
ALTER TABLE vms ADD COLUMN old_host TEXT;
"""),
    ("0003-storage", """
ALTER TABLE hosts ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE images ADD COLUMN boot TEXT NOT NULL DEFAULT '{}';
ALTER TABLE images ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN disk_path TEXT;
CREATE TABLE transfers (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    image TEXT NOT NULL,
    host TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    planned_s REAL NOT NULL,
    actual_s REAL NOT NULL,
    reused INTEGER NOT NULL
);
CREATE INDEX transfers_image ON transfers (image, id);
"""),
    ("0004-clouds", """
CREATE TABLE clouds (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    region TEXT NOT NULL,
    endpoint TEXT,
    profile TEXT,
    budget_per_month REAL,
    catalogue TEXT NOT NULL DEFAULT '[]',
    options TEXT NOT NULL DEFAULT '{}',
    enabled INTEGER NOT NULL DEFAULT 1,
    added_at INTEGER NOT NULL
);
CREATE TABLE instances (
    id INTEGER PRIMARY KEY,
    cloud TEXT NOT NULL,
    lease_id INTEGER NOT NULL,
    vm TEXT NOT NULL,
    client_token TEXT NOT NULL UNIQUE,
    instance_id TEXT,
    instance_type TEXT NOT NULL,
    price_per_hour REAL NOT NULL,
    state TEXT NOT NULL,
    launched_at INTEGER,
    ended_at INTEGER,
    private_ip TEXT,
    public_ip TEXT,
    error TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL
);
CREATE INDEX instances_vm ON instances (vm, id);
CREATE INDEX instances_cloud ON instances (cloud, launched_at);
ALTER TABLE vms ADD COLUMN cloud TEXT;
"""),
    ("0005-lease-list-json", f"""
ALTER TABLE leases ADD COLUMN list_json TEXT;
UPDATE leases SET list_json = {LEASE_LIST_JSON};
"""),
]

_LEASE_COLUMNS = ("id, name, type, state, submitted, start_req, duration, nodes, cpus, "
                  "memory_mib, disk_mib, image, image_size_mib, preemptible, remaining, "
                  "first_start, done_at, preempted, reason, history, start, end, hosts")
_VM_COLUMNS = ("v.id, v.lease_id, v.node, v.name, v.host, v.state, v.want, v.save_path, "
               "v.error, v.attempts, v.retry_at, v.updated_at, l.cpus, l.memory_mib, l.image, "
               "v.old_host, v.disk_path, v.cloud")
_HOST_COLUMNS = ("name, cpus, memory_mib, disk_mib, driver, uri, enabled, status, "
                 "status_reason, added_at, id, options")
_IMAGE_COLUMNS = "name, path, format, size_bytes, sha256, added_at, id, boot, source"
_CLOUD_COLUMNS = ("name, type, region, endpoint, profile, budget_per_month, catalogue, options, "
                  "enabled, added_at, id")
# Which live leases `LeaseTable.around` takes, by their reservation `r` (NULLs when none): begun
# (a phase carried out), due, overlapping, holding the suspend channel, or on a public cloud
# (a run there holds no host).
_AROUND = (f"(r.lease_id IS NULL OR r.step >= {STEP_STARTED} OR r.start <= :now "
           "OR (r.start < :end AND r.end > :start) OR r.channel != '[]' OR r.hosts = '[]')")
_INSTANCE_COLUMNS = ("cloud, lease_id, vm, client_token, instance_id, instance_type, "
                     "price_per_hour, state, launched_at, ended_at, private_ip, public_ip, "
                     "error, updated_at, id")


def _create_private(path: Path) -> None:
    """Create the database file (and its directory) readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)


class SQLiteStore:
    """One connection to a SQLite state store, with its repositories (`cloudctl.store.
    repositories`) as attributes."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False,
                 check_schema: bool = True,
                 lock_path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser()
        if not self.path.exists():
            if not create:
                raise NotFound(f"no state store at {self.path}; run 'cloudctl init' first")
            _create_private(self.path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None,
                                      timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as error:
            raise BackendError(f"{self.path}: not a cloudctl state store ({error})") from None
        if mode != "wal":
            raise BackendError(f"{self.path}: cannot switch the store to WAL mode ({mode})")
        self._depth = 0
        self.hosts: repositories.Hosts = HostTable(self)
        self.images: repositories.Images = ImageTable(self)
        self.transfers: repositories.Transfers = TransferTable(self)
        self.leases: repositories.Leases = LeaseTable(self)
        self.vms: repositories.VMs = VMTable(self)
        self.events: repositories.Events = EventTable(self)
        self.clouds: repositories.Clouds = CloudTable(self)
        self.instances: repositories.Instances = InstanceTable(self)
        self.state: repositories.State = MetaState(self)
        self.moves: repositories.Moves = MoveIntents(self)
        # The tick lock: a file lock beside the store (a shared store would use its own).
        self.lock: repositories.Lock = FileLock(Path(lock_path) if lock_path is not None else
                             self.path.with_name(self.path.name + ".tick.lock"))
        if check_schema and not create:
            pending = self.pending_migrations()
            if pending:
                raise Conflict(f"the store at {self.path} needs migration(s) "
                               f"{', '.join(pending)}; run 'cloudctl db migrate'")

    def close(self) -> None:
        self.db.close()

    # -- transactions ------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[SQLiteStore]:
        """A write transaction holding the database lock from its first statement."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            raise
        self._depth = 0
        self.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[SQLiteStore]:
        """A consistent snapshot for several reads (WAL: never waits for writers)."""
        if self._depth:
            yield self
            return
        self.execute("BEGIN")
        self._depth = 1
        try:
            yield self
        finally:
            self._depth = 0
            self.db.execute("ROLLBACK")

    def execute(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()
                ) -> sqlite3.Cursor:
        """One statement; an operational error (locked, disk full...) is a BackendError."""
        try:
            return self.db.execute(sql, params if isinstance(params, Mapping)
                                   else tuple(params))
        except sqlite3.OperationalError as error:
            raise BackendError(f"state store {self.path}: {error}") from None

    # -- migrations --------------------------------------------------------------------

    def applied_migrations(self) -> list[tuple[str, int]]:
        self.db.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                        "(name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)")
        rows = self.db.execute("SELECT name, applied_at FROM schema_migrations ORDER BY name")
        return [(name, at) for name, at in rows]

    def pending_migrations(self) -> list[str]:
        done = {name for name, _ in self.applied_migrations()}
        return [name for name, _ in MIGRATIONS if name not in done]

    def migrate(self, now: int) -> list[str]:
        """Apply every pending migration, each in one transaction with its record."""
        applied = []
        for name, sql in MIGRATIONS:
            with self.write():
                if name not in {n for n, _ in self.applied_migrations()}:
                    for statement in _statements(sql):
                        self.execute(statement)
                    self.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, now))
                    applied.append(name)
        return applied

    def journal_mode(self) -> str:
        return str(self.execute("PRAGMA journal_mode").fetchone()[0])

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("hosts", "images", "leases", "vms", "events"):
            out[table] = self.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return out

    def insert_named(self, table: str, kind: str, values: dict[str, Any]) -> int:
        """Insert a row whose name is unique; a duplicate name is a conflict."""
        marks = ", ".join("?" * len(values))
        try:
            cur = self.execute(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks})",
                               values.values())
        except sqlite3.IntegrityError:
            raise Conflict(f"{kind} named {values['name']!r} already exists") from None
        return int(cur.lastrowid or 0)


class _Table:
    """A repository: statements on its store's connection, inside the caller's transaction."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.execute = store.execute


class FileLock:
    """The tick lock as an `fcntl` lock on a file (beside the store unless configured)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def hold(self, blocking: bool) -> Iterator[str]:
        """One tick (or VM move) at a time across every process using this store: yields ''
        when this process holds the lock, else who holds it (without `blocking`)."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                yield holder or "another process"
                return
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
            yield ""
        finally:
            os.close(fd)


# -- meta: the store's settings, the schedule's bookkeeping, move intents ----------------

class _Meta(_Table):
    """The `meta` key/value table (its keys are part of the stored format)."""

    def _get(self, key: str) -> str | None:
        row = self.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set(self, key: str, value: str) -> None:
        self.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                     "SET value = excluded.value", (key, value))

    def _delete(self, key: str) -> None:
        self.execute("DELETE FROM meta WHERE key = ?", (key,))


class MetaState(_Meta):
    def clock(self) -> int | None:
        value = self._get("clock")
        return int(value) if value is not None else None

    def set_clock(self, now: int) -> None:
        self._set("clock", str(now))

    def next_event(self) -> int | None:
        value = self._get("next_event")  # "" when nothing is planned
        return int(value) if value else None

    def set_next_event(self, at: int | None) -> None:
        self._set("next_event", "" if at is None else str(at))

    def vm_prefix(self) -> str | None:
        return self._get("vm_prefix")

    def set_vm_prefix(self, prefix: str) -> None:
        self._set("vm_prefix", prefix)

    def uid(self) -> str | None:
        return self._get("uid")

    def set_uid(self, uid: str) -> None:
        self._set("uid", uid)


# The meta key prefix of a `vm migrate` under way (one per VM name).
_MOVE_INTENT = "vm-migrate "


class MoveIntents(_Meta):
    def record(self, vm: str, intent: dict[str, Any]) -> None:
        self._set(_MOVE_INTENT + vm, json.dumps(intent))

    def intents(self) -> dict[str, dict[str, Any]]:
        rows = self.execute("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? "
                            "ORDER BY key", (len(_MOVE_INTENT), _MOVE_INTENT))
        return {row[0][len(_MOVE_INTENT):]: json.loads(row[1]) for row in rows}

    def forget(self, vm: str) -> None:
        self._delete(_MOVE_INTENT + vm)


# -- hosts, images, transfers --------------------------------------------------------------

class HostTable(_Table):
    def add(self, host: HostRecord) -> HostRecord:
        host.id = self.store.insert_named("hosts", "a host", {
            "name": host.name, "cpus": host.cpus, "memory_mib": host.memory_mib,
            "disk_mib": host.disk_mib, "driver": host.driver, "uri": host.uri,
            "enabled": int(host.enabled), "status": host.status,
            "status_reason": host.status_reason, "added_at": host.added_at,
            "options": json.dumps(host.options, sort_keys=True)})
        return host

    def all(self) -> list[HostRecord]:
        rows = self.execute(f"SELECT {_HOST_COLUMNS} FROM hosts ORDER BY id")
        return [HostRecord(*row[:6], bool(row[6]), *row[7:11], options=_loads(row[11]))
                for row in rows]

    def get(self, name: str) -> HostRecord:
        for host in self.all():
            if host.name == name:
                return host
        raise NotFound(f"no host named {name!r}")

    def update(self, host: HostRecord) -> None:
        self.execute("UPDATE hosts SET enabled = ?, status = ?, status_reason = ? "
                     "WHERE name = ?", (int(host.enabled), host.status, host.status_reason,
                                        host.name))

    def remove(self, name: str) -> None:
        if self.execute("DELETE FROM hosts WHERE name = ?", (name,)).rowcount == 0:
            raise NotFound(f"no host named {name!r}")


class ImageTable(_Table):
    def add(self, image: ImageRecord) -> ImageRecord:
        image.id = self.store.insert_named("images", "an image", {
            "name": image.name, "path": image.path, "format": image.format,
            "size_bytes": image.size_bytes, "sha256": image.sha256,
            "added_at": image.added_at, "boot": json.dumps(image.boot, sort_keys=True),
            "source": image.source})
        return image

    def all(self) -> list[ImageRecord]:
        rows = self.execute(f"SELECT {_IMAGE_COLUMNS} FROM images ORDER BY id")
        return [_image(row) for row in rows]

    def get(self, name: str) -> ImageRecord:
        row = self.execute(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE name = ?",
                           (name,)).fetchone()
        if row is None:
            raise NotFound(f"no image named {name!r}")
        return _image(row)

    def remove(self, name: str) -> None:
        if self.execute("DELETE FROM images WHERE name = ?", (name,)).rowcount == 0:
            raise NotFound(f"no image named {name!r}")


class TransferTable(_Table):
    def add(self, transfer: TransferRecord) -> None:
        self.execute("INSERT INTO transfers (time, image, host, bytes, planned_s, actual_s, "
                     "reused) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (transfer.time, transfer.image, transfer.host, transfer.bytes,
                      transfer.planned_s, transfer.actual_s, int(transfer.reused)))

    def all(self, image: str | None = None) -> list[TransferRecord]:
        clause, params = ("WHERE image = ?", [image]) if image is not None else ("", [])
        rows = self.execute(f"SELECT time, image, host, bytes, planned_s, actual_s, reused, id "
                            f"FROM transfers {clause} ORDER BY id", params)
        return [TransferRecord(*row[:6], bool(row[6]), row[7]) for row in rows]


# -- leases --------------------------------------------------------------------------------

class LeaseTable(_Table):
    def next_id(self) -> int:
        return int(self.execute("SELECT coalesce(max(id), 0) + 1 FROM leases").fetchone()[0])

    def save(self, lease: LeaseRecord, final: bool, *, list_text: str) -> None:
        """Insert or update a lease and its current reservation; `list_text` is the lease as
        `lease list --json` prints it (`cloudctl.views.lease_list_text`)."""
        values = (lease.id, lease.name, lease.type, lease.state, lease.submitted,
                  lease.start_req, lease.duration, lease.nodes, lease.cpus, lease.memory_mib,
                  lease.disk_mib, lease.image, lease.image_size_mib, int(lease.preemptible),
                  lease.remaining, lease.first_start, lease.done_at, lease.preempted,
                  lease.reason, json.dumps(lease.history, separators=(",", ":")), lease.start,
                  lease.end, json.dumps(lease.hosts), int(final), list_text)
        marks = ", ".join("?" * len(values))
        columns = _LEASE_COLUMNS + ", final, list_json"
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns.split(", ")[1:])
        self.execute(f"INSERT INTO leases ({columns}) VALUES ({marks}) "
                     f"ON CONFLICT (id) DO UPDATE SET {updates}", values)
        r = lease.reservation
        if r is None:
            self.execute("DELETE FROM reservations WHERE lease_id = ?", (lease.id,))
        else:
            self.execute(
                "INSERT OR REPLACE INTO reservations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (lease.id, json.dumps(r.hosts), r.start, r.migrated, r.run_start, r.run_end,
                 r.end, r.post, r.step, json.dumps(r.channel)))

    def all(self, *, state: str | None = None, type: str | None = None,
            live: bool = False) -> list[LeaseRecord]:
        clause, params = _where(state=state, type=type, final=0 if live else None)
        rows = self.execute(f"SELECT {_LEASE_COLUMNS} FROM leases{clause} ORDER BY id",
                            params)
        return [_lease(row) for row in rows]

    def list_text(self, *, state: str | None = None, type: str | None = None) -> list[str]:
        """Each lease as the JSON object `cloudctl lease list --json` prints, as kept with it:
        listing ten thousand leases should not cost ten thousand Python objects."""
        clause, params = _where(state=state, type=type)
        sql = f"SELECT list_json FROM leases{clause} ORDER BY id"
        return [row[0] for row in self.execute(sql, params)]

    def live(self) -> list[LeaseRecord]:
        """Every lease not in a final state, with its reservation: what the scheduler needs."""
        return self._live("", {})

    def around(self, start: int, end: int, now: int) -> tuple[list[LeaseRecord], int | None]:
        """The live leases a decision about the window [start, end) taken at `now` can touch,
        and the earliest start among the others.

        Taken: leases with no reservation (queued, suspended), reservations overlapping the
        window, begun by `now` or with a phase already carried out, holding the suspend/resume
        channel, or on a public cloud (the burst ledger counts them). Every other reservation
        lies wholly before or after the window and has not begun, so its next event is its
        start."""
        window = {"start": start, "end": end, "now": now}
        leases = self._live(f" AND {_AROUND}", window)
        row = self.execute("SELECT min(r.start) FROM leases l JOIN reservations r "
                           f"ON r.lease_id = l.id WHERE l.final = 0 AND NOT {_AROUND}",
                           window).fetchone()
        return leases, row[0]

    def live_ids(self) -> set[int]:
        return {row[0] for row in self.execute("SELECT id FROM leases WHERE final = 0")}

    def _live(self, clause: str, params: dict[str, Any]) -> list[LeaseRecord]:
        columns = ", ".join(f"l.{c}" for c in _LEASE_COLUMNS.split(", "))
        rows = self.execute(
            f"SELECT {columns}, r.hosts, r.start, r.migrated, r.run_start, r.run_end, r.end, "
            "r.post, r.step, r.channel FROM leases l LEFT JOIN reservations r "
            f"ON r.lease_id = l.id WHERE l.final = 0{clause} ORDER BY l.id", params)
        leases = []
        width = len(_LEASE_COLUMNS.split(", "))
        for row in rows:
            lease = _lease(row[:width])
            r = row[width:]
            if r[0] is not None:
                lease.reservation = ReservationRecord(_loads(r[0]), *r[1:8], _loads(r[8]))
            leases.append(lease)
        return leases

    def get(self, lease_id: int) -> LeaseRecord:
        row = self.execute(f"SELECT {_LEASE_COLUMNS} FROM leases WHERE id = ?",
                           (lease_id,)).fetchone()
        if row is None:
            raise NotFound(f"no lease {lease_id}")
        return _lease(row)

    def using_image(self, image: str) -> list[int]:
        rows = self.execute("SELECT id FROM leases WHERE image = ? AND final = 0 ORDER BY id",
                            (image,))
        return [row[0] for row in rows]


# -- VMs -----------------------------------------------------------------------------------

class VMTable(_Table):
    def all(self, *, lease_id: int | None = None, host: str | None = None,
            live: bool = False) -> list[VMRecord]:
        where, params = [], []
        if lease_id is not None:
            where.append("v.lease_id = ?")
            params.append(lease_id)
        if host is not None:
            where.append("v.host = ?")
            params.append(host)
        if live:
            where.append("NOT (v.state = 'gone' AND v.want = 'gone')")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.execute(f"SELECT {_VM_COLUMNS} FROM vms v JOIN leases l "
                            f"ON l.id = v.lease_id{clause} ORDER BY v.lease_id, v.node", params)
        return [VMRecord(*row[1:], id=row[0]) for row in rows]

    def get(self, key: str) -> VMRecord:
        column = "v.id" if key.isdigit() else "v.name"
        row = self.execute(f"SELECT {_VM_COLUMNS} FROM vms v JOIN leases l "
                           f"ON l.id = v.lease_id WHERE {column} = ?", (key,)).fetchone()
        if row is None:
            raise NotFound(f"no VM {key!r}")
        return VMRecord(*row[1:], id=row[0])

    def save(self, vm: VMRecord) -> None:
        values = (vm.lease_id, vm.node, vm.name, vm.host, vm.state, vm.want, vm.save_path,
                  vm.error, vm.attempts, vm.retry_at, vm.updated_at, vm.old_host, vm.disk_path,
                  vm.cloud)
        if vm.id:
            self.execute("UPDATE vms SET lease_id = ?, node = ?, name = ?, host = ?, "
                         "state = ?, want = ?, save_path = ?, error = ?, attempts = ?, "
                         "retry_at = ?, updated_at = ?, old_host = ?, disk_path = ?, "
                         "cloud = ? WHERE id = ?", (*values, vm.id))
        else:
            cur = self.execute("INSERT INTO vms (lease_id, node, name, host, state, want, "
                               "save_path, error, attempts, retry_at, updated_at, old_host, "
                               "disk_path, cloud) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
            vm.id = int(cur.lastrowid or 0)

    def record_result(self, vm: VMRecord) -> None:
        """What enactment achieved; leaves `want` alone (the schedule may have moved on)."""
        self.execute("UPDATE vms SET state = ?, save_path = ?, error = ?, attempts = ?, "
                     "retry_at = ?, updated_at = ?, old_host = ?, disk_path = ? WHERE id = ?",
                     (vm.state, vm.save_path, vm.error, vm.attempts, vm.retry_at,
                      vm.updated_at, vm.old_host, vm.disk_path, vm.id))


# -- events --------------------------------------------------------------------------------

class EventTable(_Table):
    def add(self, events: Iterable[EventRecord]) -> None:
        self.store.db.executemany(
            "INSERT INTO events (time, entity, from_state, to_state, reason) "
            "VALUES (?, ?, ?, ?, ?)",
            [(e.time, e.entity, e.from_state, e.to_state, e.reason) for e in events])

    def about(self, entities: Iterable[str] | None = None,
              limit: int | None = None) -> list[EventRecord]:
        params: list[Any] = []
        clause = ""
        if entities is not None:
            names = list(entities)
            clause = f" WHERE entity IN ({', '.join('?' * len(names))})"
            params.extend(names)
        sql = f"SELECT time, entity, from_state, to_state, reason, id FROM events{clause} " \
              "ORDER BY id"
        if limit is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(limit)}) ORDER BY id"
        return [EventRecord(*row) for row in self.execute(sql, params)]


# -- clouds and their instances ------------------------------------------------------------

class CloudTable(_Table):
    def add(self, cloud: CloudRecord) -> CloudRecord:
        cloud.id = self.store.insert_named("clouds", "a cloud", {
            "name": cloud.name, "type": cloud.type, "region": cloud.region,
            "endpoint": cloud.endpoint, "profile": cloud.profile,
            "budget_per_month": cloud.budget_per_month,
            "catalogue": json.dumps(cloud.catalogue, sort_keys=True),
            "options": json.dumps(cloud.options, sort_keys=True),
            "enabled": int(cloud.enabled), "added_at": cloud.added_at})
        return cloud

    def all(self) -> list[CloudRecord]:
        rows = self.execute(f"SELECT {_CLOUD_COLUMNS} FROM clouds ORDER BY id")
        return [_cloud(row) for row in rows]

    def get(self, name: str) -> CloudRecord:
        row = self.execute(f"SELECT {_CLOUD_COLUMNS} FROM clouds WHERE name = ?",
                           (name,)).fetchone()
        if row is None:
            raise NotFound(f"no cloud named {name!r}")
        return _cloud(row)

    def remove(self, name: str) -> None:
        if self.execute("DELETE FROM clouds WHERE name = ?", (name,)).rowcount == 0:
            raise NotFound(f"no cloud named {name!r}")


class InstanceTable(_Table):
    def save(self, inst: InstanceRecord) -> InstanceRecord:
        values = {"cloud": inst.cloud, "lease_id": inst.lease_id, "vm": inst.vm,
                  "client_token": inst.client_token, "instance_id": inst.instance_id,
                  "instance_type": inst.instance_type, "price_per_hour": inst.price_per_hour,
                  "state": inst.state, "launched_at": inst.launched_at,
                  "ended_at": inst.ended_at, "private_ip": inst.private_ip,
                  "public_ip": inst.public_ip, "error": inst.error,
                  "updated_at": inst.updated_at}
        if inst.id:
            sets = ", ".join(f"{k} = ?" for k in values)
            self.execute(f"UPDATE instances SET {sets} WHERE id = ?",
                         (*values.values(), inst.id))
        else:
            marks = ", ".join("?" * len(values))
            cur = self.execute(f"INSERT INTO instances ({', '.join(values)}) "
                               f"VALUES ({marks})", values.values())
            inst.id = int(cur.lastrowid or 0)
        return inst

    def all(self, *, cloud: str | None = None, vm: str | None = None,
            lease_id: int | None = None, live: bool = False,
            since: int | None = None) -> list[InstanceRecord]:
        clause, params = _where(cloud=cloud, vm=vm, lease_id=lease_id)
        more = []
        if live:
            more.append("ended_at IS NULL")
        if since is not None:
            more.append("(ended_at IS NULL OR ended_at >= ?)")
            params.append(since)
        if more:
            clause = (clause + " AND " if clause else " WHERE ") + " AND ".join(more)
        rows = self.execute(f"SELECT {_INSTANCE_COLUMNS} FROM instances{clause} ORDER BY id",
                            params)
        return [InstanceRecord(*row) for row in rows]


def _lease(row: sqlite3.Row | tuple[Any, ...]) -> LeaseRecord:
    values = list(row)
    values[13] = bool(values[13])
    values[19] = _loads(values[19])
    values[22] = _loads(values[22])
    return LeaseRecord(*values)


def _cloud(row: sqlite3.Row | tuple[Any, ...]) -> CloudRecord:
    values = list(row)
    return CloudRecord(*values[:6], catalogue=_loads(values[6]), options=_loads(values[7]),
                       enabled=bool(values[8]), added_at=values[9], id=values[10])


def _image(row: sqlite3.Row | tuple[Any, ...]) -> ImageRecord:
    return ImageRecord(*row[:7], boot=_loads(row[7]), source=row[8])


def _where(**equal: Any) -> tuple[str, list[Any]]:
    """A WHERE clause for the columns given a value (None: no condition)."""
    terms = [(column, value) for column, value in equal.items() if value is not None]
    if not terms:
        return "", []
    return " WHERE " + " AND ".join(f"{c} = ?" for c, _ in terms), [v for _, v in terms]


def _loads(text: str) -> Any:
    """JSON, with the empty list and object most columns hold decoded for free."""
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return json.loads(text)


def _statements(sql: str) -> list[str]:
    """Split a migration script into statements (triggers keep their BEGIN ... END)."""
    out, current = [], []
    for line in sql.strip().splitlines():
        if line.startswith("--"):
            continue
        current.append(line)
        text = "\n".join(current)
        if sqlite3.complete_statement(text):
            out.append(text)
            current = []
    return out
