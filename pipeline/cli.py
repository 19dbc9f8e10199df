"""The `pipeline` command. Each capability contributes one sub-command group."""

from __future__ import annotations

import typer

from pipeline.contract.cli import app as schemas_app

app = typer.Typer(help="Real-time analytics pipeline: local stack, workloads, tooling.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")


def main() -> None:
    app()
