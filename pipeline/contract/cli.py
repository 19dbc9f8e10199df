"""`pipeline schemas ...`: inspect the contract and gate schema changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.contract.compatibility import Mode, check_chain, check_new_version
from pipeline.contract.schemas import compose, contract, make_version

app = typer.Typer(help="Avro schemas: list versions, check compatibility.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@app.command("list")
def list_versions() -> None:
    """Every event type's versions with their ids, fingerprints and local schema-version UUIDs."""
    c = contract()
    table = Table("subject", "version", "id", "CRC-64-AVRO", "schema version UUID (local)", "mode")
    for event_type in c.event_types:
        for sv in c.versions[event_type].values():
            table.add_row(
                event_type, str(sv.version), sv.id, sv.fingerprint_hex, str(sv.local_uuid), c.mode(event_type)
            )
    console.print(table)


@app.command("check")
def check(
    candidate: Annotated[
        Path | None, typer.Option(help="A proposed new version (.avsc payload schema).")
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Event type the candidate would become a version of.")
    ] = None,
    mode: Annotated[
        Mode | None, typer.Option(help="Override the subject's mode from compatibility.json.")
    ] = None,
) -> None:
    """Check every version chain in schemas/ (or a candidate) against its compatibility mode."""
    c = contract()
    if candidate is not None:
        if subject is None:
            raise typer.BadParameter("--candidate needs --subject", param_hint="--subject")
        if subject not in c.versions:
            err.print(f"[red]unknown subject {subject!r}[/]; known: {', '.join(c.event_types)}")
            raise typer.Exit(2)
        try:
            payload = json.loads(candidate.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            err.print(f"[red]{candidate}: {exc}[/]")
            raise typer.Exit(2) from None
        chain = list(c.versions[subject].values())
        try:
            new = make_version(subject, len(chain) + 1, compose(subject, payload, c.envelope))
        except Exception as exc:  # fastavro's SchemaParseException and friends
            err.print(f"[red]{candidate}: not a valid Avro schema: {exc}[/]")
            raise typer.Exit(2) from None
        the_mode = mode or Mode(c.mode(subject))
        problems = check_new_version(new, chain, the_mode)
        checked = f"candidate {candidate} as {subject} v{new.version} ({the_mode})"
    else:
        problems = []
        for event_type in c.event_types:
            the_mode = mode or Mode(c.mode(event_type))
            problems.extend(check_chain(list(c.versions[event_type].values()), the_mode))
        n = sum(len(chain) for chain in c.versions.values())
        checked = f"{len(c.versions)} subjects, {n} versions"
    if problems:
        for problem in problems:
            err.print(f"[red]INCOMPATIBLE[/] {problem}")
        raise typer.Exit(1)
    console.print(f"[green]compatible[/]: {checked}")
