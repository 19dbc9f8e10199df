"""The whole local pipeline (emulator + every stand-in as its own process), reconciled to the event.

Each test runs `pipeline demo`'s own code on a small seeded workload with its state in a temporary
folder and the endpoint on a free loopback port; every process it starts is stopped by PID.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from pipeline.config import stage
from pipeline.local import stack
from pipeline.local.demo import run_demo
from pipeline.local.emulator import free_port
from pipeline.local.reconcile import Reconciliation
from pipeline.produce.workload import WorkloadConfig

pytestmark = pytest.mark.e2e


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(tmp_path / "state"))
    yield tmp_path / "state"
    stack.down()  # a failed run must not leave processes behind


def _demo(target: str = "moto", restart: str | None = None, events: int = 3000) -> Reconciliation:
    console = Console(record=True, width=140)
    report = run_demo(
        stage("local"),
        WorkloadConfig(events=events, seed=11),
        rate=600,  # spread over seconds, so the pipeline streams rather than receiving one batch
        target=target,  # type: ignore[arg-type]
        port=free_port(),
        console=console,
        restart=restart,
    )
    assert report.ok, console.export_text()
    return report


def _check(report: Reconciliation, name: str) -> tuple[object, object]:
    check = next(c for c in report.checks if c.name.startswith(name))
    return check.expected, check.actual


def test_demo_reconciles_exactly_on_moto(state_dir: Path) -> None:
    report = _demo()
    assert [c.ok for c in report.checks] == [True, True, True, True]
    manifest = json.loads((state_dir / "manifest.json").read_text())
    expected, actual = _check(report, "late events")
    assert expected == actual == manifest["late"]["count"] > 0
    expected, actual = _check(report, "bad rows per reason")
    assert expected == actual == {k: v for k, v in manifest["bad_rows"].items() if v}
    assert sum(manifest["bad_rows"].values()) > 0
    assert stack.load_state() is None  # the demo brought everything down


@pytest.mark.parametrize(
    "component", ["enricher", "flink-bridge", "flink-job", "lake-writer-events", "raw-archiver"]
)
def test_crashing_a_stand_in_mid_run_still_reconciles_exactly(state_dir: Path, component: str) -> None:
    _demo(restart=component)


def test_demo_reconciles_exactly_on_localstack(state_dir: Path) -> None:
    """Kinesis, SQS and S3 of LocalStack (host mode, its own venv); the stand-ins as on moto."""
    _demo(target="localstack", events=1500)
