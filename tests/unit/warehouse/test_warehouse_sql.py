"""Every shipped SQL file parses in its dialect; the generated DDL is what the generator makes."""

from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from pipeline.config import stage
from pipeline.warehouse.ddl import WAREHOUSE_DIR, generated_files, render

ATHENA = sorted((WAREHOUSE_DIR / "athena").rglob("*.sql"))
REDSHIFT = sorted((WAREHOUSE_DIR / "redshift").glob("*.sql"))


def test_the_warehouse_ships_sql() -> None:
    assert [p.name for p in sorted((WAREHOUSE_DIR / "athena" / "views").glob("*.sql"))] == [
        "events.sql",
        "funnel_conversion.sql",
        "metrics_latest.sql",
        "revenue_per_minute.sql",
        "sessions.sql",
        "top_pages_15m.sql",
    ]
    # Deployed in file-name order (stacks/warehouse.py): schemas, MVs, typed views, then views over them.
    assert [p.name for p in REDSHIFT] == [
        "00_external_schemas.sql",
        "10_streaming_views.sql",
        "20_events.sql",
        "21_metrics.sql",
        "30_metrics_latest.sql",
        "40_funnel_conversion.sql",
        "40_revenue_per_minute.sql",
        "40_sessions.sql",
        "40_top_pages_15m.sql",
    ]


@pytest.mark.parametrize("path", ATHENA, ids=lambda p: str(p.relative_to(WAREHOUSE_DIR)))
def test_athena_sql_parses(path: Path) -> None:
    [tree] = sqlglot.parse(path.read_text(), read="athena", error_level=ErrorLevel.RAISE)
    assert isinstance(tree, exp.Create)
    assert tree.kind == ("TABLE" if path.parent.name == "tables" else "VIEW")


@pytest.mark.parametrize("path", REDSHIFT, ids=lambda p: str(p.relative_to(WAREHOUSE_DIR)))
def test_redshift_sql_parses(path: Path) -> None:
    trees = sqlglot.parse(path.read_text(), read="redshift", error_level=ErrorLevel.RAISE)
    assert trees
    for tree in trees:
        if isinstance(tree, exp.Command):
            # sqlglot has no grammar for Redshift's external schemas; it keeps them verbatim.
            assert tree.sql(dialect="redshift", comments=False).startswith(
                "CREATE EXTERNAL SCHEMA IF NOT EXISTS"
            )
        elif isinstance(tree, exp.Drop):
            assert tree.args.get("exists"), f"a DROP must be IF EXISTS: every deploy runs it again: {tree}"
        else:
            assert isinstance(tree, exp.Create), tree


def test_committed_ddl_equals_the_generator_output() -> None:
    files = generated_files()
    assert len(files) == 10  # six event types, metrics, bad_rows, the events view in Athena and Redshift
    for rel, text in files.items():
        assert (WAREHOUSE_DIR / rel).read_text() == text, f"{rel} is stale: run `pipeline warehouse ddl`"


def test_render_fills_stage_names_and_keeps_athena_projection_placeholders() -> None:
    sql = render((WAREHOUSE_DIR / "athena/tables/metrics.sql").read_text(), stage("local"))
    assert "LOCATION 's3://rta-local-lake/curated/metrics/'" in sql
    assert "'s3://rta-local-lake/curated/metrics/window_date=${window_date}/'" in sql
