import bisect
import hashlib
import itertools
import math
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest

from pipeline.contract import BadRowReason, DecodeError, WireFormat, contract, decode
from pipeline.contract.codec import MAX_RECORD_BYTES, check_event_time_skew
from pipeline.produce.kinesis import RECORD_TOO_LARGE
from pipeline.produce.manifest import Manifest, ManifestBuilder
from pipeline.produce.run import plan
from pipeline.produce.workload import (
    WINDOW_MS,
    DiurnalClock,
    PartitionKeyStrategy,
    Record,
    RecordKind,
    Workload,
    WorkloadConfig,
)

END_MS = 1_764_150_000_000  # 2025-11-26T09:40:00Z


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return list(Workload(WorkloadConfig(events=20_000, seed=7, end_ms=END_MS)))


@pytest.fixture(scope="module")
def workload() -> Workload:
    return Workload(WorkloadConfig(events=20_000, seed=7, end_ms=END_MS))


def _manifest_and_digest(config: WorkloadConfig) -> tuple[Manifest, str]:
    """One pass: the planned manifest (as `plan` makes it) and a digest of every key and byte."""
    workload = Workload(config)
    builder, digest = ManifestBuilder(workload), hashlib.sha256()
    for r in workload:
        digest.update(r.partition_key.encode())
        digest.update(r.data)
        if r.reason is BadRowReason.OVERSIZE:
            builder.add_unsent(r, RECORD_TOO_LARGE)
        else:
            builder.add_sent(r)
    return builder.build(), digest.hexdigest()


def test_a_seeded_50k_run_gives_the_same_manifest_and_bytes_twice() -> None:
    config = WorkloadConfig(events=50_000, seed=11, end_ms=END_MS)
    (first, first_bytes), (second, second_bytes) = _manifest_and_digest(config), _manifest_and_digest(config)
    assert first.to_dict() == second.to_dict()
    assert first_bytes == second_bytes
    assert first.records["sent"] + first.records["producer_rejected"] == 50_000


def test_another_seed_gives_another_workload() -> None:
    small = WorkloadConfig(events=5_000, seed=11, end_ms=END_MS)
    assert plan(Workload(small)) == _manifest_and_digest(small)[0]
    other = plan(Workload(WorkloadConfig(events=5_000, seed=12, end_ms=END_MS)))
    assert other.metrics != plan(Workload(small)).metrics


def test_record_counts_follow_the_configured_shares(records: list[Record]) -> None:
    kinds = Counter(r.kind for r in records)
    assert len(records) == 20_000
    assert kinds == {
        RecordKind.BAD: 100,  # 0.5 %
        RecordKind.DUPLICATE: 200,  # 1 %
        RecordKind.LATE: 40,  # 0.2 %
        RecordKind.EVENT: 20_000 - 340,
    }


def test_bad_rows_cover_every_reason_and_decode_to_it(records: list[Record], workload: Workload) -> None:
    bad = [r for r in records if r.kind is RecordKind.BAD]
    assert Counter(r.reason for r in bad) == {
        reason: pytest.approx(100 / 7, abs=1) for reason in BadRowReason
    }
    for r in bad:
        if r.reason is BadRowReason.OVERSIZE:
            assert len(r.data) > MAX_RECORD_BYTES
            continue
        if r.reason is BadRowReason.FUTURE_EVENT_TIME:
            event_time = decode(r.data).event["event_time"]
            with pytest.raises(DecodeError) as exc:
                check_event_time_skew(event_time, workload.end_ms + 3_600_000, 300)
            assert exc.value.reason is BadRowReason.FUTURE_EVENT_TIME
            continue
        with pytest.raises(DecodeError) as exc:
            decode(r.data)
        assert exc.value.reason is r.reason


