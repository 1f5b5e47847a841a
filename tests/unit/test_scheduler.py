"""Scheduler units: commit batching bounds (issue 20: no single commit may freeze a shared Redis)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubecrawl import Request
from kubecrawl.backends.base import CommitResult, Lease, Outcome
from kubecrawl.backends.sqlite import SQLiteBackend
from kubecrawl.core.scheduler import Scheduler, commit_groups
from kubecrawl.settings import build_settings
from kubecrawl.stats import Stats


def _oc(lid: str | None, n: int) -> Outcome:
    return Outcome(lid, requests=[Request(f"http://example.com/{lid}/{i}") for i in range(n)])


@pytest.mark.parametrize("sizes", [[3, 3, 3], [10], [2, 5, 11, 1], [4], [0, 0, 9], []])
def test_commit_groups_bound_requests_and_keep_every_ack_last(sizes: list[int]) -> None:
    batch = [_oc(str(i), n) for i, n in enumerate(sizes)]
    groups = commit_groups(batch, 4)
    assert all(sum(len(o.requests) for o in g) <= 4 for g in groups)
    flat = [o for g in groups for o in g]
    assert sum(len(o.requests) for o in flat) == sum(sizes)
    assert [o.lease_id for o in flat if o.lease_id is not None] == [str(i) for i in range(len(sizes))]
    for i in range(len(sizes)):  # an outcome's ack comes after every part of its requests
        parts = [
            j for j, o in enumerate(flat) if o.requests and o.requests[0].url.startswith(f"http://example.com/{i}/")
        ]
        ack = next(j for j, o in enumerate(flat) if o.lease_id == str(i))
        assert all(j <= ack for j in parts)


class CountingSQLite(SQLiteBackend):
    calls: list[int]

    async def commit(self, outcomes: list[Outcome]) -> CommitResult:
        self.calls.append(sum(len(o.requests) for o in outcomes))
        return await super().commit(outcomes)


async def test_a_page_with_thousands_of_links_is_committed_in_bounded_steps(tmp_path: Path) -> None:
    store = CountingSQLite(tmp_path / "state")
    store.calls = []
    await store.open()
    try:
        sch = Scheduler(store, build_settings(cli={}, spider_settings={}, environ={}), Stats())
        await sch.commit_seeds([Request("http://example.com/")])
        (lease,) = await store.pop(1)
        sch.held[lease.id] = Lease(lease.id, lease.request)
        sch.active = 1
        sch.complete(_oc(lease.id, 4500))
        store.calls.clear()
        await sch.flush()
        assert store.calls == [2000, 2000, 500]
        assert await store.queued() == 4500
        assert sch.held == {}
    finally:
        await store.close()
