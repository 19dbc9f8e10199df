"""The `pipeline` command. Each capability contributes one sub-command group."""

from __future__ import annotations

import typer

from pipeline.contract.cli import app as schemas_app
from pipeline.enrich.dlq_cli import app as dlq_app
from pipeline.flink_cli import app as flink_app
from pipeline.lake.cli import app as lake_app
from pipeline.lake.cli import replay
from pipeline.local import cli as local_cli
from pipeline.local.mapping_cli import app as mapping_app
from pipeline.produce.cli import produce
from pipeline.warehouse.cli import app as warehouse_app
from pipeline.warehouse.cli import query

app = typer.Typer(help="Real-time analytics pipeline: local stack, workloads, tooling.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
app.add_typer(dlq_app, name="dlq")
app.add_typer(mapping_app, name="mapping")
app.add_typer(warehouse_app, name="warehouse")
app.command("query")(query)
app.command("replay")(replay)
app.add_typer(lake_app, name="lake")
app.add_typer(flink_app, name="flink")
app.command("produce")(produce)
app.command("up")(local_cli.up)
app.command("status")(local_cli.status)
app.command("down")(local_cli.down)
app.command("demo")(local_cli.demo)


def main() -> None:
    app()
