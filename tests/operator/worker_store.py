"""Drive a crawl's Redis with the worker's own store (kubecrawl.backends.redis), as master and slaves do.

So the operator's status is tested against keys written by the real worker code, not a hand-made copy.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from kubecrawl.backends.base import ItemRecord, Outcome
from kubecrawl.backends.redis import RedisBackend
from kubecrawl.request import Request


@dataclass
class WorkerStore:
    url: str
    password: str
    crawl: str

    def _run(self, fn: Any, leave: bool = True) -> Any:
        """Run fn on a fresh worker; `leave=False`: the worker stays registered (still alive, mid-work)."""

        async def main() -> Any:
            client = aioredis.Redis.from_url(self.url, password=self.password)
            # A fresh worker id per call: the store makes commits idempotent per (worker id, sequence).
            backend = RedisBackend(client, self.crawl, worker_id=f"test-worker-{uuid.uuid4().hex[:8]}")
            await backend.open()
            try:
                return await fn(backend)
            finally:
                if leave:
                    await backend.close()  # a clean exit also drops the worker from the live list
                else:
                    await client.aclose()

        return asyncio.run(main())

    def seed_round(self, urls: list[str], finish: bool = True) -> int:
        """What a master does: begin round R, enqueue the start requests, mark seeding done."""

        async def seed(b: RedisBackend) -> int:
            round_no = await b.begin_round()
            await b.commit([Outcome(None, requests=[Request(u, dont_filter=True) for u in urls])])
            if finish:
                await b.end_seeding(round_no)
            return round_no

        return int(self._run(seed))

    def crawl_pages(self, n: int, items_per_page: int = 1, errors: int = 0) -> int:
        """What a slave does for n pages: pop with a lease, store items and counters, ack."""

        async def work(b: RedisBackend) -> int:
            await b.heartbeat(b.worker_id)
            leases = await b.pop(n)
            outcomes = []
            for i, lease in enumerate(leases):
                items = [
                    ItemRecord.build({"url": lease.request.url, "title": f"t{j}"}, ["url", "title"])
                    for j in range(items_per_page)
                ]
                stats = {"pages": 1, "errors": 1 if i < errors else 0}
                outcomes.append(Outcome(lease.id, items=items, stats=stats))
            await b.commit(outcomes)
            return len(leases)

        return int(self._run(work))

    def lease_without_ack(self, n: int) -> int:
        """Requests popped by a live slave still working on them (in flight, heartbeat recent)."""

        async def pop(b: RedisBackend) -> int:
            await b.heartbeat(b.worker_id)
            return len(await b.pop(n))

        return int(self._run(pop, leave=False))
