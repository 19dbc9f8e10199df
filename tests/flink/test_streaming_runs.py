"""Streaming runs of the job: an idle source split, restart from a checkpoint, batch = streaming.

A streaming run never ends by itself: each test waits (bounded) for committed output, then cancels
the job. Two marker events a day later push the watermark past every window of the test data.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import analytics_job
import pytest
from flink_harness import (
    T0,
    committed_rows,
    event,
    job_settings,
    latest_state,
    run_to_end,
    wait_for,
    without_emitted_at,
    write_spool,
)

DAY = 86_400_000
MARKERS = [
    event(
        f"marker-{i}",
        "sensor_reading",
        DAY / 1000 + i * 3600,
        None,
        device_id="marker",
        metric="m",
        value=0.0,
    )
    for i in (0, 1)
]


def generated_events(seed: int = 11) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two halves of a 5-minute stream (300 events, 30 duplicates, up to 4 s disorder), and in the
    second half one late event for the first minute that is still inside the allowed lateness."""
    rng = random.Random(seed)
    events = []
    for i in range(300):
        kind = ("page_view", "click", "purchase", "sensor_reading")[i % 4]
        payloads: dict[str, dict[str, Any]] = {
            "page_view": {"url": f"/p/{i % 7}"},
            "click": {"url": f"/p/{i % 7}", "element_id": "b", "x": 1, "y": 1},
            "purchase": {
                "order_id": f"o{i}",
                "amount_minor": 100 + i,
                "currency": ("EUR", "USD")[i % 2],
                "item_count": 1,
            },
            "sensor_reading": {"device_id": f"dev-{i % 3}", "metric": "temperature", "value": float(i % 17)},
        }
        payload = payloads[kind]
        user = None if kind == "sensor_reading" else f"u{rng.randint(1, 25)}"
        events.append(event(f"g{i}", kind, i - rng.uniform(0, 4), user, **payload))
    # Redeliveries of events of the same half (a redelivery never precedes the original).
    first = events[:150] + [dict(events[i]) for i in rng.sample(range(150), 15)]
    second = events[150:] + [dict(events[i]) for i in rng.sample(range(150, 300), 15)]
    second.insert(
        10,
        event("late-ok", "purchase", 20, "u1", order_id="ol", amount_minor=7, currency="EUR", item_count=1),
    )
    return first, second


def before_markers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["window_start"] < T0 + DAY]


def marker_window_committed(metrics_dir: Path) -> bool:
    return any(r["window_start"] >= T0 + DAY for r in committed_rows(metrics_dir))


def run_streaming_until_markers(work: Path, files: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    client = analytics_job.start(job_settings(work, work / "spool", mode="streaming"))
    try:
        for n, events in enumerate(files):
            write_spool(work / "spool", f"part-{n:03d}.jsonl", events)
        wait_for(lambda: marker_window_committed(work / "metrics"), "the marker window to be committed")
    finally:
        client.cancel().result()
    return before_markers(committed_rows(work / "metrics"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    first, second = generated_events()
    yield run_streaming_until_markers(tmp_path_factory.mktemp("uninterrupted"), [first + second + MARKERS])


def test_streaming_counts_every_distinct_event_once(uninterrupted: list[dict[str, Any]]) -> None:
    state = latest_state(uninterrupted)
    counted = sum(v["events"] for (metric, *_), v in state.items() if metric == "events_by_type")
    assert counted == 301  # 300 generated + late-ok; the 30 duplicates are dropped
    late_ok_window = ("revenue_by_currency", T0, T0 + 60_000, json.dumps({"currency": "EUR"}))
    versions = [
        r["version"]
        for r in uninterrupted
        if r["metric"] == "revenue_by_currency"
        and r["window_start"] == T0
        and r["dimensions"] == {"currency": "EUR"}
        and r["op"] == "insert"
    ]
    assert versions == [1, 2]
    assert late_ok_window in state


def test_restart_from_checkpoint_gives_the_uninterrupted_result(
    uninterrupted: list[dict[str, Any]], tmp_path: Path
) -> None:
    first, second = generated_events()
    client = analytics_job.start(job_settings(tmp_path, tmp_path / "spool", mode="streaming"))
    try:
        write_spool(tmp_path / "spool", "part-000.jsonl", first)
        # The first minutes are fired and committed: a checkpoint covering them exists.
        wait_for(
            lambda: any(r["window_start"] == T0 for r in committed_rows(tmp_path / "metrics")),
            "part one committed",
        )
    finally:
        client.cancel().result()  # stopped mid-stream: whatever came after the last checkpoint is rolled back
    checkpoints = list((tmp_path / "checkpoints").glob("*/chk-*/_metadata"))
    assert checkpoints, "no retained checkpoint to restart from"

    client = analytics_job.start(
        job_settings(tmp_path, tmp_path / "spool", mode="streaming", restore="latest")
    )
    try:
        write_spool(tmp_path / "spool", "part-001.jsonl", second + MARKERS)
        wait_for(lambda: marker_window_committed(tmp_path / "metrics"), "the marker window after the restart")
    finally:
        client.cancel().result()
    restarted = before_markers(committed_rows(tmp_path / "metrics"))

    assert latest_state(restarted) == latest_state(uninterrupted)
    # Exactly once: not one row lost or repeated across the restart (processing times aside).
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(map(key, without_emitted_at(restarted))) == sorted(
        map(key, without_emitted_at(uninterrupted))
    )


def test_batch_mode_replays_to_the_same_changelog(
    uninterrupted: list[dict[str, Any]], tmp_path: Path
) -> None:
    first, second = generated_events()
    write_spool(tmp_path / "spool", "events.jsonl", first + second + MARKERS)
    run_to_end(job_settings(tmp_path, tmp_path / "spool", mode="batch"))
    replayed = before_markers(committed_rows(tmp_path / "metrics"))
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(map(key, without_emitted_at(replayed))) == sorted(
        map(key, without_emitted_at(uninterrupted))
    )


def test_an_idle_source_split_does_not_stall_the_windows(tmp_path: Path) -> None:
    # Parallelism 2, one file: the second source reader never gets data. Without idleness its
    # watermark would hold every window back until the job ends; the job here never ends.
    settings = job_settings(tmp_path, tmp_path / "spool", mode="streaming", parallelism=2, idle_timeout_s=1)
    client = analytics_job.start(settings)
    try:
        write_spool(
            tmp_path / "spool",
            "only.jsonl",
            [
                event("a", "page_view", 1, "u1", url="/x"),
                event("b", "page_view", 2, "u2", url="/x"),
                event("c", "page_view", 70, "u1", url="/x"),
            ],
        )
        wait_for(
            lambda: any(r["metric"] == "page_activity" for r in committed_rows(tmp_path / "metrics")),
            "window A to fire",
        )
    finally:
        client.cancel().result()
    pages = [
        r for r in without_emitted_at(committed_rows(tmp_path / "metrics")) if r["metric"] == "page_activity"
    ]
    assert pages == [
        {
            "metric": "page_activity",
            "window_start": T0,
            "window_end": T0 + 60_000,
            "dimensions": {"page": "/x"},
            "values": {"clicks": 0.0, "views": 2.0},
            "version": 1,
            "op": "insert",
        }
    ]
