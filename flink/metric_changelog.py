"""Python side of the job: number metric versions, shape changelog rows and late events.

Flink SQL's late-firing windows already emit "retract old result, insert new result"
(UPDATE_BEFORE/UPDATE_AFTER) but carry no version. A keyed function over that small changelog keeps
one counter per (metric, window, dimensions) in keyed state and stamps each row; that is the least
state and the least Python for exact versions: the events themselves never enter Python.

The pure functions here import nothing from pyflink (unit-testable anywhere); `VersionedChangelog`
is built by `make_versioned_changelog` inside the Flink venv.
"""

from __future__ import annotations

import calendar
import json
from datetime import datetime
from typing import Any

LATE_REASON = "beyond_allowed_lateness"
EVENT_FIELDS = (
    "event_id",
    "event_type",
    "schema_version",
    "event_time",
    "source",
    "user_id",
    "session_id",
    "user_agent",
    "ip",
    "payload",
    "enrichment",
)


def epoch_ms(value: datetime) -> int:
    """A naive UTC datetime (Flink TIMESTAMP(3) with session time zone UTC) as epoch milliseconds."""
    return calendar.timegm(value.utctimetuple()) * 1000 + value.microsecond // 1000


def upsert_key(fields: dict[str, Any]) -> str:
    """The contract's upsert key (metric, window_start, window_end, dimensions) as one string."""
    return "|".join(
        [
            str(fields["metric"]),
            str(epoch_ms(fields["window_start"])),
            str(epoch_ms(fields["window_end"])),
            str(fields["dimensions"]),
        ]
    )


def metric_row(fields: dict[str, Any], version: int, op: str, emitted_at: int) -> str:
    """One "Metric changelog row" (docs/data-contracts.md) as JSON."""
    return json.dumps(
        {
            "metric": fields["metric"],
            "window_start": epoch_ms(fields["window_start"]),
            "window_end": epoch_ms(fields["window_end"]),
            "dimensions": json.loads(fields["dimensions"]),
            "values": {k: float(v) for k, v in json.loads(fields["metric_values"]).items()},
            "version": version,
            "op": op,
            "emitted_at": emitted_at,
        },
        separators=(",", ":"),
    )


def late_event_row(fields: dict[str, Any]) -> str:
    """One "Late event" (docs/data-contracts.md): the enriched event, its reason, the watermark then."""
    event: dict[str, Any] = {name: fields[name] for name in EVENT_FIELDS}
    for nested in ("payload", "enrichment"):
        if event[nested] is not None:
            event[nested] = json.loads(event[nested])
    event["late_reason"] = LATE_REASON
    event["watermark"] = epoch_ms(fields["watermark_at_arrival"])
    return json.dumps(event, separators=(",", ":"))


def record_key(fields: dict[str, Any]) -> str:
    if fields["record_kind"] == "late":
        return "late|" + str(fields["event_id"])
    return upsert_key(fields)


def make_versioned_changelog(version_ttl_s: int) -> Any:
    """The keyed function (pyflink imported here so this module loads without it)."""
    from pyflink.common import Row, RowKind, Time, Types
    from pyflink.datastream import KeyedProcessFunction, OutputTag
    from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

    late_tag = OutputTag("late-events", Types.STRING())

    class VersionedChangelog(KeyedProcessFunction):
        def open(self, runtime_context: Any) -> None:
            descriptor = ValueStateDescriptor("metric_version", Types.INT())
            # A window cannot change once the watermark passed its end plus the lateness; the
            # counter only has to outlive that, so it expires instead of growing forever.
            descriptor.enable_time_to_live(
                StateTtlConfig.new_builder(Time.seconds(version_ttl_s))
                .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .build()
            )
            self.version = runtime_context.get_state(descriptor)

        def process_element(self, value: Row, ctx: Any) -> Any:
            fields = value.as_dict()
            if fields["record_kind"] == "late":
                yield late_tag, late_event_row(fields)
                return
            now = ctx.timer_service().current_processing_time()
            kind = value.get_row_kind()
            if kind == RowKind.INSERT:
                # A first firing is version 1 by definition: no state read, which keeps the
                # per-row cost of the (many) windows that never change low.
                yield metric_row(fields, 1, "insert", now)
                return
            # Only windows updated by late events reach the state; absent state means version 1.
            current = self.version.value() or 1
            if kind == RowKind.UPDATE_AFTER:
                current += 1
                self.version.update(current)
                yield metric_row(fields, current, "insert", now)
            else:
                yield metric_row(fields, current, "retract", now)

    return VersionedChangelog(), late_tag
