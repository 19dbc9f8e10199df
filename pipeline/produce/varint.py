"""Unsigned LEB128 varints, as Avro (after zigzag) and protobuf write them, made fast for the producer.

Why not a loop: Python's bitwise operators on ints above 2^30 (two internal digits) each allocate, and
the loop over the 6 bytes of an epoch-millis varint took about 0.5 us, a tenth of an event's budget.
Instead: a table for every 1- and 2-byte varint, and for larger values the table's low 14 bits
(continuation bits set) followed by the memoised varint of the rest, which barely changes from one
event time to the next.
"""

from __future__ import annotations

TABLE_BITS = 14
TABLE_SIZE = 1 << TABLE_BITS
_MEMO_LIMIT = 1 << 14  # distinct high parts remembered before the memo starts over


def _plain(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


VARINTS: list[bytes] = [_plain(n) for n in range(TABLE_SIZE)]  # the varint of every n below 2^14
LOW_BITS: list[bytes] = [bytes((n & 0x7F | 0x80, n >> 7 | 0x80)) for n in range(TABLE_SIZE)]
# The same for the zigzag (2n) of a non-negative n, indexed by n's low TABLE_BITS - 1 bits.
ZIGZAG_LOW_BITS: list[bytes] = [LOW_BITS[n << 1] for n in range(TABLE_SIZE >> 1)]
# The varint of the zigzag (2n) of every non-negative n below TABLE_SIZE / 2.
ZIGZAG_VARINTS: list[bytes] = VARINTS[::2]


class _HighParts(dict[int, bytes]):
    """n >> TABLE_BITS -> its varint, bounded."""

    def __missing__(self, high: int) -> bytes:
        if len(self) >= _MEMO_LIMIT:
            self.clear()
        encoded = self[high] = varint(high)
        return encoded


HIGH_PARTS = _HighParts()


def varint(n: int) -> bytes:
    """The varint of `n` (>= 0)."""
    if n < TABLE_SIZE:
        if n < 0:  # a negative index would quietly pick a table entry
            raise ValueError(f"a varint is unsigned, not {n}")
        return VARINTS[n]
    return LOW_BITS[n & (TABLE_SIZE - 1)] + HIGH_PARTS[n >> TABLE_BITS]
