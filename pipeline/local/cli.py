"""`pipeline up | status | down`: the local stack on one machine."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from pipeline.aws import client
from pipeline.config import stage as load_stage
from pipeline.local import stack
from pipeline.local.components import COMPONENTS
from pipeline.local.durable import load_json
from pipeline.local.status import state_dir

console = Console()
STATUS_SCHEMA_VERSION = 1


def status_document() -> dict[str, Any]:
    """The `pipeline status --json` document (schema in docs/local-stack.md; tests read it)."""
    state = stack.load_state()
    if not state:
        return {"schema_version": STATUS_SCHEMA_VERSION, "up": False, "components": {}}
    components: dict[str, Any] = {}
    for name, pid in state.get("components", {}).items():
        published = load_json(state_dir() / "status" / f"{name}.json", {})
        components[name] = {
            "pid": pid,
            "alive": stack.alive(pid),
            "records_in": published.get("records_in", 0),
            "records_out": published.get("records_out", 0),
            "lag_ms": published.get("lag_ms"),
            "watermark": published.get("watermark"),
            "late_events": published.get("late_events", 0),
            "bad_rows": published.get("bad_rows", 0),
            "last_error": published.get("last_error"),
            "updated_at": published.get("updated_at"),
        }
    dlq_depth = None
    resources = state.get("resources", {})
    if stack.alive(state.get("emulator_pid")) or state.get("target") == "localstack":
        try:
            attributes = client("sqs", state["endpoint_url"]).get_queue_attributes(
                QueueUrl=resources["dlq_url"], AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            dlq_depth = int(attributes["ApproximateNumberOfMessages"])
        except Exception:  # the emulator may be stopping; status must still answer
            dlq_depth = None
    return {
        "schema_version": STATUS_SCHEMA_VERSION,
        "up": True,
        "target": state["target"],
        "stage": state["stage"],
        "endpoint_url": state["endpoint_url"],
        "emulator_pid": state.get("emulator_pid"),
        "resources": resources,
        "components": components,
        "dlq_depth": dlq_depth,
        "late_events": sum(c["late_events"] for c in components.values()),
    }


def up(
    target: Annotated[str, typer.Option(help="moto (embedded, default) or localstack.")] = "moto",
    detach: Annotated[bool, typer.Option(help="Return once everything is healthy.")] = False,
    port: Annotated[int, typer.Option(help="Loopback port of the AWS endpoint.")] = 4566,
    stage_name: Annotated[str, typer.Option("--stage")] = "local",
) -> None:
    """Start the emulator, create the local stage's resources, start the stand-ins."""
    if target not in ("moto", "localstack"):
        raise typer.BadParameter("must be moto or localstack", param_hint="--target")
    the_stage = load_stage(stage_name)
    with console.status(f"starting {target} on 127.0.0.1:{port} ..."):
        state = stack.up(the_stage, cast(stack.Target, target), port)
    console.print(f"[green]up[/]: {target} at {state['endpoint_url']}, state in {state_dir()}")
    for name, pid in state["components"].items():
        console.print(f"  {name}: PID {pid}")
    if detach:
        return
    console.print("Ctrl-C stops everything.")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        for stopped in stack.down():
            console.print(f"stopped {stopped}")


def down() -> None:
    """Stop every process the local stack started, by PID."""
    stopped = stack.down()
    if not stopped:
        console.print("nothing was running")
    for what in stopped:
        console.print(f"stopped {what}")


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable, stable schema.")] = False,
) -> None:
    """Endpoint, resources and per-stage counters of the local stack."""
    document = status_document()
    if as_json:
        typer.echo(json.dumps(document, sort_keys=True))
        return
    if not document["up"]:
        console.print("local stack is down (`pipeline up --detach` starts it)")
        raise typer.Exit(1)
    console.print(f"{document['target']} at {document['endpoint_url']}; DLQ depth {document['dlq_depth']}")
    table = Table("stage", "alive", "in", "out", "lag ms", "watermark", "late", "bad rows", "last error")
    for name, c in document["components"].items():
        table.add_row(
            name,
            "yes" if c["alive"] else "[red]no[/]",
            str(c["records_in"]),
            str(c["records_out"]),
            str(c["lag_ms"] if c["lag_ms"] is not None else "-"),
            str(c["watermark"] or "-"),
            str(c["late_events"]),
            str(c["bad_rows"]),
            c["last_error"] or "",
        )
    console.print(table)


def demo(
    events: Annotated[
        int, typer.Option(help="Records to produce (valid, late, duplicate, malformed).")
    ] = 200_000,
    seed: Annotated[int, typer.Option(help="Same seed, same workload, same ground truth.")] = 7,
    rate: Annotated[
        float | None, typer.Option(help="Records/s (default: as fast as the stream takes).")
    ] = None,
    target: Annotated[str, typer.Option(help="moto (default) or localstack.")] = "moto",
    port: Annotated[int, typer.Option(help="Loopback port of the AWS endpoint.")] = 4566,
    keep_up: Annotated[bool, typer.Option(help="Leave the stack running afterwards.")] = False,
    restart: Annotated[
        str | None,
        typer.Option(help="Crash this stand-in mid-run (SIGKILL) and restart it; must still reconcile."),
    ] = None,
) -> None:
    """Run the whole pipeline locally on a seeded workload and reconcile the warehouse to the event."""
    from pipeline.local.demo import run_demo
    from pipeline.produce.workload import WorkloadConfig

    if target not in ("moto", "localstack"):
        raise typer.BadParameter("must be moto or localstack", param_hint="--target")
    if restart is not None and restart not in COMPONENTS:
        raise typer.BadParameter(f"one of {', '.join(COMPONENTS)}", param_hint="--restart")
    config = WorkloadConfig(events=events, seed=seed)
    report = run_demo(
        load_stage("local"), config, rate, cast(stack.Target, target), port, keep_up, console, restart
    )
    if not report.ok:
        console.print("[red]reconciliation FAILED[/]: some figure differs from the ground truth")
        raise typer.Exit(1)
    console.print("[green]every reconciled figure is exact[/]")
