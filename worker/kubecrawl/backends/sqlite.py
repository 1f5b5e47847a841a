"""Resumable local store for role ``none`` with ``--state-dir`` (断点续爬): SQLite in WAL mode.

Every commit is one SQLite transaction (acks + new requests + items + counters), so a process killed
at any instant leaves either all or none of a batch. Leases live only as long as the process: on open,
every leased row returns to the queue, so at most the requests in flight at the kill are fetched again.

Items go to the ``items`` table in the same transaction; an exporter appends them to ``--output``
and records, per file, the last item id and the file size it reached. Each item reaches ``-o`` once,
in the run that stored it: a run's output file starts at the items stored from that run on (earlier
ones stay in the store; ``kubecrawl export --state-dir`` writes them all). A run killed before its file
caught up is finished by the next open: that file is truncated back to its recorded size and the rest
of its items appended, so a kill between writing and recording never duplicates or loses a line.
Durability is against process death (``synchronous=NORMAL``), not against power loss.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..errors import StorageError, WireFormatError
from ..request import Request
from .base import (
    Backend,
    CommitResult,
    Lease,
    Outcome,
    RoundInfo,
    StoreHealth,
    local_worker_id,
)
from .frontier import HostFrontier, Politeness, slot_key

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY AUTOINCREMENT, prio INTEGER NOT NULL,
                                  leased INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL,
                                  host TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS seen (fp BLOB PRIMARY KEY, expires REAL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS item_keys (key BLOB PRIMARY KEY, hash BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;
"""


#: meta key naming the output file of the run in progress ("" once it closed cleanly)
_ACTIVE_OUTPUT = "output_active"


