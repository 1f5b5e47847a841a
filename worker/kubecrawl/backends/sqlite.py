"""Resumable local store for role ``none`` with ``--state-dir`` (断点续爬): SQLite in WAL mode.

Every commit is one SQLite transaction (acks + new requests + items + counters), so a process killed
at any instant leaves either all or none of a batch. Leases live only as long as the process: on open,
every leased row returns to the queue, so at most the requests in flight at the kill are fetched again.

Items go to the ``items`` table in the same transaction: it is the outbox of the feeds
(docs/feeds.md). After each commit every feed's sink gets the items it has not had, and the store
records per feed the last item id and the sink's checkpoint (a file's offset before its footer) in
one transaction. Each item reaches a feed once, in the run that stored it: a run's feed starts at
the items stored from that run on (earlier ones stay in the store; ``kubecrawl export --state-dir``
writes them all). A run killed before a feed caught up is finished by the next open: the sink goes
back to its recorded checkpoint (a file is truncated to it) and gets the rest of the items, so a kill
between writing and recording never duplicates or loses an item. A sink that fails (a database that
is down) keeps its items in the outbox and is tried again; the next run catches up what it missed.
Durability is against process death (``synchronous=NORMAL``), not against power loss.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from ..errors import ConfigurationError, StorageError, WireFormatError, is_disk_full
from ..feeds.sink import FeedItem, FileSink, Sink, can_finish, make_sink
from ..feeds.spec import FeedSpec, make_spec, redact
from ..request import Request
from .base import (
    ROBOTS_ENTRY_MAX,
    ROBOTS_KINDS,
    Backend,
    CommitResult,
    FrontierStatus,
    Lease,
    Outcome,
    RobotsEntry,
    RoundInfo,
    StoreHealth,
    local_worker_id,
)
from .frontier import HostFrontier, Politeness, request_slot

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY AUTOINCREMENT, prio INTEGER NOT NULL,
                                  leased INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL,
                                  host TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS seen (fp BLOB PRIMARY KEY, expires REAL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS item_keys (key BLOB PRIMARY KEY, hash BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL, key BLOB);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS slots (host TEXT PRIMARY KEY, next_at REAL NOT NULL, last_delay REAL NOT NULL,
  crawl_delay REAL NOT NULL, throttle_delay REAL NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS robots (origin TEXT PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL,
  fetched_at REAL NOT NULL, expires REAL NOT NULL, why TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
"""