def test_oversize_rows_are_one_app_log_with_a_1_mib_message_sent_again(records: list[Record]) -> None:
    # The generator makes the run's first oversize row once and repeats it (a retrying producer).
    oversize = [r for r in records if r.reason is BadRowReason.OVERSIZE]
    assert len(oversize) == 14
    assert {r.data for r in oversize} == {oversize[0].data}
    event = orjson.loads(oversize[0].data)
    assert event["event_type"] == "app_log"
    assert event["payload"]["message"] == "stack trace " + "x" * MAX_RECORD_BYTES
    assert len(oversize[0].data) > MAX_RECORD_BYTES


def test_valid_events_decode_and_are_dated_inside_the_span(records: list[Record], workload: Workload) -> None:
    writers: Counter[str] = Counter()
    formats: Counter[WireFormat] = Counter()
    for r in records:
        if r.kind is RecordKind.BAD:
            continue
        assert r.event is not None
        decoded = decode(r.data)
        assert decoded.event["event_id"] == r.event["event_id"]
        assert decoded.event["event_time"] == r.event["event_time"]
        assert workload.start_ms <= r.event["event_time"] <= workload.end_ms
        writers[decoded.writer.id] += 1
        formats[decoded.wire_format] += 1
    shipped = {sv.id for chain in contract().versions.values() for sv in chain.values()}
    assert set(writers) == shipped
    assert set(formats) == set(WireFormat)


def test_lateness_is_unambiguous_at_every_delivery_position(
    records: list[Record], workload: Workload
) -> None:
    """On-time events trail stream time by less than max_delay (their window is still open for the
    streaming job); late ones trail it by at least W + allowed lateness + out-of-orderness + margin."""
    stream_time = -1
    delayed = late = 0
    window_close_margin = []
    for r in records:
        if r.event is None:
            continue
        t = r.event["event_time"]
        if r.kind is RecordKind.LATE:
            late += 1
            assert stream_time - t >= workload.late_gap_ms
            window_end = t - t % WINDOW_MS + WINDOW_MS
            watermark = stream_time - workload.out_of_orderness_ms
            assert window_end + workload.allowed_lateness_ms <= watermark - 300_000
            continue
        stream_time = max(stream_time, t)
        lag = stream_time - t
        assert lag < workload.max_delay_ms
        delayed += lag > 0
        window_end = t - t % WINDOW_MS + WINDOW_MS
        window_close_margin.append(
            window_end + workload.allowed_lateness_ms - (stream_time - workload.out_of_orderness_ms)
        )
    assert late == 40
    assert delayed > 500  # 5 % out of order
    assert min(window_close_margin) > 0


def test_duplicates_resend_the_bytes_of_an_earlier_on_time_event(records: list[Record]) -> None:
    first: dict[str, Record] = {}
    for r in records:
        if r.kind is RecordKind.EVENT:
            assert r.event is not None
            first[r.event["event_id"]] = r
        elif r.kind is RecordKind.DUPLICATE:
            assert r.event is not None
            original = first[r.event["event_id"]]
            assert (original.partition_key, original.data) == (r.partition_key, r.data)


def test_sessions_walk_the_funnel_and_purchases_pay_for_the_cart(records: list[Record]) -> None:
    on_time = [r.event for r in records if r.kind is RecordKind.EVENT and r.event is not None]
    by_type = Counter(e["event_type"] for e in on_time)
    assert by_type["page_view"] > by_type["click"] > by_type["add_to_cart"] > by_type["purchase"] > 0
    assert 0.01 < by_type["purchase"] / by_type["page_view"] < 0.1
    late_sessions = {r.event["session_id"] for r in records if r.kind is RecordKind.LATE and r.event}
    carts: dict[str, int] = defaultdict(int)
    checked = 0
    for e in sorted(on_time, key=lambda e: (e["event_time"], e["event_id"])):
        if e["session_id"] in late_sessions:
            continue
        if e["event_type"] == "add_to_cart":
            carts[e["session_id"]] += e["payload"]["quantity"] * e["payload"]["unit_price_minor"]
        elif e["event_type"] == "purchase":
            assert e["payload"]["amount_minor"] == carts.pop(e["session_id"])
            checked += 1
    assert checked > 50


