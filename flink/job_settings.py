"""The job's settings, read from Managed Flink application properties (property groups).

On AWS, Managed Flink writes the application's runtime properties to
`/etc/flink/application_properties.json`; locally the same JSON shape comes from a file named with
`--properties` (e.g. `flink/application_properties.local.json`). Only the `source`, `sink.metrics`
and `sink.late` groups differ between the two: the job graph is the same.

Kept free of pyflink imports so the main venv can type-check and unit-test it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

AWS_PROPERTIES_PATH = Path("/etc/flink/application_properties.json")

RuntimeMode = Literal["streaming", "batch"]
Connector = Literal["files", "kinesis"]


class PropertiesError(ValueError):
    """A property is missing or malformed; the message names the group and key."""


@dataclass(frozen=True)
class SourceSettings:
    connector: Connector
    path: str | None = None  # files: the spool directory (newline-delimited JSON)
    monitor_interval_s: int = 1  # files, streaming mode: how often new spool files are looked for
    stream_arn: str | None = None  # kinesis: the new source ('kinesis' connector) ...
    stream_name: str | None = (
        None  # ... or the legacy one ('kinesis-legacy'), which de-aggregates KPL records
    )
    region: str | None = None
    initial_position: str = "TRIM_HORIZON"


@dataclass(frozen=True)
class SinkSettings:
    connector: Connector
    path: str | None = None  # files: directory of committed part files
    stream_name: str | None = None  # kinesis
    region: str | None = None


@dataclass(frozen=True)
class JobSettings:
    runtime_mode: RuntimeMode
    source: SourceSettings
    metrics_sink: SinkSettings
    late_sink_path: str  # a directory or an s3:// prefix; Flink's FileSink writes both
    checkpoint_dir: str | None
    checkpoint_interval_s: int
    restore_from_latest_checkpoint: bool
    out_of_orderness_s: int
    allowed_lateness_s: int
    idle_timeout_s: int
    dedup_ttl_s: int
    parallelism: int | None  # None: leave it to the cluster (Managed Flink's parallelism setting)
    # 0 = a watermark after every record that advances it: deterministic late classification, so a
    # replay classifies exactly like the live run. >0 = Flink's periodic emission (cheaper, timing-dependent).
    watermark_interval_ms: int


def property_groups(raw: Any, origin: str) -> dict[str, dict[str, str]]:
    """`[{"PropertyGroupId": g, "PropertyMap": {...}}, ...]` (the Managed Flink shape) as a dict."""
    if not isinstance(raw, list):
        raise PropertiesError(f"{origin}: expected a JSON list of property groups")
    groups: dict[str, dict[str, str]] = {}
    for entry in raw:
        try:
            groups[str(entry["PropertyGroupId"])] = {str(k): str(v) for k, v in entry["PropertyMap"].items()}
        except (KeyError, TypeError, AttributeError) as exc:
            raise PropertiesError(f"{origin}: malformed property group {entry!r}") from exc
    return groups


def _get(groups: dict[str, dict[str, str]], group: str, key: str, default: str | None = None) -> str:
    value = groups.get(group, {}).get(key, default)
    if value is None:
        raise PropertiesError(f"missing property {key!r} in group {group!r}")
    return value


def _int(groups: dict[str, dict[str, str]], group: str, key: str, default: int) -> int:
    value = _get(groups, group, key, str(default))
    try:
        return int(value)
    except ValueError:
        raise PropertiesError(f"property {group}.{key} must be an integer, got {value!r}") from None


def _connector(groups: dict[str, dict[str, str]], group: str) -> Connector:
    value = _get(groups, group, "connector")
    if value not in ("files", "kinesis"):
        raise PropertiesError(f"property {group}.connector must be 'files' or 'kinesis', got {value!r}")
    return "files" if value == "files" else "kinesis"


def _env_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def _local_path(value: str, base: Path) -> str:
    """Paths with a scheme (s3://, file://) stay as they are; plain ones resolve against `base`."""
    if "://" in value:
        return value
    return str((base / value).resolve())


def stage_defaults(stage_name: str) -> dict[str, dict[str, str]]:
    """Property defaults from the stage's section of cdk.json (`pipeline.config.stage`): the lateness
    and watermark settings, and on AWS the stream names and late-sink bucket. The application zip
    carries `pipeline/` and `cdk.json`, so the job reads the very settings the stacks were built from."""
    from pipeline.config import stage  # stdlib-only module, importable in the Flink venv and the zip

    st = stage(stage_name)
    f = st.flink
    return {
        "job": {
            "watermark.out-of-orderness.s": str(f.out_of_orderness_s),
            "window.allowed-lateness.s": str(f.allowed_lateness_s),
            "watermark.idle-timeout.s": str(f.idle_timeout_s),
            "dedup.ttl.s": str(f.dedup_ttl_s),
            "checkpoint.interval.s": str(f.checkpoint_interval_s),
        },
        "source": {"connector": "kinesis", "stream.name": st.stream("events-enriched")},
        "sink.metrics": {"connector": "kinesis", "stream.name": st.stream("metrics")},
        "sink.late": {"path": f"s3://{st.lake_bucket}/late/"},
    }


def with_defaults(groups: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Explicit properties win over the stage's defaults (group `pipeline`, key `stage`)."""
    stage_name = groups.get("pipeline", {}).get("stage")
    if not stage_name:
        return groups
    merged = stage_defaults(stage_name)
    for group, props in groups.items():
        if group in ("source", "sink.metrics", "sink.late") and props.get("connector", "files") != merged.get(
            group, {}
        ).get("connector", "files"):
            merged[group] = dict(props)  # another connector: none of the defaults apply
        else:
            merged[group] = {**merged.get(group, {}), **props}
    return merged


def settings_from_groups(groups: dict[str, dict[str, str]], base: Path) -> JobSettings:
    groups = with_defaults(groups)
    mode = _get(groups, "job", "runtime.mode", "streaming")
    if mode not in ("streaming", "batch"):
        raise PropertiesError(f"property job.runtime.mode must be 'streaming' or 'batch', got {mode!r}")
    src_connector = _connector(groups, "source")
    source = SourceSettings(
        connector=src_connector,
        path=_local_path(_get(groups, "source", "path"), base) if src_connector == "files" else None,
        monitor_interval_s=_int(groups, "source", "monitor.interval.s", 1),
        stream_arn=groups.get("source", {}).get("stream.arn"),
        stream_name=groups.get("source", {}).get("stream.name"),
        region=groups.get("source", {}).get("aws.region") or _env_region(),
        initial_position=_get(groups, "source", "initial.position", "TRIM_HORIZON"),
    )
    sink_connector = _connector(groups, "sink.metrics")
    metrics_sink = SinkSettings(
        connector=sink_connector,
        path=_local_path(_get(groups, "sink.metrics", "path"), base) if sink_connector == "files" else None,
        stream_name=_get(groups, "sink.metrics", "stream.name") if sink_connector == "kinesis" else None,
        region=groups.get("sink.metrics", {}).get("aws.region") or _env_region(),
    )
    checkpoint_dir = groups.get("job", {}).get("checkpoint.dir")
    return JobSettings(
        runtime_mode="batch" if mode == "batch" else "streaming",
        source=source,
        metrics_sink=metrics_sink,
        late_sink_path=_local_path(_get(groups, "sink.late", "path"), base),
        checkpoint_dir=_local_path(checkpoint_dir, base) if checkpoint_dir else None,
        checkpoint_interval_s=_int(groups, "job", "checkpoint.interval.s", 60),
        restore_from_latest_checkpoint=_get(groups, "job", "checkpoint.restore", "latest") == "latest",
        out_of_orderness_s=_int(groups, "job", "watermark.out-of-orderness.s", 5),
        allowed_lateness_s=_int(groups, "job", "window.allowed-lateness.s", 120),
        idle_timeout_s=_int(groups, "job", "watermark.idle-timeout.s", 30),
        dedup_ttl_s=_int(groups, "job", "dedup.ttl.s", 3600),
        parallelism=int(groups["job"]["parallelism"]) if "parallelism" in groups.get("job", {}) else None,
        watermark_interval_ms=_int(groups, "job", "watermark.interval.ms", 0),
    )


def load_settings(path: Path | None = None) -> JobSettings:
    """Settings from `path`, else from the file Managed Flink provides."""
    path = path or AWS_PROPERTIES_PATH
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PropertiesError(f"cannot read application properties {path}: {exc}") from exc
    settings = settings_from_groups(property_groups(raw, str(path)), Path.cwd())
    if settings.source.connector == "kinesis" and not (
        settings.source.stream_arn or settings.source.stream_name
    ):
        raise PropertiesError("source: a kinesis source needs stream.arn or stream.name (or pipeline.stage)")
    if settings.dedup_ttl_s < settings.allowed_lateness_s + settings.out_of_orderness_s:
        # A duplicate arriving after its twin's dedup state expired but still inside the lateness
        # would be counted twice.
        raise PropertiesError(
            "job.dedup.ttl.s must be >= window.allowed-lateness.s + watermark.out-of-orderness.s"
        )
    return settings
