"""Fingerprint encodings: Bloom filter sizing and false-positive rate, intset bucket members."""

from __future__ import annotations

import hashlib
import math

import pytest

from kubecrawl.backends.bloom import BloomParams, LocalBloom, bloom_offsets, bucket_count, set_member


def fps(prefix: str, n: int) -> list[bytes]:
    return [hashlib.sha1(f"{prefix}{i}".encode()).digest() for i in range(n)]


def test_bloom_size_follows_the_textbook_formula() -> None:
    p = BloomParams.for_capacity(1_000_000, 0.001)
    assert p.hashes == 10
    assert p.bits == math.ceil(1_000_000 * -math.log(0.001) / math.log(2) ** 2) == 14_377_588
    assert p.bytes_per_element < 1.8
    assert p.shards == 1


def test_bloom_shards_when_one_redis_string_cannot_hold_the_bits() -> None:
    p = BloomParams.for_capacity(1_000_000_000, 0.001)
    assert p.shards == 4 and p.shard_bits <= 1 << 32
    shard, offs = bloom_offsets(hashlib.sha1(b"x").digest(), p)
    assert 0 <= shard < 4 and all(0 <= o < p.shard_bits for o in offs)


def test_bloom_false_positive_rate_on_a_million_fingerprints_is_within_twice_the_configured_rate() -> None:
    rate = 0.001
    n = 1_000_000
    bloom = LocalBloom(BloomParams.for_capacity(n, rate))
    for fp in fps("https://example.com/page/", n):
        bloom.add(fp)
    probes = fps("https://example.org/other/", n)
    false_positives = sum(1 for fp in probes if fp in bloom)
    measured = false_positives / n
    assert 0 < measured <= 2 * rate, f"measured {measured:.5f} vs configured {rate}"


def test_bloom_never_forgets_what_it_holds() -> None:
    bloom = LocalBloom(BloomParams.for_capacity(10_000, 0.01))
    added = fps("a", 10_000)
    for fp in added:
        bloom.add(fp)
    assert all(fp in bloom for fp in added)


@pytest.mark.parametrize(("capacity", "buckets"), [(1000, 16), (10_000_000, 8192), (100_000_000, 65536)])
def test_bucket_count_is_a_power_of_two_sized_from_the_capacity(capacity: int, buckets: int) -> None:
    assert bucket_count(capacity) == buckets


def test_set_member_is_a_signed_64_bit_integer_from_the_digest() -> None:
    fp = bytes(range(20))
    bucket, member = set_member(fp, 8192)
    assert member == int.from_bytes(fp[:8], "big", signed=True)
    assert -(1 << 63) <= member < 1 << 63 and 0 <= bucket < 8192
