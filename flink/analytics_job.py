"""Build and start the analytics job on a StreamExecutionEnvironment (mini cluster or Managed Flink).

Graph: source table -> dedup (event_id, TTL) -> late split -> six window aggregations with late
firing (SQL, in the JVM) -> one changelog -> keyed version counter (Python) -> metrics sink; too-late
events -> late sink. Both runtime modes run these same streaming operators; `batch` only makes the
source bounded, so a replay classifies late events and fires windows exactly like the live run and
finishes at the end of its input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import analytics_sql
import metric_changelog
from job_settings import JobSettings

FLINK_DIR = Path(__file__).resolve().parent
# The local mini cluster's JVM (read by pyflink when it starts its gateway). Heap state holds one
# dedup entry per event_id for the TTL, so most young objects survive into the old generation: a
# large young generation and the parallel collector (both cores) keep stop-the-world pauses short.
# The heap is fixed (-Xms = -Xmx, no adaptive sizing): a growing heap made the collector run a full
# collection after every young one to resize the old generation (0.6-0.9 s each, ~15% of the wall
# time of a 1M-event run). MetaspaceSize spares the start-up four class-loading full collections.
os.environ.setdefault(
    "JVM_ARGS",
    "-Xms3g -Xmx3g -Xmn1g -XX:+UseParallelGC -XX:-UseAdaptiveSizePolicy -XX:MetaspaceSize=256m",
)


def latest_checkpoint(checkpoint_dir: str | None) -> str | None:
    """The newest complete retained checkpoint (`<dir>/<job id>/chk-N/_metadata`), if any."""
    if not checkpoint_dir or ("://" in checkpoint_dir and not checkpoint_dir.startswith("file://")):
        return None
    root = Path(checkpoint_dir.removeprefix("file://"))
    complete = [m.parent for m in root.glob("*/chk-*/_metadata")]
    if not complete:
        return None
    newest = max(complete, key=lambda p: (p.stat().st_mtime, int(p.name.split("-")[1])))
    return str(newest)


def _configuration(settings: JobSettings) -> Any:
    from pyflink.common import Configuration

    config = Configuration()
    # Operators do not keep references to their input (SQL operators copy what they keep into
    # state), so chained operators may hand records over without a defensive copy each.
    config.set_string("pipeline.object-reuse", "true")
    # Set as options: pyflink 1.20's CheckpointConfig.set_externalized_checkpoint_retention points
    # at a Java class that does not exist.
    # On Managed Flink the application's checkpoint configuration rules; locally these options do.
    config.set_string("execution.checkpointing.interval", f"{settings.checkpoint_interval_s} s")
    config.set_string("execution.checkpointing.mode", "EXACTLY_ONCE")
    config.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    if settings.checkpoint_dir:
        path = settings.checkpoint_dir
        config.set_string("state.checkpoints.dir", path if "://" in path else f"file://{path}")
    if settings.restore_from_latest_checkpoint:
        restore = latest_checkpoint(settings.checkpoint_dir)
        if restore:
            config.set_string("execution.savepoint.path", restore)
    return config


def _file_sink(path: str, prefix: str) -> Any:
    from pyflink.common.serialization import Encoder
    from pyflink.datastream.connectors.file_system import (
        BucketAssigner,
        FileSink,
        OutputFileConfig,
        RollingPolicy,
    )

    # Part files become visible (lose their leading dot) only when the checkpoint that covers them
    # completes: exactly-once output that a downstream bridge can read without seeing rollbacks.
    return (
        FileSink.for_row_format(path, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy())
        .with_output_file_config(
            OutputFileConfig.builder().with_part_prefix(prefix).with_part_suffix(".jsonl").build()
        )
        .build()
    )


def _metrics_sink(settings: JobSettings) -> Any:
    sink = settings.metrics_sink
    if sink.connector == "files":
        return _file_sink(str(sink.path), "metrics")
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.kinesis import KinesisStreamsSink, PartitionKeyGenerator

    return (
        KinesisStreamsSink.builder()
        .set_kinesis_client_properties({"aws.region": str(sink.region)})
        .set_serialization_schema(SimpleStringSchema())
        .set_partition_key_generator(PartitionKeyGenerator.random())
        .set_stream_name(str(sink.stream_name))
        .build()
    )


def table_environment(settings: JobSettings) -> tuple[Any, Any]:
    """The job's environments with the source table and the dedup/classify views registered."""
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    env = StreamExecutionEnvironment.get_execution_environment(_configuration(settings))
    if settings.parallelism is not None:
        env.set_parallelism(settings.parallelism)
    t_env = StreamTableEnvironment.create(env)
    for key, value in analytics_sql.table_config(settings).items():
        t_env.get_config().set(key, value)
    t_env.execute_sql(analytics_sql.source_table_ddl(settings.source, settings))
    for statement in analytics_sql.view_statements(settings):
        t_env.execute_sql(statement)
    return env, t_env


def build(settings: JobSettings) -> Any:
    """A configured StreamExecutionEnvironment holding the whole job (not started)."""
    from pyflink.common import Types
    from pyflink.table import DataTypes, Schema

    env, t_env = table_environment(settings)
    env.add_python_file(str(FLINK_DIR / "metric_changelog.py"))

    # Dedup and the late split run once; their output re-enters SQL as a table whose rowtime and
    # watermarks are the stream's own, so both planning passes below share one source and one dedup.
    classified = t_env.to_data_stream(t_env.from_path("classified_events"))
    arrived = t_env.from_data_stream(
        classified,
        Schema.new_builder()
        .column_by_metadata("ts", DataTypes.TIMESTAMP_LTZ(3), "rowtime")
        .watermark("ts", "SOURCE_WATERMARK()")
        .build(),
    )
    t_env.create_temporary_view("arrived_events", arrived)
    # Both changelogs are declared with one nullable schema so they can be united.
    output_schema = Schema.new_builder()
    for name, type_name in analytics_sql.OUTPUT_COLUMNS:
        output_schema = output_schema.column(name, type_name)
    late_firing = t_env.to_changelog_stream(
        t_env.sql_query(analytics_sql.late_firing_query()), output_schema.build()
    )
    for option in analytics_sql.LATE_FIRING_OPTIONS:
        t_env.get_config().get_configuration().remove_config(option)
    t_env.get_config().set("table.exec.emit.late-fire.enabled", "false")
    sessions = t_env.to_changelog_stream(
        t_env.sql_query(analytics_sql.session_query()), output_schema.build()
    )
    changelog = late_firing.union(sessions)
    versioned_changelog, late_tag = metric_changelog.make_versioned_changelog(
        settings.dedup_ttl_s + settings.allowed_lateness_s
    )
    metric_rows = (
        changelog.key_by(lambda row: metric_changelog.record_key(row.as_dict()), key_type=Types.STRING())
        .process(versioned_changelog, output_type=Types.STRING())
        .name("version metric rows")
    )
    metric_rows.sink_to(_metrics_sink(settings)).name("metrics sink")
    metric_rows.get_side_output(late_tag).sink_to(_file_sink(settings.late_sink_path, "late")).name(
        "late sink"
    )
    return env


def start(settings: JobSettings, job_name: str = "rta-analytics") -> Any:
    """Submit the job without waiting; returns pyflink's JobClient."""
    return build(settings).execute_async(job_name)
