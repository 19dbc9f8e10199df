"""The ground-truth manifest of a producer run: what every later stage must find, exactly.

Built from the records the stream ACCEPTED (a record that finally failed is not in the figures), so it
stays exact for a run cut short by `--duration` or by a throttled stream.

Figures come twice, as rows shaped like the metric changelog rows of docs/data-contracts.md
(`metric`, `window_start`, `window_end`, `dimensions`, `values`; 1-minute tumbling event-time windows):
- `metrics.all`: every distinct valid event, late ones included in their event-time window: what the
  lake (`curated/events/`) holds after dedup;
- `metrics.on_time`: the same minus the late events: what the streaming job's metrics show.

Metrics and their values:
- `events_by_type` {event_type}: `events`, `distinct_users` (distinct non-null `user_id`: the enricher's
  HMAC pseudonyms keep distinct counts);
- `page_activity` {page}: `views` (page_view), `clicks` (click), keyed by `payload.url`;
- `revenue_by_currency` {currency}: `purchases`, `revenue_minor` (sum of `amount_minor`, exact);
- `sensor_stats` {device_id, metric}: `count`, `min`, `max`, `sum`, `avg` (values are multiples of
  1/16, so all but `avg` are exact in float and double).

Elsewhere: `bad_rows` (per `BadRowReason`: what the enricher dead-letters; `oversize` is always 0 there,
see `producer_rejected`), `late` and `duplicates` (counts and event ids), `unsent` (final put failures).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.contract import BadRowReason
from pipeline.produce.kinesis import RECORD_TOO_LARGE
from pipeline.produce.workload import WINDOW_MS, Record, RecordKind, Workload

MANIFEST_VERSION = 1
METRICS = ("events_by_type", "page_activity", "revenue_by_currency", "sensor_stats")
MetricKey = tuple[str, int, tuple[tuple[str, str], ...]]  # (metric, window_start, sorted dimensions)


class Figures:
    """Metric figures of a set of distinct valid events (either writer or decoded shape: the fields
    counted are the same in every schema version)."""

    def __init__(self) -> None:
        self.by_type: dict[tuple[int, str], list[Any]] = {}  # -> [events, {user_id}]
        self.pages: dict[tuple[int, str], list[int]] = {}  # -> [views, clicks]
        self.revenue: dict[tuple[int, str], list[int]] = {}  # -> [purchases, revenue_minor]
        self.sensors: dict[tuple[int, str, str], list[Any]] = {}  # -> [count, min, max, sum]
        self.totals: Counter[str] = Counter()

    def add(self, event: Mapping[str, Any]) -> None:
        t = event["event_time"]
        ws = t - t % WINDOW_MS
        event_type = event["event_type"]
        self.totals[event_type] += 1
        cell = self.by_type.get((ws, event_type))
        if cell is None:
            cell = self.by_type[(ws, event_type)] = [0, set()]
        cell[0] += 1
        if event["user_id"] is not None:
            cell[1].add(event["user_id"])
        p = event["payload"]
        if event_type == "page_view" or event_type == "click":
            page = self.pages.get((ws, p["url"]))
            if page is None:
                page = self.pages[(ws, p["url"])] = [0, 0]
            page[event_type == "click"] += 1
        elif event_type == "purchase":
            rev = self.revenue.get((ws, p["currency"]))
            if rev is None:
                rev = self.revenue[(ws, p["currency"])] = [0, 0]
            rev[0] += 1
            rev[1] += p["amount_minor"]
        elif event_type == "sensor_reading":
            v = float(p["value"])
            s = self.sensors.get((ws, p["device_id"], p["metric"]))
            if s is None:
                self.sensors[(ws, p["device_id"], p["metric"])] = [1, v, v, v]
            else:
                s[0] += 1
                s[1] = min(s[1], v)
                s[2] = max(s[2], v)
                s[3] += v

    def merged(self, other: Figures) -> Figures:
        out = Figures()
        out.totals = self.totals + other.totals
        for src in (self, other):
            for k, (n, users) in src.by_type.items():
                cell = out.by_type.setdefault(k, [0, set()])
                cell[0] += n
                cell[1] |= users
            for k2, (views, clicks) in src.pages.items():
                page = out.pages.setdefault(k2, [0, 0])
                page[0] += views
                page[1] += clicks
            for k3, (n, amount) in src.revenue.items():
                rev = out.revenue.setdefault(k3, [0, 0])
                rev[0] += n
                rev[1] += amount
            for k4, (n, lo, hi, total) in src.sensors.items():
                s = out.sensors.get(k4)
                out.sensors[k4] = (
                    [n, lo, hi, total]
                    if s is None
                    else [s[0] + n, min(s[1], lo), max(s[2], hi), s[3] + total]
                )
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Metric rows sorted by (metric, window_start, dimensions)."""
        rows: list[dict[str, Any]] = []

        def row(metric: str, ws: int, dims: dict[str, str], values: dict[str, Any]) -> None:
            rows.append(
                {
                    "metric": metric,
                    "window_start": ws,
                    "window_end": ws + WINDOW_MS,
                    "dimensions": dims,
                    "values": values,
                }
            )

        for (ws, event_type), (n, users) in sorted(self.by_type.items()):
            row("events_by_type", ws, {"event_type": event_type}, {"events": n, "distinct_users": len(users)})
        for (ws, page), (views, clicks) in sorted(self.pages.items()):
            row("page_activity", ws, {"page": page}, {"views": views, "clicks": clicks})
        for (ws, currency), (n, amount) in sorted(self.revenue.items()):
            row("revenue_by_currency", ws, {"currency": currency}, {"purchases": n, "revenue_minor": amount})
        for (ws, device, metric), (n, lo, hi, total) in sorted(self.sensors.items()):
            row(
                "sensor_stats",
                ws,
                {"device_id": device, "metric": metric},
                {"count": n, "min": lo, "max": hi, "sum": total, "avg": total / n},
            )
        return rows


