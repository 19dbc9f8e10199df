"""Every shipped Athena view runs on the local engine and gives exact rows on a crafted lake."""

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from pipeline.contract import contract
from pipeline.lake.store import local_lake
from pipeline.lake.writer import kinesis_batch, lake_objects
from pipeline.warehouse.ddl import REDSHIFT_EVENTS, WAREHOUSE_DIR
from pipeline.warehouse.engine import LocalWarehouse

T = 1764151200000  # 2025-11-26T10:00:00Z
MIN = 60_000
NOW = int(time.time() * 1000)
PAYLOADS = {
    "page_view": lambda url: {"url": url, "referrer": None, "title": None, "load_time_ms": None},
    "add_to_cart": lambda _: {
        "product_id": "sku-1",
        "quantity": 1,
        "unit_price_minor": 100,
        "currency": "EUR",
    },
    "sensor_reading": lambda _: {"device_id": "dev-7", "metric": "temperature", "value": 21.5, "unit": "C"},
}


def enriched(
    event_id: str,
    event_type: str,
    event_time: int,
    session_id: str | None,
    user_id: str | None,
    payload: dict[str, Any],
    is_bot: bool = False,
    arrival_delay: int = 500,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": 1,
        "event_time": event_time,
        "source": "web",
        "user_id": user_id,
        "session_id": session_id,
        "user_agent": None,
        "ip": None,
        "payload": payload,
        "enrichment": {
            "arrival_time": event_time + arrival_delay,
            "event_time_skew_ms": arrival_delay,
            "writer_version": 1,
            "ua_family": None,
            "ua_major": None,
            "os_family": None,
            "device_family": None,
            "is_bot": is_bot,
            "country": None,
            "asn": None,
            "as_name": None,
            "enricher_version": "test-1",
        },
    }


def event(
    event_id: str, event_type: str, offset_ms: int, session: str | None, user: str | None, **kw: Any
) -> dict[str, Any]:
    payload = kw.pop("payload", None) or PAYLOADS[event_type](kw.pop("url", "/home"))
    return enriched(event_id, event_type, T + offset_ms, session, user, payload, **kw)


def purchase(
    event_id: str, offset_ms: int, session: str, user: str, amount: int, currency: str
) -> dict[str, Any]:
    payload = {
        "order_id": f"o-{event_id}",
        "amount_minor": amount,
        "currency": currency,
        "item_count": 1,
        "coupon_code": None,
    }
    return enriched(event_id, "purchase", T + offset_ms, session, user, payload)


def metric(
    metric_name: str, start: int, dims: dict[str, str], values: dict[str, float], version: int, op: str
) -> dict[str, Any]:
    return {
        "metric": metric_name,
        "window_start": start,
        "window_end": start + MIN,
        "dimensions": dims,
        "values": values,
        "version": version,
        "op": op,
        "emitted_at": start + MIN + version * 1000,
    }


