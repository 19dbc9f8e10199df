"""Application properties -> job settings (flink/job_settings.py, pyflink-free), and the job's SQL text."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pipeline.config import REPO_ROOT, stage

sys.path.insert(0, str(REPO_ROOT / "flink"))
import analytics_sql
from job_settings import PropertiesError, load_settings, property_groups, settings_from_groups


def test_local_properties_take_lateness_and_watermarks_from_cdk_json() -> None:
    settings = load_settings(REPO_ROOT / "flink/application_properties.local.json")
    flink = stage("local").flink
    assert (
        settings.out_of_orderness_s,
        settings.allowed_lateness_s,
        settings.idle_timeout_s,
        settings.dedup_ttl_s,
    ) == (
        flink.out_of_orderness_s,
        flink.allowed_lateness_s,
        flink.idle_timeout_s,
        flink.dedup_ttl_s,
    )
    assert settings.runtime_mode == "streaming"
    assert settings.source.connector == "files" and settings.metrics_sink.connector == "files"
    assert settings.checkpoint_interval_s == flink.checkpoint_interval_s


def test_aws_properties_read_the_stage_streams_and_lake() -> None:
    groups = property_groups(json.loads((REPO_ROOT / "flink/application_properties.json").read_text()), "aws")
    groups["pipeline"] = {"stage": "dev"}  # added by the CDK stack (stacks/analytics.py)
    settings = settings_from_groups(groups, Path("/"))
    assert settings.source.connector == "kinesis" and settings.source.stream_name == "rta-dev-events-enriched"
    assert settings.metrics_sink.stream_name == "rta-dev-metrics"
    assert settings.late_sink_path == "s3://rta-dev-lake/late/"
    assert settings.parallelism is None  # Managed Flink's parallelism setting decides
    ddl = analytics_sql.source_table_ddl(settings.source, settings)
    assert "'connector' = 'kinesis-legacy'" in ddl and "'stream' = 'rta-dev-events-enriched'" in ddl


def test_bad_properties_name_the_group_and_key(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"PropertyGroupId": "job", "PropertyMap": {"runtime.mode": "sometimes"}}]))
    with pytest.raises(PropertiesError, match=r"job\.runtime\.mode"):
        load_settings(path)
    path.write_text(json.dumps([{"PropertyGroupId": "source", "PropertyMap": {"connector": "files"}}]))
    with pytest.raises(PropertiesError, match="'path' in group 'source'"):
        load_settings(path)


def test_dedup_ttl_must_cover_lateness_plus_disorder(tmp_path: Path) -> None:
    groups = json.loads((REPO_ROOT / "flink/application_properties.local.json").read_text())
    for g in groups:
        if g["PropertyGroupId"] == "job":
            g["PropertyMap"]["dedup.ttl.s"] = "60"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(groups))
    with pytest.raises(PropertiesError, match=r"dedup\.ttl\.s"):
        load_settings(path)


def test_batch_mode_reads_a_bounded_directory() -> None:
    base = {
        "source": {"connector": "files", "path": "/spool"},
        "sink.metrics": {"connector": "files", "path": "/m"},
        "sink.late": {"path": "/l"},
    }
    streaming = settings_from_groups({**base, "job": {"runtime.mode": "streaming"}}, Path("/"))
    batch = settings_from_groups({**base, "job": {"runtime.mode": "batch"}}, Path("/"))
    assert "source.monitor-interval" in analytics_sql.source_table_ddl(streaming.source, streaming)
    assert "source.monitor-interval" not in analytics_sql.source_table_ddl(batch.source, batch)