def count(events: Iterable[Mapping[str, Any]]) -> Figures:
    """Figures of already-deduplicated valid events: for reconciling a stage against the manifest."""
    figures = Figures()
    for event in events:
        figures.add(event)
    return figures


@dataclass
class Manifest:
    seed: int
    config: dict[str, Any]
    stream_settings: dict[str, int]  # window_ms, allowed_lateness_ms, out_of_orderness_ms, late_gap_ms, ...
    event_time: dict[str, int]  # start_ms, end_ms of the simulated clock
    records: dict[str, int]  # user records sent per kind, plus producer_rejected and unsent
    events: dict[str, Any]  # distinct, on_time, late; by_type {all, on_time}
    duplicates: dict[str, Any]  # sent, event_ids (each id sent once more than the original)
    late: dict[str, Any]  # count, event_ids
    bad_rows: dict[str, int]  # every BadRowReason: records the enricher must dead-letter
    producer_rejected: dict[str, int]  # reason -> records refused before sending (oversize)
    unsent: dict[str, Any]  # records, errors {code: n}, lost_event_ids (valid events that never made it)
    metrics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # all, on_time
    manifest_version: int = MANIFEST_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        return cls(**data)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.from_dict(json.loads(path.read_text()))

    def metric_values(self, scope: str = "on_time") -> dict[MetricKey, dict[str, Any]]:
        """Rows of `scope` (`all` or `on_time`) keyed like the metric upsert key."""
        return index_rows(self.metrics[scope])


def index_rows(rows: Iterable[Mapping[str, Any]]) -> dict[MetricKey, dict[str, Any]]:
    return {
        (r["metric"], int(r["window_start"]), tuple(sorted(r["dimensions"].items()))): dict(r["values"])
        for r in rows
    }


class ManifestBuilder:
    """Tallies the records of a run as the stream accepts or finally refuses them.

    Feed a put's refusals before its acceptances: a duplicate accepted after its original was refused
    is the event's first copy, not a duplicate.
    """

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.on_time = Figures()
        self.late = Figures()
        self.sent: Counter[str] = Counter()
        self.late_ids: list[str] = []
        self.duplicate_ids: list[str] = []
        self.bad_rows: Counter[str] = Counter({reason.value: 0 for reason in BadRowReason})
        self.rejected: Counter[str] = Counter()
        self.unsent_errors: Counter[str] = Counter()
        self.unsent_ids: set[str] = set()

    def add_sent(self, record: Record) -> None:
        kind = record.kind
        self.sent[kind] += 1
        if kind is RecordKind.EVENT:
            self.on_time.add(record.event)  # type: ignore[arg-type]
        elif kind is RecordKind.DUPLICATE:
            event_id = record.event["event_id"]  # type: ignore[index]
            if event_id in self.unsent_ids:
                self.unsent_ids.discard(event_id)
                self.on_time.add(record.event)  # type: ignore[arg-type]
                self.sent[kind] -= 1
                self.sent[RecordKind.EVENT] += 1
            else:
                self.duplicate_ids.append(event_id)
        elif kind is RecordKind.LATE:
            self.late.add(record.event)  # type: ignore[arg-type]
            self.late_ids.append(record.event["event_id"])  # type: ignore[index]
        else:
            self.bad_rows[record.reason] += 1  # type: ignore[index]

    def add_unsent(self, record: Record, code: str) -> None:
        if record.reason is BadRowReason.OVERSIZE and code == RECORD_TOO_LARGE:
            self.rejected[BadRowReason.OVERSIZE.value] += 1
            return
        self.unsent_errors[code] += 1
        if record.kind in (RecordKind.EVENT, RecordKind.LATE):
            self.unsent_ids.add(record.event["event_id"])  # type: ignore[index]

    def build(self) -> Manifest:
        w = self.workload
        all_figures = self.on_time.merged(self.late)
        n_on_time, n_late = sum(self.on_time.totals.values()), sum(self.late.totals.values())
        return Manifest(
            seed=w.config.seed,
            config={**w.config.to_dict(), "end_ms": w.end_ms},
            stream_settings={
                "window_ms": WINDOW_MS,
                "allowed_lateness_ms": w.allowed_lateness_ms,
                "out_of_orderness_ms": w.out_of_orderness_ms,
                "max_delay_ms": w.max_delay_ms,
                "late_gap_ms": w.late_gap_ms,
            },
            event_time={"start_ms": w.start_ms, "end_ms": w.end_ms},
            records={
                **{kind.value: self.sent[kind] for kind in RecordKind},
                "sent": sum(self.sent.values()),
                "producer_rejected": sum(self.rejected.values()),
                "unsent": sum(self.unsent_errors.values()),
            },
            events={
                "distinct": n_on_time + n_late,
                "on_time": n_on_time,
                "late": n_late,
                "by_type": {
                    "all": dict(sorted(all_figures.totals.items())),
                    "on_time": dict(sorted(self.on_time.totals.items())),
                },
            },
            duplicates={"sent": len(self.duplicate_ids), "event_ids": sorted(self.duplicate_ids)},
            late={"count": n_late, "event_ids": sorted(self.late_ids)},
            bad_rows=dict(sorted(self.bad_rows.items())),
            producer_rejected=dict(sorted(self.rejected.items())),
            unsent={
                "records": sum(self.unsent_errors.values()),
                "errors": dict(sorted(self.unsent_errors.items())),
                "lost_event_ids": sorted(self.unsent_ids),
            },
            metrics={"all": all_figures.rows(), "on_time": self.on_time.rows()},
        )
