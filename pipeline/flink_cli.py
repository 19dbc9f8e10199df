"""`pipeline flink package | bridge`: the Managed Flink zip, and the local job's Kinesis bridges."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.aws import client
from pipeline.config import REPO_ROOT, stage
from pipeline.flink_package import KINESIS_CONNECTOR, build_zip
from pipeline.local.flink_bridge import run_bridges

app = typer.Typer(
    help="The Flink analytics job: packaging for Managed Flink, local bridges.", no_args_is_help=True
)
console = Console()
LOCAL_STATE = REPO_ROOT / ".state" / "flink"


@app.command()
def package(
    out: Annotated[Path, typer.Option(help="where to write the application zip")] = REPO_ROOT
    / "build"
    / "flink-app.zip",
    connector_jar: Annotated[
        Path | None,
        typer.Option(help=f"a local {KINESIS_CONNECTOR.file_name} instead of the Maven Central download"),
    ] = None,
    allow_unverified_jar: Annotated[
        bool, typer.Option(help="accept a local jar that does not match the pinned sha512")
    ] = False,
) -> None:
    """Build the Managed Flink application zip (flink/README.md)."""
    entries = build_zip(out, connector_jar, allow_unverified_jar)
    console.print(f"wrote {out} ({len(entries)} entries, jar {KINESIS_CONNECTOR.zip_path})")


@app.command()
def bridge(
    spool: Annotated[Path, typer.Option(help="spool directory the local job reads")] = LOCAL_STATE / "spool",
    metrics: Annotated[Path, typer.Option(help="metrics directory the local job writes")] = LOCAL_STATE
    / "metrics",
    state: Annotated[Path, typer.Option(help="bridge checkpoints")] = LOCAL_STATE / "bridge",
    interval_s: float = 1.0,
    duration_s: Annotated[
        float | None, typer.Option(help="stop after this long (default: run until killed)")
    ] = None,
) -> None:
    """events-enriched -> spool files, committed metric files -> the metrics stream (exactly once)."""
    st = stage()
    run_bridges(
        client("kinesis"),
        st.stream("events-enriched"),
        st.stream("metrics"),
        spool,
        metrics,
        state,
        interval_s,
        duration_s,
    )
