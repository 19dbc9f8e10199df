"""The analytics job on the PyFlink mini cluster over crafted, out-of-order event sets.

Out-of-orderness 5 s and allowed lateness 120 s come from cdk.json (stage local) through the
properties; watermarks advance per record (watermark.interval.ms 0), so what is late is exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flink_harness import (
    T0,
    committed_rows,
    event,
    job_settings,
    run_to_end,
    without_emitted_at,
    write_spool,
)

S = 1000
M = 60_000

# Arrival order. Window A = [T0, T0+1m), B = [T0+1m, T0+2m).
SCENARIO = [
    event("pv1", "page_view", 1, "u1", url="/home"),
    event("pv2", "page_view", 2, "u2", url="/home"),
    event("pv1", "page_view", 1, "u1", url="/home"),  # duplicate delivery: counted once
    event("c1", "click", 3, "u1", url="/home", element_id="buy", x=1, y=2),
    event("p1", "purchase", 4, "u1", order_id="o1", amount_minor=1000, currency="EUR", item_count=1),
    event("s1", "sensor_reading", 5, None, device_id="dev-1", metric="temperature", value=20.0),
    event("s2", "sensor_reading", 6, None, device_id="dev-1", metric="temperature", value=23.0),
    event("pv3", "page_view", 61, "u3", url="/about"),
    # watermark -> T0+65s: window A fires (version 1)
    event("p2", "purchase", 70, "u2", order_id="o2", amount_minor=500, currency="EUR", item_count=1),
    # late but inside the lateness (A is kept until the watermark reaches T0+1m+120s-1ms): A re-fires
    event("p3", "purchase", 10, "u3", order_id="o3", amount_minor=250, currency="EUR", item_count=2),
    # watermark -> T0+195s: A is gone, B fires
    event("s3", "sensor_reading", 200, None, device_id="dev-1", metric="temperature", value=30.0),
    # too late for A: late sink, with the watermark it met
    event("pv4", "page_view", 30, "u4", url="/home"),
    # 31 minutes after u1's previous event: a new session
    event("pv5", "page_view", 4 + 31 * 60, "u1", url="/home"),
]


@dataclass(frozen=True)
class JobOutput:
    metrics: list[dict[str, Any]]
    late: list[dict[str, Any]]


@pytest.fixture(scope="module")
def scenario_output(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobOutput]:
    """The scenario through the job once, in batch mode (bounded input, streaming operators)."""
    work = tmp_path_factory.mktemp("scenario")
    write_spool(work / "spool", "events.jsonl", SCENARIO)
    run_to_end(job_settings(work, work / "spool"))
    yield JobOutput(committed_rows(work / "metrics"), committed_rows(work / "late"))


def changelog(output: JobOutput, metric: str) -> list[tuple[Any, ...]]:
    """(start, end as offsets from T0 in s, dimensions, values, version, op), per key in emission order."""
    rows = [
        (
            (r["window_start"] - T0) / S,
            (r["window_end"] - T0) / S,
            r["dimensions"],
            r["values"],
            r["version"],
            r["op"],
        )
        for r in without_emitted_at(output.metrics)
        if r["metric"] == metric
    ]
    return sorted(
        rows, key=lambda r: (r[0], r[1], json.dumps(r[2], sort_keys=True))
    )  # stable: keeps per-key order


def test_every_row_has_the_contract_shape(scenario_output: JobOutput) -> None:
    for row in scenario_output.metrics:
        assert list(row) == [
            "metric",
            "window_start",
            "window_end",
            "dimensions",
            "values",
            "version",
            "op",
            "emitted_at",
        ]
        assert isinstance(row["emitted_at"], int) and row["emitted_at"] > T0
    assert {r["metric"] for r in scenario_output.metrics} == {
        "events_by_type",
        "page_activity",
        "revenue_by_currency",
        "sensor_stats",
        "active_users_5m",
        "user_sessions",
    }


def test_tumbling_windows_count_each_event_once(scenario_output: JobOutput) -> None:
    # pv1 arrived twice: window A has two page views (pv1, pv2), not three. pv4 is too late: not counted.
    assert changelog(scenario_output, "events_by_type") == [
        (0, 60, {"event_type": "click"}, {"distinct_users": 1.0, "events": 1.0}, 1, "insert"),
        (0, 60, {"event_type": "page_view"}, {"distinct_users": 2.0, "events": 2.0}, 1, "insert"),
        (0, 60, {"event_type": "purchase"}, {"distinct_users": 1.0, "events": 1.0}, 1, "insert"),
        (0, 60, {"event_type": "purchase"}, {"distinct_users": 1.0, "events": 1.0}, 1, "retract"),
        (0, 60, {"event_type": "purchase"}, {"distinct_users": 2.0, "events": 2.0}, 2, "insert"),
        (0, 60, {"event_type": "sensor_reading"}, {"distinct_users": 0.0, "events": 2.0}, 1, "insert"),
        (60, 120, {"event_type": "page_view"}, {"distinct_users": 1.0, "events": 1.0}, 1, "insert"),
        (60, 120, {"event_type": "purchase"}, {"distinct_users": 1.0, "events": 1.0}, 1, "insert"),
        (180, 240, {"event_type": "sensor_reading"}, {"distinct_users": 0.0, "events": 1.0}, 1, "insert"),
        (1860, 1920, {"event_type": "page_view"}, {"distinct_users": 1.0, "events": 1.0}, 1, "insert"),
    ]
    assert changelog(scenario_output, "page_activity") == [
        (0, 60, {"page": "/home"}, {"clicks": 1.0, "views": 2.0}, 1, "insert"),
        (60, 120, {"page": "/about"}, {"clicks": 0.0, "views": 1.0}, 1, "insert"),
        (1860, 1920, {"page": "/home"}, {"clicks": 0.0, "views": 1.0}, 1, "insert"),
    ]
    assert changelog(scenario_output, "sensor_stats") == [
        (
            0,
            60,
            {"device_id": "dev-1", "metric": "temperature"},
            {"avg": 21.5, "count": 2.0, "max": 23.0, "min": 20.0},
            1,
            "insert",
        ),
        (
            180,
            240,
            {"device_id": "dev-1", "metric": "temperature"},
            {"avg": 30.0, "count": 1.0, "max": 30.0, "min": 30.0},
            1,
            "insert",
        ),
    ]


def test_late_event_inside_lateness_retracts_the_old_version_and_inserts_the_next(
    scenario_output: JobOutput,
) -> None:
    # p3 (event time A, arriving after A fired at watermark T0+65s) updates A: retract v1, insert v2.
    assert changelog(scenario_output, "revenue_by_currency") == [
        (0, 60, {"currency": "EUR"}, {"purchases": 1.0, "revenue_minor": 1000.0}, 1, "insert"),
        (0, 60, {"currency": "EUR"}, {"purchases": 1.0, "revenue_minor": 1000.0}, 1, "retract"),
        (0, 60, {"currency": "EUR"}, {"purchases": 2.0, "revenue_minor": 1250.0}, 2, "insert"),
        (60, 120, {"currency": "EUR"}, {"purchases": 1.0, "revenue_minor": 500.0}, 1, "insert"),
    ]


def test_hopping_window_of_active_users(scenario_output: JobOutput) -> None:
    # 5-minute windows sliding by 1 minute; p3's late user u3 updates the window ending at T0+1m.
    assert changelog(scenario_output, "active_users_5m") == [
        (-240, 60, {}, {"active_users": 2.0}, 1, "insert"),
        (-240, 60, {}, {"active_users": 2.0}, 1, "retract"),
        (-240, 60, {}, {"active_users": 3.0}, 2, "insert"),
        (-180, 120, {}, {"active_users": 3.0}, 1, "insert"),
        (-120, 180, {}, {"active_users": 3.0}, 1, "insert"),
        (-60, 240, {}, {"active_users": 3.0}, 1, "insert"),
        (0, 300, {}, {"active_users": 3.0}, 1, "insert"),
        (60, 360, {}, {"active_users": 2.0}, 1, "insert"),
        *[
            (start, start + 300, {}, {"active_users": 1.0}, 1, "insert")
            for start in (1620, 1680, 1740, 1800, 1860)
        ],
    ]


def test_sessions_split_at_the_30_minute_gap(scenario_output: JobOutput) -> None:
    # u1: 1 s, 3 s, 4 s, then 1864 s (> 4 s + 30 min): two sessions. u3's late p3 (10 s) joins its session.
    assert changelog(scenario_output, "user_sessions") == [
        (1, 1804, {"user_id": "u1"}, {"session_events": 3.0, "session_length_ms": 3000.0}, 1, "insert"),
        (2, 1870, {"user_id": "u2"}, {"session_events": 2.0, "session_length_ms": 68000.0}, 1, "insert"),
        (10, 1861, {"user_id": "u3"}, {"session_events": 2.0, "session_length_ms": 51000.0}, 1, "insert"),
        (1864, 3664, {"user_id": "u1"}, {"session_events": 1.0, "session_length_ms": 0.0}, 1, "insert"),
    ]


def test_event_beyond_the_lateness_goes_to_the_late_sink_whole(scenario_output: JobOutput) -> None:
    pv4 = next(e for e in SCENARIO if e["event_id"] == "pv4")
    # The watermark it met: s3's event time (T0+200s) minus the 5 s out-of-orderness.
    assert scenario_output.late == [
        {**pv4, "late_reason": "beyond_allowed_lateness", "watermark": T0 + 195 * S}
    ]
