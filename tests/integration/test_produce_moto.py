"""The producer against moto: what was put reads back, decodes, and recounts to the manifest exactly."""

from collections import Counter
from typing import Any

import pytest

from pipeline.aws import client
from pipeline.contract import DecodeError, decode
from pipeline.contract.codec import check_event_time_skew
from pipeline.produce.kinesis import KinesisWriter, ensure_stream, read_stream
from pipeline.produce.manifest import Manifest, count
from pipeline.produce.run import plan, run
from pipeline.produce.workload import Workload, WorkloadConfig

END_MS = 1_764_150_000_000
TOLERANCE_S = 300


def _put(stream: str, config: WorkloadConfig, aggregate: bool, kinesis: Any = None) -> tuple[Manifest, Any]:
    kinesis = kinesis or client("kinesis")
    ensure_stream(client("kinesis"), stream, 2)
    writer = KinesisWriter(kinesis, stream, aggregate=aggregate, base_backoff_s=0.001, max_backoff_s=0.01)
    return run(Workload(config), writer)


def _recount(stream: str) -> dict[str, Any]:
    """Decode everything in the stream as the enricher will: bad rows by reason, copies per event_id."""
    bad: Counter[str] = Counter()
    copies: Counter[str] = Counter()
    events: dict[str, dict[str, Any]] = {}
    for user in read_stream(client("kinesis"), stream):
        try:
            event = decode(user.data).event
            check_event_time_skew(event["event_time"], END_MS, TOLERANCE_S)
        except DecodeError as exc:
            bad[exc.reason.value] += 1
            continue
        copies[event["event_id"]] += 1
        events.setdefault(event["event_id"], event)
    return {"bad": bad, "copies": copies, "events": events}


@pytest.mark.integration
def test_a_seeded_50k_workload_reads_back_and_recounts_to_the_manifest(moto_endpoint: str) -> None:
    config = WorkloadConfig(events=50_000, seed=21, end_ms=END_MS)
    manifest, summary = _put("raw", config, aggregate=True)
    assert (summary.offered, summary.failed, summary.retried) == (50_000, 0, 0)
    assert summary.rejected == manifest.producer_rejected["oversize"] > 0
    assert manifest == plan(Workload(config))  # nothing failed: the run's manifest is the plan

    got = _recount("raw")
    assert sum(got["bad"].values()) + sum(got["copies"].values()) == summary.sent
    assert {k: v for k, v in manifest.bad_rows.items() if v} == dict(got["bad"])
    dup_ids = sorted(i for i, n in got["copies"].items() for _ in range(n - 1))
    assert dup_ids == manifest.duplicates["event_ids"] and len(dup_ids) == 500
    events = got["events"]
    assert len(events) == manifest.events["distinct"]
    late = set(manifest.late["event_ids"])
    assert late <= set(events) and len(late) == 100

    assert count(events.values()).rows() == manifest.metrics["all"]
    assert count(e for i, e in events.items() if i not in late).rows() == manifest.metrics["on_time"]


@pytest.mark.integration
def test_aggregated_and_plain_records_decode_to_the_same_events(moto_endpoint: str) -> None:
    config = WorkloadConfig(events=4_000, seed=5, end_ms=END_MS)
    aggregated, _ = _put("agg", config, aggregate=True)
    plain, _ = _put("plain", config, aggregate=False)
    assert aggregated == plain
    a, p = _recount("agg"), _recount("plain")
    assert a["copies"] == p["copies"] and a["bad"] == p["bad"]
    assert a["events"] == p["events"]
    assert len(read_stream(client("kinesis"), "plain")) == len(read_stream(client("kinesis"), "agg"))


class ThrottlingKinesis:
    """moto behind a proxy that throttles some entries of the first calls, as a hot shard would: the
    throttled entries are not stored, the others are."""

    def __init__(self, real: Any, throttled_calls: int = 6) -> None:
        self.real, self.throttled_calls, self.calls, self.throttled = real, throttled_calls, 0, 0

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        throttle = [
            self.calls <= self.throttled_calls and (self.calls + i) % 3 == 0 for i in range(len(Records))
        ]
        passed = [r for r, t in zip(Records, throttle, strict=True) if not t]
        stored = iter(
            self.real.put_records(StreamName=StreamName, Records=passed)["Records"] if passed else []
        )
        out = []
        for t in throttle:
            if t:
                self.throttled += 1
                out.append(
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"}
                )
            else:
                out.append(next(stored))
        return {"FailedRecordCount": sum(throttle), "Records": out}


@pytest.mark.integration
@pytest.mark.parametrize("aggregate", [False, True])
def test_throttled_entries_are_retried_and_nothing_is_lost_or_doubled(
    moto_endpoint: str, aggregate: bool
) -> None:
    config = WorkloadConfig(events=3_000, seed=9, end_ms=END_MS)
    proxy = ThrottlingKinesis(client("kinesis"))
    manifest, summary = _put("hot", config, aggregate=aggregate, kinesis=proxy)
    assert proxy.throttled > 0 and summary.retried >= proxy.throttled
    assert summary.failed == 0 and summary.sent == 3_000 - summary.rejected
    assert manifest == plan(Workload(config))
    got = _recount("hot")
    planned_copies = Counter({i: 1 for i in got["events"]}) + Counter(manifest.duplicates["event_ids"])
    assert got["copies"] == planned_copies
    assert len(got["events"]) == manifest.events["distinct"]
