"""The `raw/` zone: events-raw as it arrived, in Firehose's S3 format (the replay source).

Firehose (stacks/ingest.py) writes GZIP objects of newline-delimited records into
`raw/year=YYYY/month=MM/day=DD/hour=HH/` of the arrival time, named
`<delivery stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>.gz` after when the object was written.
`put_raw` writes the same format for the local stand-in. A record's replay arrival time is its
object's name time: never earlier than the real arrival, so the future-event check is never
stricter on replay than it was live.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.lake import layout
from pipeline.lake.store import Lake

_NAME_TIME = re.compile(r"-(\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-")
_HOUR_MS = 3_600_000
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class RawRecord:
    data: bytes
    arrival_ms: int
    origin: str  # `<object key>:<line>`: where a bad row came from


def raw_object_name(delivery_stream: str, written_ms: int, suffix: str) -> str:
    return f"{delivery_stream}-1-{layout.utc(written_ms):%Y-%m-%d-%H-%M-%S}-{suffix}.gz"


def raw_object(blobs: list[bytes]) -> bytes:
    """Firehose's body: each record followed by a newline (AppendDelimiterToRecord), GZIP'd."""
    return gzip.compress(b"".join(blob + b"\n" for blob in blobs), mtime=0)


def put_raw(lake: Lake, delivery_stream: str, blobs: list[bytes], written_ms: int, suffix: str) -> str:
    """Archive `blobs` as one Firehose-style object; returns its key."""
    key = layout.raw_prefix(written_ms) + raw_object_name(delivery_stream, written_ms, suffix)
    lake.put(key, raw_object(blobs))
    return key


def raw_keys(lake: Lake, start_ms: int, end_ms: int) -> list[str]:
    """Every raw object of the arrival hours overlapping [start_ms, end_ms), in arrival order."""
    keys: list[str] = []
    hour = start_ms - start_ms % _HOUR_MS
    while hour < end_ms:
        keys.extend(lake.keys(layout.raw_prefix(hour)))
        hour += _HOUR_MS
    return keys


def _arrival_ms(key: str) -> int:
    match = _NAME_TIME.search(key.rsplit("/", 1)[-1])
    if match:
        return int(datetime.strptime(match[1], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC).timestamp() * 1000)
    # Not a Firehose name: the end of its hour partition, the latest it can have arrived.
    hour = datetime.strptime(key[len(layout.RAW) :].rsplit("/", 1)[0], "year=%Y/month=%m/day=%d/hour=%H")
    return int((hour.replace(tzinfo=UTC) + timedelta(hours=1)).timestamp() * 1000) - 1


def read_raw_object(key: str, body: bytes) -> list[RawRecord]:
    text = gzip.decompress(body) if body.startswith(GZIP_MAGIC) else body
    arrival = _arrival_ms(key)
    return [RawRecord(line, arrival, f"{key}:{n}") for n, line in enumerate(text.split(b"\n"), 1) if line]
