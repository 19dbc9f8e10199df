from pathlib import Path
from typing import Any

from pipeline.contract import BadRowReason
from pipeline.produce.kinesis import RECORD_TOO_LARGE
from pipeline.produce.manifest import Manifest, ManifestBuilder, count, index_rows
from pipeline.produce.run import plan
from pipeline.produce.workload import Record, RecordKind, Workload, WorkloadConfig

W0 = 1_764_149_940_000  # a window start (multiple of 60 s)


def _event(i: int, event_type: str, t: int, user: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": f"00000000-0000-4000-8000-{i:012d}",
        "event_type": event_type,
        "schema_version": 1,
        "event_time": t,
        "source": "web",
        "user_id": user,
        "session_id": None,
        "user_agent": None,
        "ip": None,
        "payload": payload,
    }


EVENTS = [
    _event(1, "page_view", W0 + 1, "u-1", {"url": "/p/1", "referrer": None, "title": None}),
    _event(2, "page_view", W0 + 2, "u-2", {"url": "/p/1", "referrer": None, "title": None}),
    _event(3, "click", W0 + 3, "u-1", {"url": "/p/1", "element_id": "b", "x": 1, "y": 2}),
    _event(
        4, "purchase", W0 + 4, "u-1", {"order_id": "o", "amount_minor": 1999, "currency": "EUR", "items": 1}
    ),
    _event(
        5,
        "purchase",
        W0 + 60_000,
        "u-2",
        {"order_id": "p", "amount_minor": 501, "currency": "EUR", "items": 2},
    ),
    _event(
        6,
        "purchase",
        W0 + 60_001,
        None,
        {"order_id": "q", "amount_minor": 499, "currency": "EUR", "items": 1},
    ),
    _event(7, "sensor_reading", W0 + 5, None, {"device_id": "dev-1", "metric": "temperature", "value": 20.5}),
    _event(
        8, "sensor_reading", W0 + 6, None, {"device_id": "dev-1", "metric": "temperature", "value": 19.25}
    ),
]


def test_figures_count_exactly_like_the_metric_rows() -> None:
    rows = index_rows(count(EVENTS).rows())
    w1 = W0 + 60_000
    assert rows == {
        ("events_by_type", W0, (("event_type", "page_view"),)): {"events": 2, "distinct_users": 2},
        ("events_by_type", W0, (("event_type", "click"),)): {"events": 1, "distinct_users": 1},
        ("events_by_type", W0, (("event_type", "purchase"),)): {"events": 1, "distinct_users": 1},
        ("events_by_type", w1, (("event_type", "purchase"),)): {"events": 2, "distinct_users": 1},
        ("events_by_type", W0, (("event_type", "sensor_reading"),)): {"events": 2, "distinct_users": 0},
        ("page_activity", W0, (("page", "/p/1"),)): {"views": 2, "clicks": 1},
        ("revenue_by_currency", W0, (("currency", "EUR"),)): {"purchases": 1, "revenue_minor": 1999},
        ("revenue_by_currency", w1, (("currency", "EUR"),)): {"purchases": 2, "revenue_minor": 1000},
        ("sensor_stats", W0, (("device_id", "dev-1"), ("metric", "temperature"))): {
            "count": 2,
            "min": 19.25,
            "max": 20.5,
            "sum": 39.75,
            "avg": 19.875,
        },
    }


def test_merging_on_time_and_late_figures_equals_counting_all() -> None:
    assert count(EVENTS[:5]).merged(count(EVENTS[5:])).rows() == count(EVENTS).rows()
    assert count(EVENTS[::2]).merged(count(EVENTS[1::2])).rows() == count(EVENTS).rows()


def _workload() -> Workload:
    return Workload(WorkloadConfig(events=1_000, seed=1, end_ms=W0, late=0))


def test_a_duplicate_accepted_after_its_original_failed_counts_as_the_event() -> None:
    builder = ManifestBuilder(_workload())
    original = Record("k", b"x", RecordKind.EVENT, EVENTS[0], None)
    builder.add_unsent(original, "ProvisionedThroughputExceededException")
    builder.add_sent(original._replace(kind=RecordKind.DUPLICATE))
    builder.add_sent(original._replace(kind=RecordKind.DUPLICATE))
    manifest = builder.build()
    assert manifest.events["distinct"] == 1
    assert manifest.duplicates == {"sent": 1, "event_ids": [EVENTS[0]["event_id"]]}
    assert manifest.unsent == {
        "records": 1,
        "errors": {"ProvisionedThroughputExceededException": 1},
        "lost_event_ids": [],
    }


def test_unsent_events_are_listed_and_oversize_refusals_are_planned() -> None:
    builder = ManifestBuilder(_workload())
    builder.add_unsent(Record("k", b"x", RecordKind.EVENT, EVENTS[1], None), "AccessDeniedException")
    builder.add_unsent(Record("k", b"x" * 10, RecordKind.BAD, None, BadRowReason.OVERSIZE), RECORD_TOO_LARGE)
    builder.add_sent(Record("k", b"{", RecordKind.BAD, None, BadRowReason.UNPARSEABLE))
    manifest = builder.build()
    assert manifest.unsent["lost_event_ids"] == [EVENTS[1]["event_id"]]
    assert manifest.producer_rejected == {"oversize": 1}
    assert manifest.bad_rows == {
        reason.value: int(reason is BadRowReason.UNPARSEABLE) for reason in BadRowReason
    }
    assert manifest.records["sent"] == 1


def test_manifest_round_trips_through_json(tmp_path: Path) -> None:
    manifest = plan(Workload(WorkloadConfig(events=3_000, seed=2, end_ms=W0)))
    manifest.write(tmp_path / "m.json")
    again = Manifest.read(tmp_path / "m.json")
    assert again == manifest
    assert manifest.late["count"] == len(manifest.late["event_ids"]) == 6
    on_time = sum(
        v["events"] for (m, _, _), v in manifest.metric_values("on_time").items() if m == "events_by_type"
    )
    every = sum(
        v["events"] for (m, _, _), v in manifest.metric_values("all").items() if m == "events_by_type"
    )
    assert (on_time, every) == (manifest.events["on_time"], manifest.events["distinct"])
    assert every - on_time == 6
