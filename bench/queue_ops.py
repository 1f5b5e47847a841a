"""Cost of kubecrawl.queue's calls on each store, one run: ``python -m bench.queue_ops`` (docs/queue.md).

Prints per store: ``put_many`` throughput (500 per commit), one ``put`` and one ``get`` + ``task_done``
(each a store round trip or two). A real redis-server on a free port; URLs on one host, no per-host limit.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from kubecrawl.queue import RequestQueue
from tests.helpers.redis_server import RedisServer

BULK = 10_000
SINGLE = 2_000


def main() -> None:
    server = RedisServer(Path(tempfile.mkdtemp(prefix="kc-bench-redis-"))).start()
    try:
        stores: list[tuple[str, dict[str, object]]] = [
            ("memory", {}),
            ("sqlite", {"state_dir": tempfile.mkdtemp(prefix="kc-bench-state-")}),
            ("redis", {"redis_url": server.url}),
        ]
        for name, kw in stores:
            with RequestQueue.open("bench", concurrency_per_host=10_000, **kw) as q:
                urls = [f"http://books.test/p/{i}" for i in range(BULK + SINGLE)]
                t = time.perf_counter()
                q.put_many(urls[:BULK])
                bulk = BULK / (time.perf_counter() - t)
                t = time.perf_counter()
                for u in urls[BULK:]:
                    q.put(u)
                put_us = (time.perf_counter() - t) / SINGLE * 1e6
                t = time.perf_counter()
                for _ in range(SINGLE):
                    q.get()
                    q.task_done()
                get_us = (time.perf_counter() - t) / SINGLE * 1e6
            print(f"{name:7s} put_many {bulk:8.0f}/s   put {put_us:6.0f} us   get+task_done {get_us:6.0f} us")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
