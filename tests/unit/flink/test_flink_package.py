"""The Managed Flink zip layout. The real connector jar cannot be fetched on this machine (no Maven
Central), so the jar is a stub here: this checks the layout and the checksum gate, not the jar."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pipeline.flink_package import KINESIS_CONNECTOR, ChecksumMismatch, build_zip


def test_zip_has_the_layout_managed_flink_runs(tmp_path: Path) -> None:
    stub = tmp_path / "stub.jar"
    stub.write_bytes(b"stub jar")
    out = tmp_path / "app.zip"
    entries = build_zip(out, stub, allow_unverified_jar=True)
    assert sorted(entries) == sorted(
        [
            "main.py",
            "analytics_job.py",
            "analytics_sql.py",
            "job_settings.py",
            "metric_changelog.py",
            "pipeline/__init__.py",
            "pipeline/config.py",
            "cdk.json",
            "lib/flink-sql-connector-kinesis-5.0.0-1.20.jar",
        ]
    )
    with zipfile.ZipFile(out) as zf:
        assert zf.read(KINESIS_CONNECTOR.zip_path) == b"stub jar"
        assert b"def main(" in zf.read("main.py")


def test_a_jar_that_does_not_match_the_pin_is_refused(tmp_path: Path) -> None:
    stub = tmp_path / "stub.jar"
    stub.write_bytes(b"stub jar")
    with pytest.raises(ChecksumMismatch):
        build_zip(tmp_path / "app.zip", stub)
    assert not (tmp_path / "app.zip").exists()


def test_the_connector_is_pinned_once() -> None:
    assert KINESIS_CONNECTOR.url == (
        "https://repo1.maven.org/maven2/org/apache/flink/flink-sql-connector-kinesis/5.0.0-1.20/"
        "flink-sql-connector-kinesis-5.0.0-1.20.jar"
    )
