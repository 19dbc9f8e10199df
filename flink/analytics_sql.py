"""The job's SQL: source table, dedup, late split and the six metric aggregations.

Window aggregations use the legacy `GROUP BY TUMBLE/HOP/SESSION` syntax on purpose: with
`table.exec.emit.allow-lateness` and `table.exec.emit.late-fire.enabled` a late event inside the
allowed lateness re-fires its window and the operator emits the previous result as UPDATE_BEFORE and
the new one as UPDATE_AFTER. Window TVFs (the newer syntax) drop every late event instead.

All heavy work (JSON parsing, dedup, windows, exact distinct counts) stays in the JVM; only the
aggregated changelog (a few rows per window) and the too-late events cross into Python, where
`metric_changelog` numbers the versions. Distinct counts are exact (`COUNT(DISTINCT)` keeps every
user id of a window in state); at scale `distinct_users` and `active_users` are where a HyperLogLog
sketch (a UDAF over a few KB of registers per window) would replace the exact sets.

Kept free of pyflink imports: plain strings, unit-testable in either venv.
"""

from __future__ import annotations

from job_settings import JobSettings, SourceSettings
from metric_changelog import EVENT_FIELDS

TUMBLE = "TUMBLE(ts, INTERVAL '1' MINUTE)"
HOP = "HOP(ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE)"
SESSION = "SESSION(ts, INTERVAL '30' MINUTE)"
TUMBLE_MS = 60_000

# Columns of an enriched event (docs/data-contracts.md). `payload` and `enrichment` are declared
# STRING: Flink's JSON format then hands over the nested object's JSON text, so a late event can be
# written back whole, and each metric parses only the payload fields it needs.
EVENT_COLUMNS = tuple("`source`" if c == "source" else c for c in EVENT_FIELDS)  # SOURCE is reserved


def source_table_ddl(source: SourceSettings, settings: JobSettings) -> str:
    if source.connector == "files":
        options = {"connector": "filesystem", "path": str(source.path), "format": "json"}
        if settings.runtime_mode == "streaming":
            options["source.monitor-interval"] = f"{source.monitor_interval_s} s"
    elif source.stream_arn:
        options = {
            "connector": "kinesis",
            "stream.arn": source.stream_arn,
            "aws.region": str(source.region),
            "source.init.position": source.initial_position,
            "format": "json",
        }
    else:
        # The legacy consumer takes a stream name and de-aggregates KPL records.
        options = {
            "connector": "kinesis-legacy",
            "stream": str(source.stream_name),
            "aws.region": str(source.region),
            "scan.stream.initpos": source.initial_position,
            "format": "json",
        }
    with_clause = ",\n  ".join(f"'{k}' = '{v}'" for k, v in options.items())
    return f"""
CREATE TEMPORARY TABLE enriched_events (
  event_id STRING,
  event_type STRING,
  schema_version INT,
  event_time BIGINT,
  `source` STRING,
  user_id STRING,
  session_id STRING,
  user_agent STRING,
  ip STRING,
  payload STRING,
  enrichment STRING,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  proc_time AS PROCTIME(),
  WATERMARK FOR ts AS ts - INTERVAL '{settings.out_of_orderness_s}' SECOND
) WITH (
  {with_clause}
)"""


