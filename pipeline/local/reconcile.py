"""Ground truth (the producer's manifest) against what the local warehouse and sinks hold, to the event.

Each check names what it compares; a check passes only when both sides are exactly equal (sensor
averages to 1e-9, the only figure that is a float division).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.produce.manifest import Manifest, MetricKey, index_rows
from pipeline.warehouse.engine import LocalWarehouse

STREAM_METRICS = ("events_by_type", "page_activity", "revenue_by_currency", "sensor_stats")


@dataclass
class Check:
    name: str
    expected: Any
    actual: Any
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


@dataclass
class Reconciliation:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def _values_equal(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    for name, value in expected.items():
        got = actual.get(name)
        if name == "sum":  # the manifest keeps the sum to check avg; the stream emits avg only
            continue
        if got is None:
            return False
        if name == "avg":
            if abs(float(got) - float(value)) > 1e-9:
                return False
        elif float(got) != float(value):
            return False
    return True


def compare_metrics(
    name: str, expected: dict[MetricKey, dict[str, Any]], actual: dict[MetricKey, dict[str, Any]]
) -> Check:
    differences = []
    for key in sorted(expected.keys() | actual.keys(), key=str):
        want, got = expected.get(key), actual.get(key)
        if want is None:
            differences.append(f"unexpected {key}: {got}")
        elif got is None:
            differences.append(f"missing {key}: expected {want}")
        elif not _values_equal(want, got):
            differences.append(f"{key}: expected {want}, got {got}")
    return Check(name, f"{len(expected)} window rows", f"{len(actual)} window rows", differences)


def _counter_check(name: str, expected: Mapping[str, int], actual: Mapping[str, int]) -> Check:
    want = {k: v for k, v in expected.items() if v}
    got = {k: v for k, v in actual.items() if v}
    differences = [
        f"{k}: expected {want.get(k, 0)}, got {got.get(k, 0)}"
        for k in sorted(want.keys() | got.keys())
        if want.get(k, 0) != got.get(k, 0)
    ]
    return Check(name, want, got, differences)


def lake_event_rows(warehouse: LocalWarehouse) -> list[dict[str, Any]]:
    """`events_by_type` rows recomputed from the deduplicated `events` view (Athena SQL)."""
    result = warehouse.query(
        """
        SELECT event_type, date_trunc('minute', event_time) AS window_start,
               COUNT(*) AS events, COUNT(DISTINCT user_id) AS distinct_users
        FROM events
        GROUP BY 1, 2
        """
    )
    return [
        {
            "metric": "events_by_type",
            "window_start": epoch_ms(r["window_start"]),
            "dimensions": {"event_type": r["event_type"]},
            "values": {"events": int(r["events"]), "distinct_users": int(r["distinct_users"])},
        }
        for r in result.records()
    ]


def stream_metric_rows(warehouse: LocalWarehouse) -> list[dict[str, Any]]:
    result = warehouse.query('SELECT metric, window_start, dimensions, "values" FROM metrics_latest')
    rows = []
    for r in result.records():
        if r["metric"] not in STREAM_METRICS:
            continue
        rows.append(
            {
                "metric": r["metric"],
                "window_start": epoch_ms(r["window_start"]),
                "dimensions": dict(_pairs(r["dimensions"])),
                "values": dict(_pairs(r["values"])),
            }
        )
    return rows


def epoch_ms(value: datetime | int) -> int:
    """Warehouse timestamps are UTC; DuckDB hands them back naive."""
    if isinstance(value, int):
        return value
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def _pairs(value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict):
        return value.items()
    if isinstance(value, list):  # a MAP read through Arrow: [(key, value), ...] or [{"key":, "value":}]
        return [(p["key"], p["value"]) if isinstance(p, dict) else (p[0], p[1]) for p in value]
    raise TypeError(f"not a map: {value!r}")


def late_event_ids(late_dir: Path) -> list[str]:
    ids = []
    for path in sorted(late_dir.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            for line in path.read_text().splitlines():
                if line.strip():
                    ids.append(json.loads(line)["event_id"])
    return ids


def reconcile(
    manifest: Manifest, warehouse: LocalWarehouse, dlq_reasons: Counter[str], late_ids: list[str]
) -> Reconciliation:
    all_rows = {k: v for k, v in manifest.metric_values("all").items() if k[0] == "events_by_type"}
    lake = compare_metrics(
        "lake: distinct events per type and minute (events view)",
        all_rows,
        index_rows(lake_event_rows(warehouse)),
    )
    stream = compare_metrics(
        "stream: metrics_latest vs on-time ground truth (events, users, pages, revenue, sensors)",
        manifest.metric_values("on_time"),
        index_rows(stream_metric_rows(warehouse)),
    )
    bad = _counter_check("bad rows per reason (DLQ)", manifest.bad_rows, dlq_reasons)
    expected_late = sorted(manifest.late["event_ids"])
    late = Check(
        "late events (late sink)",
        len(expected_late),
        len(late_ids),
        []
        if sorted(late_ids) == expected_late
        else [
            f"missing {sorted(set(expected_late) - set(late_ids))[:5]}, unexpected {sorted(set(late_ids) - set(expected_late))[:5]}, {len(late_ids)} rows"
        ],
    )
    return Reconciliation([lake, stream, bad, late])