class SQLiteBackend(Backend):
    """:class:`Backend` in one SQLite file under ``state_dir`` (see module docstring)."""

    def __init__(
        self,
        state_dir: Path,
        output: Path | None = None,
        item_dedup: str = "skip",
        fingerprint_ttl: float | None = None,
        *,
        clock: Callable[[], float] | None = None,
        worker_id: str | None = None,
        politeness: Politeness | None = None,
    ) -> None:
        self.clock = clock or time.time
        self.frontier = HostFrontier(politeness or Politeness())
        self.worker_id = worker_id or local_worker_id()
        self.state_dir = state_dir
        self.path = state_dir / "state.sqlite3"
        self.output = output
        self.item_dedup = item_dedup
        self.fingerprint_ttl = fingerprint_ttl
        self._db: sqlite3.Connection | None = None
        self._out: IO[bytes] | None = None
        self._leased: dict[int, str] = {}  # row id -> its download slot
        self._freed: set[int] = set()  # leases whose slot place fetch_done already gave back
        self.rejected = 0
        self.reclaimed = 0

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError("SQLite store is not open")
        return self._db

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            self._migrate_hosts(db)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open state store {self.path}: {exc}") from None
        self._db = db
        reclaimed = db.execute("UPDATE queue SET leased=0 WHERE leased=1").rowcount
        if reclaimed:
            self.reclaimed += reclaimed
            log.info("resume: %d request(s) in flight at the last stop go back to the queue", reclaimed)
        # the frontier's counts come from the queue; next-allowed times start afresh with the process
        for host, n in db.execute("SELECT host, count(*) FROM queue WHERE leased=0 GROUP BY host"):
            self.frontier.added(host, n)
        self._finish_interrupted_output()
        if self.output is not None:
            self._open_output()

    def _migrate_hosts(self, db: sqlite3.Connection) -> None:
        """A state dir from before the per-host frontier: give its queued rows their download slot."""
        cols = {row[1] for row in db.execute("PRAGMA table_info(queue)")}
        if "host" not in cols:
            db.execute("ALTER TABLE queue ADD COLUMN host TEXT NOT NULL DEFAULT ''")
            rows = db.execute("SELECT id, data FROM queue").fetchall()
            fill = []
            for rid, data in rows:
                try:
                    fill.append((slot_key(Request.from_wire(data).url, self.frontier.policy.slot_key), rid))
                except WireFormatError:
                    pass  # rejected when popped
            db.execute("BEGIN")
            db.executemany("UPDATE queue SET host=? WHERE id=?", fill)
            db.execute("COMMIT")
        db.execute("DROP INDEX IF EXISTS queue_next")
        db.execute("CREATE INDEX IF NOT EXISTS queue_host ON queue (host, leased, prio DESC, id)")

    def _interrupted_output(self) -> Path | None:
        """The output file of a run that did not close cleanly, if any."""
        active = self._meta_get(_ACTIVE_OUTPUT)
        if active is None:
            # a state dir written before ``output_active`` existed: this run's own file, if it has a record
            if self.output is not None and self._meta_get(f"exported_size:{self.output.resolve()}") is not None:
                return self.output
            return None
        return Path(active) if active else None

    def _finish_interrupted_output(self) -> None:
        """Append to the file of a killed run the items that run stored but had not yet written."""
        path = self._interrupted_output()
        if path is None:
            return
        key = str(path.resolve())
        recorded = self._meta_get(f"exported_size:{key}")
        if self.output is not None and key == str(self.output.resolve()):
            return  # the same file again: _open_output resumes it
        if recorded is None or not path.exists():
            pending = self._pending_count(key)
            if pending:
                log.warning(
                    "%d item(s) of an interrupted run never reached %s (file gone); "
                    "they are in the store: kubecrawl export --state-dir %s",
                    pending,
                    path,
                    self.state_dir,
                )
            self._meta_set(_ACTIVE_OUTPUT, "")
            return
        with open(path, "r+b") as out:
            self._resume_file(out, path, int(recorded))
            self._export_to(out, key)
        self._meta_set(_ACTIVE_OUTPUT, "")

    def _pending_count(self, key: str) -> int:
        last = int(self._meta_get(f"exported_id:{key}") or 0)
        return int(self.db.execute("SELECT count(*) FROM items WHERE id>?", (last,)).fetchone()[0])

    def _resume_file(self, out: IO[bytes], path: Path, size: int) -> None:
        actual = out.seek(0, os.SEEK_END)
        if actual > size:
            log.info("resume: trimming %d unrecorded byte(s) from %s", actual - size, path)
            out.truncate(size)
            out.seek(size)

    def _open_output(self) -> None:
        assert self.output is not None
        key = str(self.output.resolve())
        self.output.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.output, "ab")  # noqa: SIM115 - closed in close()
        interrupted = self._interrupted_output()
        recorded = self._meta_get(f"exported_size:{key}")
        if interrupted is not None and str(interrupted.resolve()) == key and recorded is not None:
            # this file's run was killed: trim what it wrote without recording, then catch up
            self._resume_file(out, self.output, int(recorded))
        else:
            # a file for this run: the items it stores from now on, nothing stored before
            last = self.db.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()[0]
            self.db.execute("BEGIN")
            self._meta_set(f"exported_id:{key}", str(last))
            self._meta_set(f"exported_size:{key}", str(out.seek(0, os.SEEK_END)))
            self.db.execute("COMMIT")
        self._meta_set(_ACTIVE_OUTPUT, key)
        self._out = out
        self._export()

    async def close(self) -> None:
        if self._out is not None:
            self._export()
            self._out.close()
            self._out = None
            self._meta_set(_ACTIVE_OUTPUT, "")
        if self._db is not None:
            self._db.close()
            self._db = None

    async def health(self) -> StoreHealth:
        try:
            self.db.execute("SELECT 1").fetchone()
        except (sqlite3.Error, StorageError) as exc:
            return StoreHealth(False, f"state store {self.path}: {exc}")
        return StoreHealth(True)

    # -- meta --------------------------------------------------------------------------------
    def _meta_get(self, k: str) -> str | None:
        row = self.db.execute("SELECT v FROM meta WHERE k=?", (k,)).fetchone()
        return None if row is None else str(row[0])

    def _meta_set(self, k: str, v: str) -> None:
        self.db.execute("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v=excluded.v", (k, v))

    # -- queue -------------------------------------------------------------------------------
    async def pop(self, n: int) -> list[Lease]:
        db = self.db
        fr = self.frontier
        now = self.clock()
        grants = fr.take(now, n)
        out: list[Lease] = []
        if grants:
            db.execute("BEGIN")
            try:
                for host, k in grants:
                    rows = db.execute(
                        "SELECT id, data FROM queue WHERE host=? AND leased=0 ORDER BY prio DESC, id LIMIT ?", (host, k)
                    ).fetchall()
                    got = self._lease_rows(rows, host, out)
                    # fewer rows than granted: the slot's queue is empty; else at least one may be left
                    left = 0 if len(rows) < k else max(1, fr.hosts[host].queued - len(rows))
                    fr.taken(host, got, now, left)
            finally:
                db.execute("COMMIT")
        self.next_ready = fr.next_ready(now)
        return out

    def _lease_rows(self, rows: list[tuple[int, bytes]], host: str, out: list[Lease]) -> int:
        db = self.db
        got = 0
        for rid, data in rows:
            try:
                out.append(Lease(str(rid), Request.from_wire(data)))
            except WireFormatError as exc:
                log.error("rejected a corrupt request in %s: %s", self.path, exc)
                db.execute("DELETE FROM queue WHERE id=?", (rid,))
                self.rejected += 1
                continue
            db.execute("UPDATE queue SET leased=1 WHERE id=?", (rid,))
            self._leased[rid] = host
            got += 1
        return got

    def _admit_request(self, req: Request, now: float) -> bool:
        """:func:`~.base.fingerprint_rule` in SQL (``expires`` NULL = never expires), one statement when admitted."""
        fp = req.fingerprint  # even for dont_filter: a request that has none is refused by every store
        if req.dont_filter:
            return True
        db = self.db
        ttl = req.fingerprint_ttl if req.fingerprint_ttl is not None else self.fingerprint_ttl
        expires = None if ttl is None else now + ttl
        # never seen: inserted; its age has run out: restarted (NULL: from now on never expires)
        if db.execute(
            "INSERT INTO seen (fp, expires) VALUES (?, ?) ON CONFLICT(fp) DO UPDATE SET expires=excluded.expires"
            " WHERE seen.expires IS NOT NULL AND seen.expires<=?",
            (fp, expires, now),
        ).rowcount:
            return True
        if expires is not None:
            # first seen without an age, now asked for with one: filtered, and ageing from now
            db.execute("UPDATE seen SET expires=? WHERE fp=? AND expires IS NULL", (expires, fp))
        return False

    def _admit_item(self, key: bytes, content_hash: bytes) -> bool:
        db = self.db
        if self.item_dedup == "off":
            return True
        if db.execute("INSERT OR IGNORE INTO item_keys (key, hash) VALUES (?, ?)", (key, content_hash)).rowcount:
            return True
        if self.item_dedup == "update":
            return bool(
                db.execute(
                    "UPDATE item_keys SET hash=? WHERE key=? AND hash<>?", (content_hash, key, content_hash)
                ).rowcount
            )
        return False

    async def commit(self, outcomes: list[Outcome]) -> CommitResult:
        res = CommitResult()
        db = self.db
        now = self.clock()
        stats: dict[str, int] = {}
        mode = self.frontier.policy.slot_key
        added: dict[str, int] = {}
        acked: list[tuple[str, Outcome]] = []
        db.execute("BEGIN")
        try:
            for oc in outcomes:
                new = []
                for req in oc.requests:
                    if self._admit_request(req, now):
                        host = slot_key(req.url, mode)
                        new.append((req.priority, req.to_wire(), host))
                        added[host] = added.get(host, 0) + 1
                    else:
                        res.filtered += 1
                if new:
                    db.executemany("INSERT INTO queue (prio, data, host) VALUES (?, ?, ?)", new)
                    res.enqueued += len(new)
                for rec in oc.items:
                    if self._admit_item(rec.key, rec.content_hash):
                        db.execute("INSERT INTO items (data) VALUES (?)", (rec.data,))
                        res.items_stored += 1
                    else:
                        res.items_duplicate += 1
                if oc.lease_id is not None:
                    rid = int(oc.lease_id)
                    db.execute("DELETE FROM queue WHERE id=?", (rid,))
                    if rid in self._leased and rid not in self._freed:
                        acked.append((self._leased[rid], oc))
                for k, v in oc.stats.items():
                    stats[k] = stats.get(k, 0) + v
            if stats:
                db.executemany(
                    "INSERT INTO stats (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v=v+excluded.v",
                    list(stats.items()),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        # the frontier follows what the transaction did, once it is durable
        mono = time.monotonic()
        for oc in outcomes:
            if oc.lease_id is not None and oc.lease_id.isdigit():
                self._leased.pop(int(oc.lease_id), None)
                self._freed.discard(int(oc.lease_id))
        for host, oc in acked:
            ago = None if oc.answered is None else mono - oc.answered
            self.frontier.finished(host, now, ago, False, oc.crawl_delay)
        for host, count in added.items():
            self.frontier.added(host, count)
        if res.items_stored and self._out is not None:
            self._export()
        return res

    def _export(self) -> None:
        """Append this run's items not yet exported to the output file, then record how far we got."""
        assert self._out is not None and self.output is not None
        self._export_to(self._out, str(self.output.resolve()))

    def _export_to(self, out: IO[bytes], key: str) -> None:
        last = int(self._meta_get(f"exported_id:{key}") or 0)
        rows = self.db.execute("SELECT id, data FROM items WHERE id>? ORDER BY id", (last,)).fetchall()
        if not rows:
            return
        out.write(b"".join(r[1] + b"\n" for r in rows))
        out.flush()
        size = out.tell()
        self.db.execute("BEGIN")
        self._meta_set(f"exported_id:{key}", str(rows[-1][0]))
        self._meta_set(f"exported_size:{key}", str(size))
        self.db.execute("COMMIT")

    async def release(self, lease_ids: list[str]) -> None:
        # only leases this process holds (ids are row ids; anything else is not ours)
        ids = [(int(i),) for i in lease_ids if i.isdigit() and int(i) in self._leased]
        self.db.executemany("UPDATE queue SET leased=0 WHERE id=?", ids)
        now = self.clock()
        for (i,) in ids:
            host = self._leased.pop(i)
            if i in self._freed:
                self._freed.discard(i)
                self.frontier.added(host)
            else:
                self.frontier.finished(host, now, None, requeued=True)

    def fetch_done(self, oc: Outcome) -> None:
        lid = oc.lease_id or ""
        rid = int(lid) if lid.isdigit() else -1
        host = self._leased.get(rid)
        if host is None or rid in self._freed:
            return
        self._freed.add(rid)
        ago = None if oc.answered is None else time.monotonic() - oc.answered
        self.frontier.finished(host, self.clock(), ago, False, oc.crawl_delay)

    async def queued(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM queue WHERE leased=0").fetchone()[0])

    async def in_flight(self) -> int:
        return len(self._leased)

    async def begin_round(self) -> int:
        r = int(self._meta_get("round") or 0) + 1
        self.db.execute("BEGIN")
        self._meta_set("round", str(r))
        self._meta_set("seeding", "1")
        self._meta_set(f"round_started:{r}", str(self.clock()))
        self.db.execute("COMMIT")
        return r

    async def end_seeding(self, round_no: int) -> None:
        self.db.execute("BEGIN")
        self._meta_set("seeded_round", str(round_no))
        self._meta_set("seeding", "0")
        self.db.execute("COMMIT")

    async def round_info(self) -> RoundInfo:
        rnd = int(self._meta_get("round") or 0)
        seeding = self._meta_get("seeding") == "1"
        seeded = self._meta_get("seeded_round")
        # state dirs from before ``seeded_round``: a round not seeding was seeded
        seeded_round = int(seeded) if seeded is not None else (rnd if not seeding else rnd - 1)
        return RoundInfo(rnd, seeding, seeded_round)

    def stored_stats(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.db.execute("SELECT k, v FROM stats")}


def export_state_items(state_dir: Path, path: Path, batch: int = 1000) -> int:
    """Write every item stored in ``state_dir`` to ``path`` (rewritten) as JSON lines; returns the count.

    ``kubecrawl export --state-dir``. Reads the store read-only, so it is safe while a crawl runs on it
    and changes nothing a later run's ``-o`` depends on.
    """
    db_path = state_dir / "state.sqlite3"
    if not db_path.is_file():
        raise StorageError(f"no crawl state in {state_dir} (expected {db_path})")
    try:
        db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open state store {db_path}: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    n = last = 0
    try:
        with open(path, "wb") as out:
            while True:
                rows = db.execute("SELECT id, data FROM items WHERE id>? ORDER BY id LIMIT ?", (last, batch)).fetchall()
                if not rows:
                    break
                out.write(b"".join(r[1] + b"\n" for r in rows))
                n += len(rows)
                last = rows[-1][0]
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot read items from {db_path}: {exc}") from None
    finally:
        db.close()
    log.info("exported %d item(s) from %s to %s", n, state_dir, path)
    return n