def view_statements(settings: JobSettings) -> list[str]:
    """Dedup, then split on-time from too-late events.

    An event is too late when its 1-minute tumbling window has already been cleaned up, i.e. the
    window operator would drop it: window_end - 1 + allowed_lateness <= watermark (Flink's
    `cleanupTime <= currentWatermark`). Every other metric window holding the event ends no earlier
    (hopping windows slide by the same minute, a session window ends 30 min after its last event),
    so one rule keeps the late sink and all metrics consistent: each event is either counted
    everywhere or sent to the late sink. The watermark here is the one this operator has seen,
    never older than the window operators' downstream, so the split is exact.
    """
    lateness_ms = settings.allowed_lateness_s * 1000
    columns = ", ".join(EVENT_COLUMNS)
    late_only = ",\n  ".join(
        f"CASE WHEN too_late THEN {c} END AS {c}"
        for c in EVENT_COLUMNS
        if c not in ("event_id", "event_type", "event_time", "user_id")
    )
    return [
        f"""
CREATE TEMPORARY VIEW deduped_events AS
SELECT {columns}, ts FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proc_time ASC) AS row_num
  FROM enriched_events
  WHERE event_id IS NOT NULL AND event_time IS NOT NULL
) WHERE row_num = 1""",
        f"""
CREATE TEMPORARY VIEW watermarked_events AS
SELECT {columns}, ts,
  CURRENT_WATERMARK(ts) IS NOT NULL
    AND TO_TIMESTAMP_LTZ(event_time - MOD(event_time, {TUMBLE_MS}) + {TUMBLE_MS} - 1 + {lateness_ms}, 3)
        <= CURRENT_WATERMARK(ts) AS too_late,
  CAST(CURRENT_WATERMARK(ts) AS TIMESTAMP(3)) AS watermark_at_arrival
FROM deduped_events""",
        # The metrics' payload fields are parsed here, once per event; the whole event (payload and
        # enrichment text included) travels on only for too-late events, which the late sink writes
        # whole. That keeps the rows handed to the window operators small.
        f"""
CREATE TEMPORARY VIEW classified_events AS
SELECT event_id, event_type, event_time, user_id, too_late, ts AS arrival_rowtime,
  {late_only},
  CASE WHEN too_late THEN watermark_at_arrival END AS watermark_at_arrival,
  CASE WHEN event_type IN ('page_view', 'click') THEN JSON_VALUE(payload, '$.url') END AS page,
  CASE WHEN event_type = 'purchase' THEN JSON_VALUE(payload, '$.currency') END AS currency,
  CASE WHEN event_type = 'purchase' THEN CAST(JSON_VALUE(payload, '$.amount_minor') AS BIGINT) END AS amount_minor,
  CASE WHEN event_type = 'sensor_reading' THEN JSON_VALUE(payload, '$.device_id') END AS device_id,
  CASE WHEN event_type = 'sensor_reading' THEN JSON_VALUE(payload, '$.metric') END AS sensor_metric,
  CASE WHEN event_type = 'sensor_reading' THEN JSON_VALUE(payload, '$.value' RETURNING DOUBLE) END AS reading
FROM watermarked_events""",
    ]


def _metric_select(metric: str, window: str, dimensions: str, values: str, where: str, group_by: str) -> str:
    fn = window.split("(", 1)[0]
    args = window[len(fn) :]
    return f"""
SELECT 'metric' AS record_kind, '{metric}' AS metric,
  {fn}_START{args} AS window_start, {fn}_END{args} AS window_end,
  JSON_OBJECT({dimensions}) AS dimensions,
  JSON_OBJECT({values}) AS metric_values,
  {_null_event_columns()}
FROM arrived_events
WHERE NOT too_late AND ({where})
GROUP BY {window}{", " + group_by if group_by else ""}"""


def _null_event_columns() -> str:
    nulls = [
        f"CAST(NULL AS {'INT' if c == 'schema_version' else 'BIGINT' if c == 'event_time' else 'STRING'}) AS {c}"
        for c in EVENT_COLUMNS
    ]
    return ", ".join([*nulls, "CAST(NULL AS TIMESTAMP(3)) AS watermark_at_arrival"])


def _dbl(expr: str) -> str:
    return f"CAST({expr} AS DOUBLE)"


