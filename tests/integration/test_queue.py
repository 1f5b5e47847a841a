"""``kubecrawl.queue``: the ``queue.Queue`` interface and the fingerprint set over memory, SQLite and Redis.

The reference for the interface is Python's own ``queue.Queue`` (and ``set``): the same script runs
against it and against each store, and the traces must be equal. Redis is a real redis-server.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from kubecrawl import Request
from kubecrawl.queue import FingerprintSet, InvalidRequest, RequestQueue
from kubecrawl.status import read_status
from tests.helpers.redis_server import RedisServer

STORES = ["memory", "sqlite", "redis"]
ROOT = Path(__file__).resolve().parents[2]


class Target:
    """How to open a queue on one store kind: the one argument that differs."""

    def __init__(self, kind: str, tmp: Path, server: RedisServer | None) -> None:
        self.kind = kind
        self.tmp = tmp
        self.server = server
        self.crawl = f"q-{kind}"

    @property
    def kwargs(self) -> dict[str, Any]:
        if self.kind == "sqlite":
            return {"state_dir": str(self.tmp / "state")}
        if self.kind.startswith("redis"):
            assert self.server is not None
            kw: dict[str, Any] = {"redis_url": self.server.url}
            if self.kind == "redis-bloom":
                kw |= {"dedup": "bloom", "bloom_capacity": 10_000}
            return kw
        return {}

    def open(self, **kw: Any) -> RequestQueue:
        return RequestQueue.open(self.crawl, **(self.kwargs | kw))

    def counters(self, q: RequestQueue) -> dict[str, int]:
        """The crawl's counters as a user reads them: `kubecrawl status` (Redis) or the state dir."""
        if self.kind == "sqlite":
            return q._store.run(_stored_stats(q))
        if self.kind.startswith("redis"):
            assert self.server is not None
            return read_status(self.server.client(), self.crawl).stats
        return dict(q.backend.stats)  # type: ignore[attr-defined]


async def _stored_stats(q: RequestQueue) -> dict[str, int]:
    return q.backend.stored_stats()  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(params=STORES)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    server = request.getfixturevalue("redis_server") if request.param == "redis" else None
    return Target(request.param, tmp_path, server)


@pytest.fixture
def opened(target: Target) -> Iterator[Callable[..., RequestQueue]]:
    queues: list[RequestQueue] = []

    def make(**kw: Any) -> RequestQueue:
        q = target.open(**kw)
        queues.append(q)
        return q

    yield make
    for q in queues:
        q.close()


def _value(x: Any) -> Any:
    return x.url if isinstance(x, Request) else x


def queue_script(q: Any) -> list[Any]:
    """One sequence of queue.Queue calls; what each observable call answered or raised."""
    trace: list[Any] = []

    def rec(name: str, fn: Callable[[], Any]) -> None:
        try:
            out = fn()
            trace.append((name, _value(out) if name.startswith("get") else None))
        except Exception as exc:
            trace.append((name, type(exc).__name__))

    urls = [f"http://127.0.0.1:9/page/{i}" for i in range(5)]
    trace.append(("maxsize", q.maxsize))
    trace.append(("empty", q.empty()))
    trace.append(("qsize", q.qsize()))
    rec("get_nowait", q.get_nowait)
    rec("get(timeout)", lambda: q.get(timeout=0.05))
    rec("get(block=False)", lambda: q.get(block=False))
    for u in urls[:3]:
        rec("put", lambda u=u: q.put(u))
    trace.append(("full", q.full()))
    trace.append(("qsize", q.qsize()))
    rec("put_nowait", lambda: q.put_nowait(urls[3]))
    rec("put(timeout)", lambda: q.put(urls[3], timeout=0.05))
    rec("put(block=False)", lambda: q.put(urls[3], block=False))
    rec("get", q.get)
    trace.append(("full", q.full()))
    rec("put_nowait", lambda: q.put_nowait(urls[3]))
    rec("get", q.get)
    rec("get", lambda: q.get(timeout=5))
    rec("get_nowait", q.get_nowait)
    trace.append(("empty", q.empty()))
    rec("get_nowait", q.get_nowait)
    rec("get(timeout=-1)", lambda: q.get(timeout=-1))
    for _ in range(4):
        rec("task_done", q.task_done)
    rec("task_done", q.task_done)
    rec("join", q.join)
    rec("put", lambda: q.put(urls[4]))
    rec("get", q.get)
    rec("task_done", q.task_done)
    rec("join", q.join)
    trace.append(("qsize", q.qsize()))
    return trace


