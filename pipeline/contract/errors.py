"""The bad-row taxonomy: every way an input record can be rejected, shared by enricher, DLQ and reports."""

from __future__ import annotations

from enum import StrEnum


class BadRowReason(StrEnum):
    UNPARSEABLE = "unparseable"  # neither JSON nor Avro with a known header
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    SCHEMA_VIOLATION = "schema_violation"
    OVERSIZE = "oversize"  # over the 1 MiB Kinesis record limit
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"  # outside [2000-01-01, 2100-01-01)
    FUTURE_EVENT_TIME = "future_event_time"  # later than arrival + the stage's skew tolerance


class DecodeError(ValueError):
    """A record that cannot become an event. `field` is a dotted path for schema violations."""

    def __init__(self, reason: BadRowReason, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field
