"""`pipeline query` prints the local engine's result as a table, CSV or JSON; SQL errors are one line."""

import json
from pathlib import Path

from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.lake.store import local_lake
from pipeline.lake.tables import metrics_table
from pipeline.lake.writer import parquet_bytes

T = 1764151200000  # 2025-11-26T10:00:00Z


def lake_with_one_metric(root: Path) -> Path:
    row = {
        "metric": "page_activity",
        "window_start": T,
        "window_end": T + 60_000,
        "dimensions": {"page": "/home"},
        "values": {"views": 3},
        "version": 1,
        "op": "insert",
        "emitted_at": T + 61_000,
    }
    local_lake(root).put(
        "curated/metrics/window_date=2025-11-26/a.parquet", parquet_bytes([row], metrics_table().data_schema)
    )
    return root


def test_csv_and_json_output(tmp_path: Path) -> None:
    lake = str(lake_with_one_metric(tmp_path))
    sql = "SELECT metric, dimensions['page'] AS page, window_start FROM metrics_latest"
    csv_out = CliRunner().invoke(app, ["query", "--lake-dir", lake, "--format", "csv", sql])
    assert csv_out.exit_code == 0, csv_out.output
    assert csv_out.output == "metric,page,window_start\npage_activity,/home,2025-11-26 10:00:00\n"
    json_out = CliRunner().invoke(app, ["query", "--lake-dir", lake, "--format", "json", sql])
    assert json.loads(json_out.output) == [
        {"metric": "page_activity", "page": "/home", "window_start": "2025-11-26 10:00:00"}
    ]


def test_redshift_dialect(tmp_path: Path) -> None:
    lake = str(lake_with_one_metric(tmp_path))
    result = CliRunner().invoke(
        app,
        [
            "query",
            "--lake-dir",
            lake,
            "--dialect",
            "redshift",
            "--format",
            "csv",
            "SELECT TOP 1 NVL(op, 'x') AS op FROM metrics",
        ],
    )
    assert result.output == "op\ninsert\n"


def test_sql_errors_are_reported_not_raised(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["query", "--lake-dir", str(tmp_path), "SELECT * FROM no_such_table"])
    assert result.exit_code == 1
    assert "no_such_table" in result.output