def test_the_same_calls_answer_as_pythons_queue(opened: Callable[..., RequestQueue]) -> None:
    expected = queue_script(queue.Queue(maxsize=3))
    assert ("get_nowait", "Empty") in expected and ("put_nowait", "Full") in expected  # the reference ran
    assert queue_script(opened(maxsize=3)) == expected


def test_get_with_timeout_raises_queue_empty_and_full_needs_a_maxsize(opened: Callable[..., RequestQueue]) -> None:
    q = opened()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    for i in range(50):
        q.put(f"http://127.0.0.1:9/{i}")
    assert not q.full() and q.maxsize == 0 and q.qsize() == 50
    q.maxsize = 50  # as queue.Queue: an attribute
    assert q.full()
    with pytest.raises(queue.Full):
        q.put("http://127.0.0.1:9/one-more", timeout=0.1)
    with pytest.raises(queue.Full):
        q.put_nowait("http://127.0.0.1:9/one-more")
    q.get(timeout=5)
    assert not q.full() and q.put_nowait("http://127.0.0.1:9/one-more") is True


def test_join_returns_once_every_item_is_task_done(opened: Callable[..., RequestQueue]) -> None:
    q = opened()
    n = 40
    for i in range(n):
        assert q.put(Request(f"http://127.0.0.1:9/j/{i}", priority=i % 3))
    with pytest.raises(TimeoutError):
        q.join(timeout=0.1)  # nobody consumes: join must not return
    got: list[str] = []
    lock = threading.Lock()

    def consumer() -> None:
        while True:
            try:
                req = q.get(timeout=1)
            except queue.Empty:
                return
            with lock:
                got.append(req.url)
            q.task_done()

    threads = [threading.Thread(target=consumer) for _ in range(3)]
    for t in threads:
        t.start()
    q.join(timeout=60)
    assert q.qsize() == 0 and q.unfinished_tasks == 0
    with lock:
        assert sorted(got) == sorted(f"http://127.0.0.1:9/j/{i}" for i in range(n))
    for t in threads:
        t.join(timeout=30)


def test_put_deduplicates_as_the_engine_does(opened: Callable[..., RequestQueue], target: Target) -> None:
    q = opened()
    assert q.put("http://127.0.0.1:9/a?x=1&y=2") is True
    assert q.put("http://127.0.0.1:9/a?x=1&y=2") is False
    assert q.put("http://127.0.0.1:9/a?y=2&x=1#frag") is False  # the same canonical URL
    assert q.put(Request("http://127.0.0.1:9/a?x=1&y=2", dont_filter=True)) is True
    assert q.put(Request("http://127.0.0.1:9/a?x=1&y=2", method="POST", body=b"q")) is True
    with pytest.raises(InvalidRequest) as bad:
        q.put("ftp://127.0.0.1/file")
    assert bad.value.kind == "skipped_scheme"
    with pytest.raises(InvalidRequest) as bad:
        q.put("http://127.0.0.1:99999/")
    assert bad.value.kind == "bad_url"
    if target.kind != "memory":  # the stores that serialise requests: meta must be JSON data
        with pytest.raises(InvalidRequest) as bad:
            q.put(Request("http://127.0.0.1:9/meta", meta={"tags": {1, 2}}))
        assert bad.value.kind == "unserializable_meta"
    assert q.qsize() == 3
    got = [q.get(timeout=5) for _ in range(3)]
    assert {(r.method, r.url, r.dont_filter) for r in got} == {
        ("GET", "http://127.0.0.1:9/a?x=1&y=2", False),
        ("GET", "http://127.0.0.1:9/a?x=1&y=2", True),
        ("POST", "http://127.0.0.1:9/a?x=1&y=2", False),
    }
    counters = target.counters(q)
    assert counters.get("pushed") == 3 and counters.get("pushed_duplicate") == 2


def test_priority_order_and_callbacks_survive_the_store(opened: Callable[..., RequestQueue]) -> None:
    q = opened()
    q.put(Request("http://127.0.0.1:9/low", priority=-5))
    q.put(Request("http://127.0.0.1:9/high", callback="parse_item", priority=10, meta={"k": [1, "two"]}))
    q.put("http://127.0.0.1:9/mid")
    first = q.get(timeout=5)
    assert (first.url, first.callback, first.meta) == ("http://127.0.0.1:9/high", "parse_item", {"k": [1, "two"]})
    assert [q.get(timeout=5).url for _ in range(2)] == ["http://127.0.0.1:9/mid", "http://127.0.0.1:9/low"]
    q.task_done(first)
    q.task_done()
    q.task_done()
    with pytest.raises(ValueError):
        q.task_done()