EVENT_BATCHES = [
    [
        event("a1", "page_view", 0, "s-1", "u-1", url="/home"),
        event("a2", "page_view", 1 * MIN, "s-1", "u-1", url="/p/42"),
        event("a3", "add_to_cart", 2 * MIN, "s-1", "u-1"),
        purchase("a4", 3 * MIN, "s-1", "u-1", 3998, "EUR"),
        event("b1", "page_view", 30_000, "s-2", "u-2", url="/home"),
        event("b2", "add_to_cart", 90_000, "s-2", "u-2"),
        event("c1", "page_view", 10_000, "s-3", "u-3", url="/p/42"),
        purchase("c2", 70_000, "s-3", "u-3", 500, "USD"),
        event("d1", "page_view", 5_000, "s-4", None, url="/home", is_bot=True),
        event("x1", "sensor_reading", 0, None, None),
    ],
    # A second delivery of the EUR purchase (producer retry): stored twice, counted once.
    [
        dict(
            purchase("a4", 3 * MIN, "s-1", "u-1", 3998, "EUR"),
            enrichment=event("a4", "add_to_cart", 3 * MIN + 900, None, None)["enrichment"],
        )
    ],
    # "Recent" views sit ahead of the clock: the view compares with CURRENT_TIMESTAMP at query time,
    # and a long test session must not age them out of its 15 minutes (r4 stays out either way).
    [
        enriched("r1", "page_view", NOW + 12 * MIN, None, "u-7", PAYLOADS["page_view"]("/recent-a")),
        enriched("r2", "page_view", NOW + 11 * MIN, None, "u-7", PAYLOADS["page_view"]("/recent-a")),
        enriched(
            "r2",
            "page_view",
            NOW + 11 * MIN,
            None,
            "u-7",
            PAYLOADS["page_view"]("/recent-a"),
            arrival_delay=900,
        ),
        enriched("r3", "page_view", NOW + 10 * MIN, None, "u-8", PAYLOADS["page_view"]("/recent-b")),
        enriched("r4", "page_view", NOW - 20 * MIN, None, "u-9", PAYLOADS["page_view"]("/old")),
    ],
]
METRIC_ROWS = [
    metric("page_activity", T, {"page": "/home"}, {"views": 1}, 1, "insert"),
    metric("page_activity", T, {"page": "/home"}, {"views": 1}, 1, "retract"),
    metric("page_activity", T, {"page": "/home"}, {"views": 2}, 2, "insert"),
    metric("page_activity", T, {"page": "/home"}, {"views": 2}, 2, "insert"),  # a retried batch
    metric(
        "revenue_by_currency",
        T + 3 * MIN,
        {"currency": "EUR"},
        {"revenue_minor": 3998, "purchases": 1},
        1,
        "insert",
    ),
    metric("events_by_type", T - 86_400_000, {"event_type": "page_view"}, {"events": 7}, 1, "insert"),
]


def lambda_event(stream: str, rows: list[dict[str, Any]], first_seq: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "kinesis": {
                    "sequenceNumber": str(first_seq + i),
                    "data": base64.b64encode(json.dumps(row).encode()).decode(),
                    "approximateArrivalTimestamp": T / 1000,
                },
                "eventID": f"shardId-000000000000:{first_seq + i}",
                "eventSourceARN": f"arn:aws:kinesis:us-east-1:000000000000:stream/rta-local-{stream}",
            }
            for i, row in enumerate(rows)
        ]
    }


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> LocalWarehouse:
    lake = local_lake(tmp_path_factory.mktemp("lake"))
    batches = [("events-enriched", rows) for rows in EVENT_BATCHES] + [("metrics", METRIC_ROWS)]
    for n, (stream, rows) in enumerate(batches):
        for key, body in lake_objects(kinesis_batch(lambda_event(stream, rows, 1000 * n))).items():
            lake.put(key, body)
    return LocalWarehouse(lake)


def at(offset_ms: int) -> datetime:
    return datetime.fromtimestamp((T + offset_ms) / 1000, tz=UTC).replace(tzinfo=None)  # naive UTC, as stored


def test_events_is_deduplicated_across_types(warehouse: LocalWarehouse) -> None:
    result = warehouse.query(
        "SELECT event_type, COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids FROM events GROUP BY 1 ORDER BY 1"
    )
    assert result.rows == [
        ("add_to_cart", 2, 2),
        ("page_view", 9, 9),
        ("purchase", 2, 2),
        ("sensor_reading", 1, 1),
    ]
    [(arrival,)] = warehouse.query("SELECT arrival_time FROM events WHERE event_id = 'a4'").rows
    assert arrival == at(3 * MIN + 500)  # the first arrival wins


def test_metrics_latest_keeps_the_newest_insert_per_window(warehouse: LocalWarehouse) -> None:
    result = warehouse.query(
        'SELECT metric, dimensions, "values", version, window_date FROM metrics_latest ORDER BY metric, window_start'
    )
    assert result.rows == [
        ("events_by_type", {"event_type": "page_view"}, {"events": 7.0}, 1, "2025-11-25"),
        ("page_activity", {"page": "/home"}, {"views": 2.0}, 2, "2025-11-26"),
        (
            "revenue_by_currency",
            {"currency": "EUR"},
            {"revenue_minor": 3998.0, "purchases": 1.0},
            1,
            "2025-11-26",
        ),
    ]


