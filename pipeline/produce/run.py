"""Drive a workload into a stream (or nowhere, for a plan): pacing, chunked puts, the manifest."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice

from pipeline.contract import BadRowReason
from pipeline.produce.kinesis import RECORD_TOO_LARGE, KinesisWriter, PutResult
from pipeline.produce.manifest import Manifest, ManifestBuilder
from pipeline.produce.workload import Record, Workload

MAX_CHUNK = 5_000  # user records per writer.put: bounded memory, and progress that moves


@dataclass
class RunSummary:
    offered: int = 0  # user records handed to the writer
    sent: int = 0
    retried: int = 0
    failed: int = 0  # final failures other than the planned oversize refusals
    rejected: int = 0  # planned: oversize records refused before sending
    errors: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def records_per_s(self) -> float:
        return self.offered / self.elapsed_s if self.elapsed_s > 0 else 0.0


@contextmanager
def batch_gc(gen0_threshold: int = 50_000) -> Iterator[None]:
    """For a process that does nothing but produce: collect young objects 70x less often and stop
    re-scanning the long-lived heap (modules, schemas, lookup tables).

    The generator allocates a few dicts per event and makes no reference cycles (reference counting
    frees it all), but each chunk of records lives through many collections of the default
    thresholds: a third of the CPU time of `pipeline produce` went to the cycle collector.
    """
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(gen0_threshold, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def plan(workload: Workload) -> Manifest:
    """The manifest of a run in which the stream accepts everything it can (no Kinesis needed)."""
    builder = ManifestBuilder(workload)
    for record in workload:
        if record.reason is BadRowReason.OVERSIZE:
            builder.add_unsent(record, RECORD_TOO_LARGE)
        else:
            builder.add_sent(record)
    return builder.build()


def run(
    workload: Workload,
    writer: KinesisWriter,
    rate: float | None = None,
    duration_s: float | None = None,
    on_progress: Callable[[int, PutResult], None] | None = None,
) -> tuple[Manifest, RunSummary]:
    """Put the workload at up to `rate` records/s, for at most `duration_s`; the manifest of what landed."""
    builder = ManifestBuilder(workload)
    summary = RunSummary()
    errors: Counter[str] = Counter()
    chunk_size = MAX_CHUNK if rate is None else max(1, min(MAX_CHUNK, int(rate / 10)))
    records = iter(workload)
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if duration_s is not None and elapsed >= duration_s:
            break
        if rate is not None:
            ahead = summary.offered / rate - elapsed
            if ahead > 0:
                time.sleep(ahead)
        chunk: list[Record] = list(islice(records, chunk_size))
        if not chunk:
            break
        result = writer.put([(r.partition_key, r.data) for r in chunk])
        failed = set(result.failed)
        for i in result.failed:  # refusals first: see ManifestBuilder
            builder.add_unsent(chunk[i], _code_of(chunk[i], result))
        for i, record in enumerate(chunk):
            if i not in failed:
                builder.add_sent(record)
        planned = sum(1 for i in result.failed if chunk[i].reason is BadRowReason.OVERSIZE)
        summary.offered += len(chunk)
        summary.sent += result.sent
        summary.retried += result.retried
        summary.rejected += planned
        summary.failed += len(result.failed) - planned
        errors.update(result.errors)
        if on_progress is not None:
            on_progress(len(chunk), result)
    summary.elapsed_s = time.monotonic() - start
    summary.errors = dict(errors)
    return builder.build(), summary


def _code_of(record: Record, result: PutResult) -> str:
    """The writer reports codes per put, not per record: an oversize refusal is the only one we can name
    per record; others share the put's codes (one code when a put fails one way, the usual case)."""
    if record.reason is BadRowReason.OVERSIZE and RECORD_TOO_LARGE in result.errors:
        return RECORD_TOO_LARGE
    others = [code for code in result.errors if code != RECORD_TOO_LARGE]
    return others[0] if len(others) == 1 else "+".join(sorted(others)) or "Unknown"
