"""Delivery from a distributed crawl's Redis item stream to its feeds, and trimming what was delivered.

Slaves that have feeds read the stream ``kc:{crawl}:items`` through one consumer group (``feeds``):
``XREADGROUP`` a batch, write it to every sink, ``XACK`` it, then ``XTRIM MINID`` to the oldest entry
still pending (or just past the last one delivered). An entry leaves Redis only after every sink has
it, so Redis keeps only undelivered items however many rounds run. A slave SIGKILLed mid-batch leaves
its entries pending: any slave takes them over with ``XAUTOCLAIM`` once they have been idle
``claim_idle_s``, and writes them again; the sinks' writes are idempotent by the item's key (the
content key, or the stream id), so nothing is written twice. Only idempotent sinks are delivered to
this way: PostgreSQL (upsert by key) and S3 (one object per batch, named by the batch's first entry
id: a batch taken over is the dead consumer's whole batch, claimed by owner, so it is written to the
same object); files of a distributed crawl come from ``kubecrawl export``.

Entries carry ``v`` (:data:`ITEM_WIRE_VERSION`), the version of their envelope; entries without one
(written before it existed) are version 1. An entry of an unknown version is not delivered: it is
moved, as it is, to the stream ``<stream>:unknown-version`` (never trimmed) for a newer worker or
``redis-cli``, then acked; counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import ConfigurationError, StorageError
from .sink import FeedItem, Sink, make_sink
from .spec import FeedSpec, redact

log = logging.getLogger(__name__)

GROUP = "feeds"
#: the version of an item stream entry's envelope (fields j, k, v); commit.lua writes it
ITEM_WIRE_VERSION = 1
IDEMPOTENT_KINDS = ("postgresql", "s3")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _next_id(stream_id: str) -> str:
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


class StreamDelivery:
    """One consumer of the ``feeds`` group: ``run()`` until ``stop()``, then ``drain()`` what is left."""

    def __init__(
        self,
        client: Any,
        stream: str,
        specs: list[FeedSpec],
        *,
        consumer: str,
        name: str,
        crawl: str,
        item_dedup: str,
        batch: int = 500,
        claim_idle_s: float = 30.0,
    ) -> None:
        bad = [redact(s.uri) for s in specs if s.kind not in IDEMPOTENT_KINDS]
        if bad:
            raise ConfigurationError(
                f"feeds {', '.join(bad)}: a distributed crawl delivers to postgresql:// and s3:// feeds only "
                "(files: kubecrawl export --redis-url ... --crawl ...)"
            )
        moving = [redact(s.uri) for s in specs if s.uses("round") or s.uses("time")]
        if moving:
            raise ConfigurationError(
                f"feeds {', '.join(moving)}: a distributed crawl's feeds cannot use %(round)s or %(time)s "
                "(slaves deliver the stream across rounds; a batch sent again must go to the same place)"
            )
        self.r = client
        self.stream = stream
        self.consumer = consumer
        self.crawl = crawl
        self.item_dedup = item_dedup
        self.batch = batch
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.sinks: list[Sink] = [
            make_sink(s, s.resolve(name, 0), name=name, item_dedup=item_dedup, origin=crawl) for s in specs
        ]
        self.delivered = 0
        #: entries of an envelope version this worker does not know (left in the stream)
        self.unknown_version = 0
        self.trimmed = 0
        self.redelivered = 0
        self._stop = asyncio.Event()

    async def open(self) -> None:
        try:
            await self.r.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except Exception as exc:  # BUSYGROUP: another slave made it
            if "BUSYGROUP" not in str(exc):
                raise
        for sink in self.sinks:
            sink.open(None)

    def stop(self) -> None:
        self._stop.set()

    def _items(self, entries: list[Any]) -> tuple[list[FeedItem], list[str], list[Any]]:
        """The entries' items, the ids to ack, and the entries of an unknown envelope version."""
        items: list[FeedItem] = []
        ids: list[str] = []
        unknown: list[Any] = []
        for eid, fields in entries:
            sid = _s(eid)
            if not fields or b"j" not in fields:
                ids.append(sid)
                continue  # trimmed under us (XAUTOCLAIM reports deleted entries as nil)
            ids.append(sid)
            version = fields.get(b"v", b"1")
            if version != str(ITEM_WIRE_VERSION).encode():
                unknown.append((sid, version, fields))
                continue
            hexkey = fields.get(b"k")
            key = None if hexkey is None else _unhex(hexkey)
            if key is None or self.item_dedup == "off":
                key = f"{self.crawl}:{sid}".encode()
            items.append(FeedItem(len(items), bytes(fields[b"j"]), bytes(key), ref=_padded(sid)))
        return items, ids, unknown

    async def _deliver(self, entries: list[Any]) -> int:
        items, ids, unknown = self._items(entries)
        if not ids:
            return 0
        for sid, version, fields in unknown:
            await self.r.xadd(f"{self.stream}:unknown-version", {b"id": sid, **fields})
            self.unknown_version += 1
            log.error(
                "item stream entry %s has envelope version %r (this worker reads %d): moved to %s:unknown-version "
                "for a newer worker (%d so far)",
                sid,
                version,
                ITEM_WIRE_VERSION,
                self.stream,
                self.unknown_version,
            )
        for sink in self.sinks:
            await asyncio.to_thread(sink.write, items)  # raises StorageError: entries stay pending
        await self.r.xack(self.stream, GROUP, *ids)
        self.delivered += len(items)
        await self._trim()
        return len(ids)

    async def _trim(self) -> None:
        pending = await self.r.xpending(self.stream, GROUP)
        if pending and pending.get("pending"):
            minid = _s(pending["min"])
        else:
            groups = await self.r.xinfo_groups(self.stream)
            last = next((_s(g["last-delivered-id"]) for g in groups if _s(g["name"]) == GROUP), None)
            if last is None:
                return
            minid = _next_id(last)
        self.trimmed += int(await self.r.xtrim(self.stream, minid=minid, approximate=False))

    async def _step(self, block_ms: int | None) -> int:
        # first what a dead consumer left pending, then new entries
        claimed = await self._claim()
        if claimed:
            self.redelivered += len(claimed)
            return await self._deliver(claimed)
        # entries this consumer read before a restart (same stable name): "0" re-reads its own pending
        own = await self.r.xreadgroup(GROUP, self.consumer, {self.stream: "0"}, count=self.batch)
        if own and own[0][1]:
            self.redelivered += len(own[0][1])
            return await self._deliver(own[0][1])
        got = await self.r.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=self.batch, block=block_ms)
        return await self._deliver(got[0][1]) if got else 0

    async def _claim(self) -> list[Any]:
        """The pending entries of one consumer idle ``claim_idle_s``: its whole batch, taken over.

        A consumer holds at most one batch unacked (it reads, writes, acks, and re-reads its own pending
        before new entries), so claiming by owner keeps batches as they were read: a sink that names
        objects by a batch's first entry (S3) writes a taken-over batch to the same object again."""
        rows = await self.r.xpending_range(
            self.stream, GROUP, min="-", max="+", count=self.batch, idle=self.claim_idle_ms
        )
        if not rows:
            return []
        owner = rows[0]["consumer"]
        ids = [r["message_id"] for r in rows if r["consumer"] == owner]
        claimed = await self.r.xclaim(self.stream, GROUP, self.consumer, self.claim_idle_ms, ids)
        return list(claimed or [])

    async def run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                await self._step(block_ms=500)
                delay = 0.5
            except (StorageError, OSError, ConnectionError) as exc:
                log.error("feed delivery failed (items stay in the stream, retried): %s", exc)
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 5.0)

    async def drain(self, attempts: int = 20) -> None:
        """Deliver what is in the stream now (before a slave exits); gives up after repeated failures.

        Entries another consumer holds unacknowledged (a killed slave's batch, or a live slave's batch
        being written) are waited for: taken over once idle ``claim_idle_s``, or acked by their owner.
        So the last slave to exit leaves nothing undelivered in the stream.
        """
        failures = 0
        waited_since: float | None = None
        limit_s = self.claim_idle_ms / 1000 * 2 + 10
        loop = asyncio.get_running_loop()
        while failures < attempts:
            try:
                if await self._step(block_ms=None):
                    waited_since = None
                    continue
                pending = await self.r.xpending(self.stream, GROUP)
                if not pending or not pending.get("pending"):
                    return
                now = loop.time()
                waited_since = now if waited_since is None else waited_since
                if now - waited_since > limit_s:
                    log.warning(
                        "feed delivery: %d item(s) still held by another consumer; they stay in the stream",
                        pending["pending"],
                    )
                    return
                await asyncio.sleep(0.2)
            except (StorageError, OSError, ConnectionError) as exc:
                failures += 1
                log.error("feed delivery failed while draining (%d/%d): %s", failures, attempts, exc)
                await asyncio.sleep(min(0.5 * failures, 5.0))

    async def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        log.info(
            "feed delivery: %d item(s) delivered, %d redelivered, %d stream entries trimmed",
            self.delivered,
            self.redelivered,
            self.trimmed,
        )


def _padded(stream_id: str) -> str:
    """A stream id whose names sort as the ids do: ``1733000000000-7`` → ``001733000000000-0000000007``."""
    ms, _, seq = stream_id.partition("-")
    return f"{int(ms):015d}-{int(seq or 0):010d}"


def _unhex(raw: bytes) -> bytes | None:
    """The content key of a stream entry (hex on the wire; None if it is not hex)."""
    try:
        return bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