def metric_queries() -> dict[str, str]:
    """One SELECT per metric (names as in docs/data-contracts.md), all of the output shape."""
    page, currency, amount, device, sensor_metric, reading = (
        "page",
        "currency",
        "amount_minor",
        "device_id",
        "sensor_metric",
        "reading",
    )
    views = "SUM(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END)"
    clicks = "SUM(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END)"
    return {
        "events_by_type": _metric_select(
            "events_by_type",
            TUMBLE,
            "'event_type' VALUE event_type",
            f"'events' VALUE {_dbl('COUNT(*)')}, 'distinct_users' VALUE {_dbl('COUNT(DISTINCT user_id)')}",
            "TRUE",
            "event_type",
        ),
        "page_activity": _metric_select(
            "page_activity",
            TUMBLE,
            f"'page' VALUE {page}",
            f"'views' VALUE {_dbl(views)}, 'clicks' VALUE {_dbl(clicks)}",
            f"event_type IN ('page_view', 'click') AND {page} IS NOT NULL",
            page,
        ),
        "revenue_by_currency": _metric_select(
            "revenue_by_currency",
            TUMBLE,
            f"'currency' VALUE {currency}",
            f"'purchases' VALUE {_dbl('COUNT(*)')}, 'revenue_minor' VALUE {_dbl(f'SUM({amount})')}",
            f"event_type = 'purchase' AND {currency} IS NOT NULL",
            currency,
        ),
        "sensor_stats": _metric_select(
            "sensor_stats",
            TUMBLE,
            f"'device_id' VALUE {device}, 'metric' VALUE {sensor_metric}",
            f"'count' VALUE {_dbl('COUNT(*)')}, 'min' VALUE MIN({reading}), 'max' VALUE MAX({reading}), "
            f"'avg' VALUE AVG({reading})",
            f"event_type = 'sensor_reading' AND {device} IS NOT NULL AND {reading} IS NOT NULL",
            f"{device}, {sensor_metric}",
        ),
        "active_users_5m": _metric_select(
            "active_users_5m",
            HOP,
            "",
            f"'active_users' VALUE {_dbl('COUNT(DISTINCT user_id)')}",
            "user_id IS NOT NULL",
            "",
        ),
        "user_sessions": _metric_select(
            "user_sessions",
            SESSION,
            "'user_id' VALUE user_id",
            f"'session_events' VALUE {_dbl('COUNT(*)')}, "
            f"'session_length_ms' VALUE {_dbl('MAX(event_time) - MIN(event_time)')}",
            "user_id IS NOT NULL",
            "user_id",
        ),
    }


def late_events_query() -> str:
    columns = ", ".join(EVENT_COLUMNS)
    return f"""
SELECT 'late' AS record_kind, CAST(NULL AS STRING) AS metric,
  CAST(NULL AS TIMESTAMP(3)) AS window_start, CAST(NULL AS TIMESTAMP(3)) AS window_end,
  CAST(NULL AS STRING) AS dimensions, CAST(NULL AS STRING) AS metric_values,
  {columns}, watermark_at_arrival
FROM arrived_events
WHERE too_late"""


SESSION_METRICS = ("user_sessions",)
# The one (nullable) shape of every row leaving SQL: a metric result or a too-late event.
OUTPUT_COLUMNS = (
    ("record_kind", "STRING"),
    ("metric", "STRING"),
    ("window_start", "TIMESTAMP(3)"),
    ("window_end", "TIMESTAMP(3)"),
    ("dimensions", "STRING"),
    ("metric_values", "STRING"),
    *(
        (c.strip("`"), "INT" if c == "schema_version" else "BIGINT" if c == "event_time" else "STRING")
        for c in EVENT_COLUMNS
    ),
    ("watermark_at_arrival", "TIMESTAMP(3)"),
)


def late_firing_query() -> str:
    """Tumbling and hopping metrics (late-firing) and the too-late events, as one changelog."""
    queries = [q for name, q in metric_queries().items() if name not in SESSION_METRICS]
    return "\nUNION ALL\n".join([*queries, late_events_query()])


def session_query() -> str:
    """Session windows: Flink's legacy session windows support no emit strategy (no late firing),
    so they are planned separately with late firing off; see README "Sessions and lateness"."""
    return "\nUNION ALL\n".join(q for name, q in metric_queries().items() if name in SESSION_METRICS)


LATE_FIRING_OPTIONS = ("table.exec.emit.late-fire.enabled", "table.exec.emit.late-fire.delay")


def table_config(settings: JobSettings) -> dict[str, str]:
    return {
        "table.local-time-zone": "UTC",
        "pipeline.auto-watermark-interval": f"{settings.watermark_interval_ms} ms",
        "table.exec.source.idle-timeout": f"{settings.idle_timeout_s} s",
        "table.exec.emit.allow-lateness": f"{settings.allowed_lateness_s} s",
        "table.exec.emit.late-fire.enabled": "true",
        "table.exec.emit.late-fire.delay": "0 s",
        # Only the dedup is a non-window stateful operator, so this is the dedup TTL.
        "table.exec.state.ttl": f"{settings.dedup_ttl_s} s",
    }
