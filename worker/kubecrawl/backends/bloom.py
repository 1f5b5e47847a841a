"""Request fingerprints as Redis members: 64-bit integers in intset buckets, or Bloom filter bit offsets.

Both variants are pure functions of the 20-byte SHA1 request fingerprint; the Lua commit script only
runs SISMEMBER/SADD or GETBIT/SETBIT on what these functions compute, so the maths is testable here.

* ``set`` (exact at 64 bits): the first 8 bytes as a signed integer, in one of ``buckets`` SETs chosen
  by bytes 8..12. Redis keeps an all-integer set as an *intset* (8 bytes per member) while it holds at
  most ``set-max-intset-entries`` members, so a bucket count sized from the expected crawl size keeps
  every bucket small and packed. Two different URLs collide with probability about n²/2⁶⁵.
* ``bloom``: ``k`` offsets by double hashing (Kirsch-Mitzenmacher) in one of ``shards`` bitmaps
  (a Redis string holds at most 2³² bits), chosen by bytes 16..20.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: the intset bucket size aimed at when the crawl reaches its expected size
BUCKET_TARGET = 2048
#: ``set-max-intset-entries`` the Redis store asks for (best effort) so buckets stay intsets
INTSET_ENTRIES = 4096
_MAX_SHARD_BITS = 1 << 32


def bucket_count(capacity: int) -> int:
    """Power of two ≥ capacity / BUCKET_TARGET (at least 16)."""
    want = max(16, math.ceil(capacity / BUCKET_TARGET))
    return 1 << (want - 1).bit_length()


def set_member(fp: bytes, buckets: int) -> tuple[int, int]:
    """(bucket, signed 64-bit member) of a 20-byte fingerprint."""
    member = int.from_bytes(fp[0:8], "big", signed=True)
    bucket = int.from_bytes(fp[8:12], "big") % buckets
    return bucket, member


@dataclass(frozen=True, slots=True)
class BloomParams:
    """Size of a Bloom filter for ``capacity`` elements at ``error_rate`` false positives."""

    capacity: int
    error_rate: float
    bits: int  # total bits over all shards
    hashes: int
    shards: int

    @classmethod
    def for_capacity(cls, capacity: int, error_rate: float) -> BloomParams:
        if capacity < 1 or not 0 < error_rate < 1:
            raise ValueError("bloom capacity must be ≥ 1 and error rate in (0, 1)")
        bits = math.ceil(-capacity * math.log(error_rate) / math.log(2) ** 2)
        hashes = max(1, round(bits / capacity * math.log(2)))
        shards = max(1, math.ceil(bits / _MAX_SHARD_BITS))
        return cls(capacity, error_rate, bits, hashes, shards)

    @property
    def shard_bits(self) -> int:
        return math.ceil(self.bits / self.shards)

    @property
    def bytes_per_element(self) -> float:
        return self.bits / 8 / self.capacity


def bloom_offsets(fp: bytes, p: BloomParams) -> tuple[int, list[int]]:
    """(shard, k bit offsets in that shard) of a 20-byte fingerprint."""
    m = p.shard_bits
    h1 = int.from_bytes(fp[0:8], "big")
    h2 = int.from_bytes(fp[8:16], "big") | 1
    shard = int.from_bytes(fp[16:20], "big") % p.shards
    return shard, [(h1 + i * h2) % m for i in range(p.hashes)]


class LocalBloom:
    """The same filter in process memory (a bytearray): for tests and for sizing experiments."""

    def __init__(self, p: BloomParams) -> None:
        self.p = p
        self._bits = [bytearray((p.shard_bits + 7) // 8) for _ in range(p.shards)]

    def add(self, fp: bytes) -> bool:
        """Set the bits of ``fp``; True if at least one was unset (the element was new)."""
        shard, offs = bloom_offsets(fp, self.p)
        bits = self._bits[shard]
        new = False
        for o in offs:
            byte, mask = o >> 3, 0x80 >> (o & 7)  # Redis SETBIT bit order: MSB first
            if not bits[byte] & mask:
                bits[byte] |= mask
                new = True
        return new

    def __contains__(self, fp: bytes) -> bool:
        shard, offs = bloom_offsets(fp, self.p)
        bits = self._bits[shard]
        return all(bits[o >> 3] & (0x80 >> (o & 7)) for o in offs)

    def shard_bytes(self, shard: int) -> bytes:
        return bytes(self._bits[shard])