def test_gotten_and_not_done_goes_back_at_close(target: Target) -> None:
    q = target.open()
    q.put("http://127.0.0.1:9/back")
    assert q.get(timeout=5).url == "http://127.0.0.1:9/back"
    if target.kind == "memory":
        q.close()
        return  # nothing outlives a memory store: that is the whole of its guarantee
    q.close()
    q2 = target.open()
    try:
        assert q2.get(timeout=5).url == "http://127.0.0.1:9/back"
        q2.task_done()
    finally:
        q2.close()


# -- FingerprintSet -----------------------------------------------------------------------------


def set_script(s: Any) -> list[Any]:
    """The same calls on a Python set and a FingerprintSet (add's answer: Python's is None, so compare
    membership before it instead)."""
    trace: list[Any] = []
    urls = [f"http://127.0.0.1:9/fp/{i}" for i in range(4)]
    for u in [urls[0], urls[1], urls[0], urls[2]]:
        trace.append(("in", u in s))
        s.add(u)
        trace.append(("len", len(s)))
    trace.append(("in", urls[3] in s))
    trace.append(("in", urls[2] in s))
    return trace


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-bloom"])
def fp_target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    server = request.getfixturevalue("redis_server") if request.param.startswith("redis") else None
    return Target(request.param, tmp_path, server)


def test_fingerprint_set_behaves_as_a_set(fp_target: Target) -> None:
    expected = set_script(set())
    with fp_target.open() as q:
        assert set_script(q.fingerprints) == expected
        fps = q.fingerprints
        assert fps.add("http://127.0.0.1:9/new") is True
        assert fps.add("http://127.0.0.1:9/new#x") is False  # same fingerprint
        assert q.put("http://127.0.0.1:9/new") is False  # known: the queue filters it
        assert q.put("http://127.0.0.1:9/other") is True
        assert "http://127.0.0.1:9/other" in fps  # put records the fingerprint
        assert Request("http://127.0.0.1:9/other", method="POST") not in fps
        assert 42 not in fps  # type: ignore[operator]
        assert fps.update(["http://127.0.0.1:9/u1", "http://127.0.0.1:9/u2", "http://127.0.0.1:9/new"]) == 2


def test_fingerprint_set_opened_alone_sees_the_crawls_fingerprints(redis_server: RedisServer) -> None:
    with RequestQueue.open("shared", redis_url=redis_server.url) as q:
        q.put("http://127.0.0.1:9/seen")
    with FingerprintSet.open("shared", redis_url=redis_server.url) as fps:
        assert "http://127.0.0.1:9/seen" in fps and len(fps) == 1
    assert read_status(redis_server.client(), "shared").seen == 1


# -- a consumer killed between get and task_done ------------------------------------------------

CONSUMER = textwrap.dedent(
    """
    import sys
    from kubecrawl.queue import RequestQueue

    kw = dict(a.split("=", 1) for a in sys.argv[2:])
    q = RequestQueue.open("killed", **kw)
    req = q.get(timeout=30)
    if sys.argv[1] == "ack":
        q.task_done()
    print(req.url, flush=True)
    sys.stdin.read()  # wait to be killed
    """
)


def _consumer(tmp: Path, mode: str, kwargs: dict[str, Any]) -> subprocess.Popen[str]:
    script = tmp / "consumer.py"
    script.write_text(CONSUMER)
    args = [sys.executable, str(script), mode, *(f"{k}={v}" for k, v in kwargs.items())]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_consumer_killed_between_get_and_task_done_hands_its_item_back(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("redis_server") if kind == "redis" else None
    t = Target(kind, tmp_path, server)
    t.crawl = "killed"
    kw = t.kwargs | ({"lease_seconds": 1} if kind == "redis" else {})
    with RequestQueue.open("killed", **kw) as q:
        q.put("http://127.0.0.1:9/done")
        q.put("http://127.0.0.1:9/dropped")
    for mode, url in (("ack", "http://127.0.0.1:9/done"), ("noack", "http://127.0.0.1:9/dropped")):
        proc = _consumer(tmp_path, mode, kw)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line == url, f"consumer said {line!r}"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    # the first consumer acked its item; the second was killed before task_done: only that one comes back
    with RequestQueue.open("killed", **kw) as q:
        back = q.get(timeout=60)
        assert back.url == "http://127.0.0.1:9/dropped"
        q.task_done()
        with pytest.raises(queue.Empty):
            q.get_nowait()
        assert q.qsize() == 0 and q.backend is not None
    if server is not None:
        st = read_status(redis.Redis.from_url(server.url), "killed")
        assert st.stats.get("lease_expired") == 1 and st.in_flight == 0