def test_users_keep_their_device_and_bots_have_no_user(records: list[Record]) -> None:
    seen: dict[str, tuple[Any, Any]] = {}
    bots = 0
    for r in records:
        e = r.event
        if e is None or e["event_type"] not in ("page_view", "click", "add_to_cart", "purchase"):
            continue
        if e["user_id"] is None:
            assert "bot" in e["user_agent"].lower()
            bots += 1
            continue
        assert seen.setdefault(e["user_id"], (e["user_agent"], e["ip"])) == (e["user_agent"], e["ip"])
    assert bots > 0
    ips = [v[1] for v in seen.values()]
    assert any(":" in ip for ip in ips) and any("." in ip for ip in ips)


def test_sensor_values_are_exact_in_avro_float() -> None:
    records = list(Workload(WorkloadConfig(events=3_000, seed=3, end_ms=END_MS, late=0)))
    for r in records:
        if r.kind is RecordKind.EVENT and r.event and r.event["event_type"] == "sensor_reading":
            assert decode(r.data).event["payload"]["value"] == r.event["payload"]["value"]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (PartitionKeyStrategy.USER, lambda e: e["user_id"] or e["session_id"] or e["event_id"]),
        (PartitionKeyStrategy.SESSION, lambda e: e["session_id"] or e["event_id"]),
        (PartitionKeyStrategy.RANDOM, lambda e: e["event_id"]),
    ],
)
def test_partition_key_strategies(strategy: PartitionKeyStrategy, expected: Any) -> None:
    config = WorkloadConfig(events=2_000, seed=5, end_ms=END_MS, partition_key=strategy, late=0)
    for r in Workload(config):
        if r.event is not None and r.event["event_type"] != "sensor_reading":
            assert r.partition_key == expected(r.event)


def test_device_partition_key_is_the_sensor() -> None:
    config = WorkloadConfig(
        events=2_000, seed=5, end_ms=END_MS, partition_key=PartitionKeyStrategy.DEVICE, late=0
    )
    sensors = [
        r for r in Workload(config) if r.event is not None and r.event["event_type"] == "sensor_reading"
    ]
    assert sensors and all(r.partition_key == r.event["payload"]["device_id"] for r in sensors if r.event)


def _reference_time(clock: DiurnalClock, k: int) -> int:
    """The k-th event time by the definition, in Python's mixed int and float arithmetic: the first
    grid cell whose cumulative intensity reaches (k + 0.5) / n, interpolated (the last cell past it)."""
    u = (k + 0.5) / clock.n
    cell = min(bisect.bisect_left(clock.cum, u, 1) - 1, clock.GRID - 1)
    lo, hi = clock.cum[cell], clock.cum[cell + 1]
    frac = (u - lo) / ((hi - lo) or 1.0)
    return math.floor(clock.start + (cell + min(frac, 1.0)) * clock.step)


@pytest.mark.parametrize(
    ("span_ms", "n"),
    [(900_000, 1), (900_000, 7), (2_000_000, 5_000), (3 * 86_400_000, 20_000), (12_345_678, 333)],
)
def test_clock_times_are_the_definition_in_float_arithmetic(span_ms: int, n: int) -> None:
    # `times` runs in floats only (faster): the same times, to the millisecond, through and past n.
    clock = DiurnalClock(END_MS - span_ms, END_MS, n)
    times = list(itertools.islice(clock.times(), n + 5))
    assert times == [_reference_time(clock, k) for k in range(n + 5)]
    assert times == sorted(times) and times[-1] == END_MS


def test_late_events_need_a_long_enough_span() -> None:
    with pytest.raises(ValueError, match="too short for late events"):
        Workload(WorkloadConfig(events=1_000, span_s=600, end_ms=END_MS))
    assert (
        Workload(WorkloadConfig(events=1_000, span_s=600, end_ms=END_MS, late=0)).start_ms == END_MS - 600_000
    )


def test_event_times_cannot_end_in_the_future() -> None:
    with pytest.raises(ValueError, match="in the future"):
        Workload(WorkloadConfig(events=1_000, end_ms=4_000_000_000_000))