#: meta key recording the feeds of the run in progress (a JSON list; "" once it closed cleanly).
#: State dirs written before feeds existed hold one JSON-lines path here.
_ACTIVE_OUTPUT = "output_active"
#: how long a failing sink (a PostgreSQL that is down) is left alone before the next attempt
_SINK_RETRY_S = 5.0
_EXPORT_BATCH = 2000


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
        feeds: list[FeedSpec] | None = None,
        feed_name: str = "items",
        politeness: Politeness | None = None,
    ) -> None:
        self.clock = clock or time.time
        self.frontier = HostFrontier(politeness or Politeness())
        self.worker_id = worker_id or local_worker_id()
        self.state_dir = state_dir
        self.path = state_dir / "state.sqlite3"
        self.feed_specs = list(feeds or []) + ([make_spec(str(output))] if output is not None else [])
        self.feed_name = feed_name
        self.item_dedup = item_dedup
        self.fingerprint_ttl = fingerprint_ttl
        self._db: sqlite3.Connection | None = None
        self._lock: IO[str] | None = None
        self._sinks: list[Sink] = []
        self._failing: dict[str, float] = {}  # sink key -> when it may be tried again
        self._store_id = ""
        #: when each sink that holds items for bigger batches (``Sink.hold_s``) was last written
        self._written_at: dict[str, float] = {}
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
    def _take_lock(self) -> None:
        """One process per state dir: a second one would fetch and write everything twice."""
        lock = open(self.state_dir / "lock", "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise StorageError(
                f"state dir {self.state_dir} is in use by {holder}; one crawl process per --state-dir "
                "(for several processes on one crawl use --role master/slave with Redis)"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}\n")
        lock.flush()
        self._lock = lock

    async def open(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            if "key" not in {row[1] for row in db.execute("PRAGMA table_info(items)")}:
                db.execute("ALTER TABLE items ADD COLUMN key BLOB")  # state dirs from before feeds
            self._migrate_hosts(db)
            if "throttle_delay" not in {row[1] for row in db.execute("PRAGMA table_info(slots)")}:
                # state dirs from before the shared AutoThrottle delay
                db.execute("ALTER TABLE slots ADD COLUMN throttle_delay REAL NOT NULL DEFAULT 0")
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open state store {self.path}: {exc}") from None
        self._db = db
        reclaimed = db.execute("UPDATE queue SET leased=0 WHERE leased=1").rowcount
        if reclaimed:
            self.reclaimed += reclaimed
            log.info("resume: %d request(s) in flight at the last stop go back to the queue", reclaimed)
        # the slots' times as the last run left them (a restart must not shorten a delay), then the
        # frontier's counts from the queue
        for host, next_at, last_delay, crawl_delay, throttle_delay in db.execute(
            "SELECT host, next_at, last_delay, crawl_delay, throttle_delay FROM slots"
        ):
            self.frontier.restore(host, next_at, last_delay, crawl_delay, throttle_delay)
        for host, n in db.execute("SELECT host, count(*) FROM queue WHERE leased=0 GROUP BY host"):
            self.frontier.added(host, n)
        self._store_id = self._meta_get("store_id") or ""
        if not self._store_id:
            self._store_id = uuid.uuid4().hex
            self._meta_set("store_id", self._store_id)
        self._open_feeds()

    def _migrate_hosts(self, db: sqlite3.Connection) -> None:
        """A state dir from before the per-host frontier: give its queued rows their download slot."""
        cols = {row[1] for row in db.execute("PRAGMA table_info(queue)")}
        if "host" not in cols:
            db.execute("ALTER TABLE queue ADD COLUMN host TEXT NOT NULL DEFAULT ''")
            rows = db.execute("SELECT id, data FROM queue").fetchall()
            fill = []
            for rid, data in rows:
                try:
                    fill.append((request_slot(Request.from_wire(data), self.frontier.policy.slot_key), rid))
                except WireFormatError:
                    pass  # rejected when popped
            db.execute("BEGIN")
            db.executemany("UPDATE queue SET host=? WHERE id=?", fill)
            db.execute("COMMIT")
        db.execute("DROP INDEX IF EXISTS queue_next")
        db.execute("CREATE INDEX IF NOT EXISTS queue_host ON queue (host, leased, prio DESC, id)")

    # -- feeds (the outbox: docs/feeds.md) -----------------------------------------------------
    def _active(self) -> list[dict[str, Any]] | None:
        """The feeds of a run that did not close cleanly ([] if none; None: never recorded)."""
        raw = self._meta_get(_ACTIVE_OUTPUT)
        if raw is None:
            return None
        if not raw:
            return []
        if raw.startswith("["):
            return list(orjson.loads(raw))
        path = str(Path(raw).resolve())
        return [{"spec": {"uri": raw, "format": "jsonl"}, "uri": raw, "key": path}]

    def _template_round(self) -> int:
        """The round this run's items belong to: the last one if it resumes it, else the next."""
        info_round = int(self._meta_get("round") or 0)
        seeding = self._meta_get("seeding") == "1"
        queued = self.db.execute("SELECT count(*) FROM queue").fetchone()[0]
        return info_round if info_round >= 1 and not seeding and queued else info_round + 1

    def _bind(self, round_no: int) -> list[Sink]:
        return [
            make_sink(
                spec,
                spec.resolve(self.feed_name, round_no),
                name=self.feed_name,
                item_dedup=self.item_dedup,
                origin=self._store_id[:12],
            )
            for spec in self.feed_specs
        ]

    def _open_feeds(self) -> None:
        active = self._active()
        sinks = self._bind(self._template_round()) if self.feed_specs else []
        keys = {s.key for s in sinks}
        for rec in active or []:
            if rec["key"] not in keys:
                self._finish_interrupted(rec)
        interrupted = {rec["key"] for rec in active or []}
        for sink in sinks:
            # a state dir from before output_active: this run's own file, if it has a record
            was = sink.key in interrupted or (
                active is None and self._meta_get(f"exported_size:{sink.key}") is not None
            )
            self._open_sink(sink, resume=was)
        self._sinks = sinks
        self._record_active()
        self._export()

    def _open_sink(self, sink: Sink, resume: bool) -> None:
        recorded = self._meta_get(f"exported_size:{sink.key}")
        if resume and recorded is not None and sink.resumable:
            # this feed's run was killed: back to what was recorded, then catch up
            sink.open(recorded)
            return
        # a feed for this run: the items it stores from now on, nothing stored before
        checkpoint = sink.open(None)
        last = self.db.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()[0]
        self.db.execute("BEGIN")
        self._meta_set(f"exported_id:{sink.key}", str(last))
        self._meta_set(f"exported_size:{sink.key}", checkpoint)
        self.db.execute("COMMIT")

    def _record_active(self, extra: list[Sink] | None = None) -> None:
        recs = [
            {"spec": s.spec.as_dict() | {"uri": redact(s.spec.uri)}, "uri": redact(s.uri), "key": s.key}
            for s in [*self._sinks, *(extra or [])]
            if s.resumable
        ]
        self._meta_set(_ACTIVE_OUTPUT, orjson.dumps(recs).decode() if recs else "")

    def _finish_interrupted(self, rec: dict[str, Any]) -> None:
        """Write to a feed of a killed run (not one of this run's) the items that run stored but had not written."""
        key = rec["key"]
        recorded = self._meta_get(f"exported_size:{key}")
        spec = FeedSpec.from_dict(rec["spec"])
        if recorded is not None and can_finish(spec, rec["uri"]):
            sink = make_sink(
                spec, rec["uri"], name=self.feed_name, item_dedup=self.item_dedup, origin=self._store_id[:12]
            )
            sink.open(recorded)
            try:
                self._export_to([sink], final=True)
            finally:
                sink.close()
            return
        pending = self._pending_count(key)
        if pending:
            log.warning(
                "%d item(s) of an interrupted run never reached %s (%s); "
                "they are in the store: kubecrawl export --state-dir %s",
                pending,
                rec["uri"],
                "file gone" if spec.kind == "file" else "feed not given this time",
                self.state_dir,
            )

    def _pending_count(self, key: str) -> int:
        last = int(self._meta_get(f"exported_id:{key}") or 0)
        return int(self.db.execute("SELECT count(*) FROM items WHERE id>?", (last,)).fetchone()[0])

    def _rotate(self, round_no: int) -> None:
        """A new round: feeds whose URI template changed get a new sink (``%(round)s``, ``%(time)s``)."""
        if not any(spec.templated for spec in self.feed_specs):
            return
        fresh = self._bind(round_no)
        for i, (old, new) in enumerate(zip(self._sinks, fresh, strict=True)):
            if old.key == new.key:
                continue
            self._export_to([old], final=True)
            if self._pending_count(old.key):
                continue  # that sink is failing: it keeps its items; the next run catches it up
            old.close()
            self._open_sink(new, resume=False)
            self._sinks[i] = new
        self._record_active()

    async def close(self) -> None:
        if self._db is not None and self._sinks:
            self._failing.clear()  # one last attempt at every sink
            self._export(final=True)
            behind = [s for s in self._sinks if self._pending_count(s.key)]
            for sink in self._sinks:
                try:
                    sink.close()
                except Exception as exc:
                    log.error("feed %s: close failed: %s", redact(sink.uri), exc)
            self._sinks = behind  # what stays recorded as interrupted: the next run catches it up
            try:
                self._record_active()
            except sqlite3.Error as exc:  # a full disk: the previous record stands, and says less is done
                log.error("state store %s: cannot record the feeds' state at close: %s", self.path, exc)
            for sink in behind:
                log.warning(
                    "feed %s is %d item(s) behind: the next run with it (or kubecrawl export) writes them",
                    redact(sink.uri),
                    self._pending_count(sink.key),
                )
            self._sinks = []
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

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
                    # one row more than granted says whether any is left (the status counts slots with work)
                    rows = db.execute(
                        "SELECT id, data FROM queue WHERE host=? AND leased=0 ORDER BY prio DESC, id LIMIT ?",
                        (host, k + 1),
                    ).fetchall()
                    got = self._lease_rows(rows[:k], host, out)
                    # no row past the grant: the slot's queue is empty; else at least one is left
                    left = 0 if len(rows) <= k else max(1, fr.hosts[host].queued - k)
                    fr.taken(host, got, now, left)
                    self._save_slot(host)
            finally:
                db.execute("COMMIT")
        self.next_ready = fr.next_ready(now)
        return out

    def _save_slot(self, host: str) -> None:
        """Keep a slot's next-allowed time (slots with a delay or a backoff only), inside the caller's transaction."""
        times = self.frontier.times(host)
        if times is not None:
            self.db.execute(
                "INSERT OR REPLACE INTO slots (host, next_at, last_delay, crawl_delay, throttle_delay)"
                " VALUES (?, ?, ?, ?, ?)",
                (host, *times),
            )

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
                        host = request_slot(req, mode)
                        new.append((req.priority, req.to_wire(), host))
                        added[host] = added.get(host, 0) + 1
                    else:
                        res.filtered += 1
                if new:
                    db.executemany("INSERT INTO queue (prio, data, host) VALUES (?, ?, ?)", new)
                    res.enqueued += len(new)
                for req in oc.mark:
                    if self._admit_request(req, now):
                        res.marked += 1
                for rec in oc.items:
                    if self._admit_item(rec.key, rec.content_hash):
                        db.execute("INSERT INTO items (data, key) VALUES (?, ?)", (rec.data, rec.key))
                        res.items_stored += 1
                    else:
                        res.items_duplicate += 1
                if oc.lease_id is not None and oc.lease_id.isdigit() and int(oc.lease_id) in self._leased:
                    # only a lease this process holds: an ack naming anything else changes nothing
                    rid = int(oc.lease_id)
                    db.execute("DELETE FROM queue WHERE id=?", (rid,))
                    if rid not in self._freed:
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
            if db.in_transaction:  # SQLite may have rolled back itself (an I/O error): keep that error
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
            self.frontier.finished(host, now, ago, False, oc.crawl_delay, oc.throttle_delay)
        for host in {host for host, _oc in acked}:
            self._save_slot(host)  # the time measured from the answer (a statement of its own)
        for host, count in added.items():
            self.frontier.added(host, count)
        if res.items_stored and self._sinks:
            self._export()
        return res

    def _export(self, final: bool = False) -> None:
        """Write to every sink the items it has not had yet, then record how far each got."""
        if self._sinks:
            self._export_to(self._sinks, final)

    def _held(self, sink: Sink, now: float) -> bool:
        """A sink that wants big batches (S3: one object each) waits for them, or for ``hold_s``."""
        if not sink.hold_s or now - self._written_at.setdefault(sink.key, now) >= sink.hold_s:
            return False
        want = sink.room() or _EXPORT_BATCH
        last = int(self._meta_get(f"exported_id:{sink.key}") or 0)
        row = self.db.execute("SELECT count(*) FROM (SELECT 1 FROM items WHERE id>? LIMIT ?)", (last, want)).fetchone()
        return int(row[0]) < want

    def _export_to(self, sinks: list[Sink], final: bool = False) -> None:
        now = time.monotonic()
        for sink in sinks:
            if self._failing.get(sink.key, 0.0) > now:
                continue
            if not final and self._held(sink, now):
                continue
            self._written_at[sink.key] = now
            try:
                while True:
                    last = int(self._meta_get(f"exported_id:{sink.key}") or 0)
                    limit = min(_EXPORT_BATCH, sink.room() or _EXPORT_BATCH)  # a write never spans a rotation
                    rows = self.db.execute(
                        "SELECT id, data, key FROM items WHERE id>? ORDER BY id LIMIT ?", (last, limit)
                    ).fetchall()
                    if not rows:
                        break
                    recorded = self._meta_get(f"exported_size:{sink.key}")
                    checkpoint = sink.write([self._feed_item(*r) for r in rows])
                    try:
                        self.db.execute("BEGIN")
                        self._meta_set(f"exported_id:{sink.key}", str(rows[-1][0]))
                        self._meta_set(f"exported_size:{sink.key}", checkpoint)
                        self.db.execute("COMMIT")
                    except sqlite3.Error:
                        # not recorded (a full disk): the sink goes back to what is, so the retry
                        # writes these items once more instead of after themselves
                        if self.db.in_transaction:
                            self.db.execute("ROLLBACK")
                        sink.rewind(recorded)
                        raise
                    if len(rows) < limit:
                        break
            except (StorageError, OSError, sqlite3.Error) as exc:
                self._failing[sink.key] = now + _SINK_RETRY_S
                log.error("feed %s: write failed (items stay in the store, retried): %s", redact(sink.uri), exc)
                if is_disk_full(exc) and self.fatal is None:
                    self.fatal = (
                        f"feed {redact(sink.uri)}: the disk is full ({exc}); the feed ends at its last whole item. "
                        "Free space and run the same command again: the feed continues where it stopped, nothing is lost"
                    )
            else:
                self._failing.pop(sink.key, None)

    def _feed_item(self, rid: int, data: bytes, key: bytes | None) -> FeedItem:
        if key is None or self.item_dedup == "off":
            key = f"{self._store_id}:{rid}".encode()
        return FeedItem(rid, data, key)

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
        self.frontier.finished(host, self.clock(), ago, False, oc.crawl_delay, oc.throttle_delay)
        self._save_slot(host)

    async def backoff(self, slot: str, seconds: float) -> None:
        """The slot's pushed-out time is kept in ``slots`` (a restart must not shorten it)."""
        self.frontier.backoff(slot, self.clock(), seconds)
        self._save_slot(slot)

    async def heartbeat(self, worker_id: str) -> None:
        """Every few seconds: sinks holding items for a bigger batch, or failing, get them (no commit needed)."""
        if self._db is not None and self._sinks:
            self._export()

    async def queued(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM queue WHERE leased=0").fetchone()[0])

    async def in_flight(self) -> int:
        return len(self._leased)

    async def has_fingerprints(self, requests: list[Request]) -> list[bool]:
        now = self.clock()
        q = "SELECT 1 FROM seen WHERE fp=? AND (expires IS NULL OR expires>?)"
        return [self.db.execute(q, (req.fingerprint, now)).fetchone() is not None for req in requests]

    async def frontier_status(self, top: int = 10) -> FrontierStatus | None:
        return self.frontier.status_cached(top, self.clock())

    async def fingerprint_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM seen").fetchone()[0])

    async def begin_round(self) -> int:
        r = int(self._meta_get("round") or 0) + 1
        self.db.execute("BEGIN")
        self._meta_set("round", str(r))
        self._meta_set("seeding", "1")
        self._meta_set(f"round_started:{r}", str(self.clock()))
        self.db.execute("COMMIT")
        self._rotate(r)
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

    # -- robots.txt: kept across runs, so a resumed crawl does not fetch it again ---------------
    shares_robots = True

    async def robots_get(self, origin: str) -> RobotsEntry | None:
        row = self.db.execute(
            "SELECT kind, body, fetched_at, expires, why FROM robots WHERE origin=?", (origin,)
        ).fetchone()
        if row is None:
            return None
        kind, body, at, exp, why = row
        if (
            kind not in ROBOTS_KINDS
            or not isinstance(body, str)
            or len(body) > ROBOTS_ENTRY_MAX
            or not isinstance(at, float | int)
            or not isinstance(exp, float | int)
            or not isinstance(why, str)
        ):
            raise WireFormatError(f"robots.txt entry of {origin} in {self.path} is not one")
        return RobotsEntry(kind, body, float(at), float(exp), why) if exp > self.clock() else None

    async def robots_put(self, origin: str, kind: str, body: str, ttl: float, why: str = "") -> None:
        now = self.clock()
        self.db.execute(
            "INSERT INTO robots (origin, kind, body, fetched_at, expires, why) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(origin) DO UPDATE SET kind=excluded.kind, body=excluded.body, "
            "fetched_at=excluded.fetched_at, expires=excluded.expires, why=excluded.why",
            (origin, kind, body, now, now + ttl, why),
        )

    def stored_stats(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.db.execute("SELECT k, v FROM stats")}


def export_state_items(state_dir: Path, path: str | Path, batch: int = 1000) -> int:
    """Write every item stored in ``state_dir`` to ``path`` (rewritten; format by extension); returns the count.

    ``kubecrawl export --state-dir``. Reads the store read-only, so it is safe while a crawl runs on it
    and changes nothing a later run's ``-o`` depends on.
    """
    db_path = state_dir / "state.sqlite3"
    if not db_path.is_file():
        raise StorageError(f"no crawl state in {state_dir} (expected {db_path})")
    spec = make_spec(str(path), overwrite=True)
    if spec.kind != "file":
        raise ConfigurationError("export writes a file: give a path (FILE or FILE:FORMAT)")
    try:
        db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open state store {db_path}: {exc}") from None
    sink = FileSink(spec, spec.uri)
    sink.open(None)
    n = last = 0
    try:
        while True:
            rows = db.execute("SELECT id, data FROM items WHERE id>? ORDER BY id LIMIT ?", (last, batch)).fetchall()
            if not rows:
                break
            sink.write([FeedItem(r[0], r[1], b"") for r in rows])
            n += len(rows)
            last = rows[-1][0]
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot read items from {db_path}: {exc}") from None
    finally:
        sink.close()
        db.close()
    log.info("exported %d item(s) from %s to %s", n, state_dir, path)
    return n