def test_funnel_conversion(warehouse: LocalWarehouse) -> None:
    [row] = warehouse.query("SELECT * FROM funnel_conversion WHERE event_date = '2025-11-26'").records()
    assert row == {
        "event_date": "2025-11-26",
        "viewed_sessions": 3,
        "carted_sessions": 2,
        "purchased_sessions": 1,
        "view_to_cart_rate": 2 / 3,
        "cart_to_purchase_rate": 1 / 2,
        "view_to_purchase_rate": 1 / 3,
    }


def test_top_pages_of_the_last_15_minutes(warehouse: LocalWarehouse) -> None:
    assert warehouse.query("SELECT * FROM top_pages_15m ORDER BY page_rank").rows == [
        (1, "/recent-a", 2, 1),
        (2, "/recent-b", 1, 1),
    ]


def test_revenue_per_minute(warehouse: LocalWarehouse) -> None:
    assert warehouse.query("SELECT * FROM revenue_per_minute ORDER BY minute").rows == [
        (at(MIN), "USD", 1, 500, "2025-11-26"),
        (at(3 * MIN), "EUR", 1, 3998, "2025-11-26"),
    ]


def test_sessions(warehouse: LocalWarehouse) -> None:
    assert warehouse.query("SELECT * FROM sessions ORDER BY session_id").rows == [
        ("s-1", "u-1", at(0), at(3 * MIN), 180_000, 4, 2, 1, 1, "2025-11-26"),
        ("s-2", "u-2", at(30_000), at(90_000), 60_000, 2, 1, 1, 0, "2025-11-26"),
        ("s-3", "u-3", at(10_000), at(70_000), 60_000, 2, 1, 0, 1, "2025-11-26"),
        ("s-4", None, at(5_000), at(5_000), 0, 1, 1, 0, 0, "2025-11-26"),
    ]


def test_redshift_dialect_runs_on_the_same_tables(warehouse: LocalWarehouse) -> None:
    result = warehouse.query(
        "SELECT TOP 1 session_id, DATEDIFF(ms, session_start, session_end) AS d FROM sessions ORDER BY d DESC",
        dialect="redshift",
    )
    assert result.rows == [("s-1", 180_000)]


def test_unknown_lake_directory_reads_as_empty_tables(tmp_path: Path) -> None:
    assert LocalWarehouse(local_lake(tmp_path)).query("SELECT COUNT(*) FROM events").rows == [(0,)]


def test_redshift_events_view_over_spectrum_gives_the_athena_rows(warehouse: LocalWarehouse) -> None:
    """The shipped Redshift view, run on the same tables standing in for the Spectrum schema `lake`."""
    con = warehouse.con
    con.execute("CREATE SCHEMA IF NOT EXISTS lake")
    for event_type in contract().event_types:
        con.execute(f"CREATE OR REPLACE TABLE lake.events_{event_type} AS SELECT * FROM events_{event_type}")
    drop, view = sqlglot.parse((WAREHOUSE_DIR / REDSHIFT_EVENTS).read_text(), read="redshift")
    assert (
        isinstance(drop, exp.Drop)
        and drop.sql("redshift", comments=False) == "DROP VIEW IF EXISTS events CASCADE"
    )
    assert isinstance(view, exp.Create) and view.args["no_schema_binding"]  # Spectrum needs late binding
    view.set("this", exp.to_table("redshift_events"))
    view.set("no_schema_binding", False)  # DuckDB has no late-binding views
    view.set("properties", exp.Properties(expressions=[exp.TemporaryProperty()]))
    con.execute(view.sql(dialect="duckdb"))

    redshift = warehouse.query("SELECT * FROM redshift_events ORDER BY event_id")
    athena = warehouse.query("SELECT * FROM events ORDER BY event_id")
    assert redshift.columns == athena.columns
    assert redshift.rows == athena.rows
    assert len(redshift.rows) == 14  # 16 stored rows, a4 and r2 stored twice
    [(arrival,)] = warehouse.query("SELECT arrival_time FROM redshift_events WHERE event_id = 'a4'").rows
    assert arrival == at(3 * MIN + 500)  # the first arrival wins here too
