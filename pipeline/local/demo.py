"""`pipeline demo`: the whole pipeline on this machine, reconciled against the producer's ground truth.

up -> a seeded workload (out-of-order, late, duplicate and malformed events) -> a live dashboard while
every stage catches up -> drain the Flink job (its last windows fire, as `stop --drain` does on AWS)
-> reconciliation of the warehouse and sinks against the manifest -> sample Athena queries -> down.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from pipeline.aws import client
from pipeline.config import Stage
from pipeline.enrich.dlq import count_by_reason
from pipeline.lake.store import s3_lake
from pipeline.local import stack
from pipeline.local.components import MAPPED_FUNCTIONS, flink_dirs
from pipeline.local.durable import load_json
from pipeline.local.reconcile import Reconciliation, late_event_ids, reconcile
from pipeline.local.status import state_dir
from pipeline.produce.kinesis import KinesisWriter
from pipeline.produce.manifest import Manifest
from pipeline.produce.run import RunSummary, run
from pipeline.produce.workload import Workload, WorkloadConfig
from pipeline.warehouse.engine import LocalWarehouse

SAMPLE_QUERIES = {
    "top pages, last 15 minutes of event time": "SELECT * FROM top_pages_15m ORDER BY views DESC LIMIT 5",
    "revenue per minute (last 5 minutes)": (
        "SELECT minute, currency, purchases, revenue_minor FROM revenue_per_minute ORDER BY minute DESC, currency LIMIT 5"
    ),
    "funnel conversion": "SELECT * FROM funnel_conversion",
}


def _component(name: str) -> dict[str, Any]:
    return load_json(state_dir() / "status" / f"{name}.json", {})


def dashboard(produced: dict[str, Any]) -> Table:
    table = Table(title="pipeline demo", expand=False)
    for column in ("stage", "in", "out", "lag ms", "watermark", "bad", "caught up", "last error"):
        table.add_column(column)
    table.add_row(
        "producer", str(produced.get("offered", 0)), str(produced.get("sent", 0)), "", "", "", "", ""
    )
    for name in (*MAPPED_FUNCTIONS, "flink-bridge", "flink-job"):
        c = _component(name)
        watermark = c.get("watermark")
        table.add_row(
            name,
            str(c.get("records_in", 0)),
            str(c.get("records_out", 0)),
            str(c.get("lag_ms", "")),
            time.strftime("%H:%M:%S", time.gmtime(watermark / 1000)) if watermark else "",
            str(c.get("bad_rows", 0) or ""),
            "yes" if c.get("extra", {}).get("caught_up") else "",
            (c.get("last_error") or "")[:60],
        )
    return table


def spooled_max_event_time() -> int:
    """Newest event time in the spool, read with O_NOATIME: the bridge's handover watches access times."""
    newest = 0
    for path in flink_dirs()["spool"].glob("spool-*"):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOATIME", 0))
        with os.fdopen(fd, "rb") as f:
            for line in f:
                newest = max(newest, orjson.loads(line)["event_time"])
    return newest


def windows_fired_before_drain(manifest: Manifest, max_event_time: int) -> set[tuple[str, int]]:
    """The (event_type, window_start) windows the job must have fired once it read the newest event:
    those ending at or before its watermark then (max event time - out-of-orderness - 1 ms)."""
    watermark = max_event_time - manifest.stream_settings["out_of_orderness_ms"] - 1
    window_ms = manifest.stream_settings["window_ms"]
    return {
        (row["dimensions"]["event_type"], row["window_start"])
        for row in manifest.metrics["on_time"]
        if row["metric"] == "events_by_type" and row["window_start"] + window_ms <= watermark
    }


def fired_windows() -> set[tuple[str, int]]:
    """events_by_type windows in the job's committed metric files (a drained job would fire the rest:
    this tells that it has read its input, which a drain must not cut short)."""
    fired = set()
    for path in flink_dirs()["metrics"].glob("[!.]*"):
        for line in path.read_bytes().splitlines():
            row = orjson.loads(line)
            if row["metric"] == "events_by_type":
                fired.add((row["dimensions"]["event_type"], row["window_start"]))
    return fired


def _caught_up(names: tuple[str, ...]) -> bool:
    return all(_component(n).get("extra", {}).get("caught_up") for n in names)


def wait_until(
    live: Live, produced: dict[str, Any], done: Callable[[], bool], what: str, timeout_s: float
) -> None:
    """Polls `done` while refreshing the dashboard; `done` must hold on three polls in a row."""
    deadline, streak = time.monotonic() + timeout_s, 0
    while streak < 3:
        dead = [
            n
            for n, pid in (stack.load_state() or {}).get("components", {}).items()
            if n != "flink-job" and not stack.alive(pid)
        ]
        if dead:  # a stand-in that exited cannot catch up: say so now, not at the timeout
            raise RuntimeError(f"{', '.join(dead)} exited; see {state_dir() / 'logs'}/<component>.log")
        live.update(Group(dashboard(produced), f"waiting: {what}"))
        streak = streak + 1 if done() else 0
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


def job_settled(pid: int, settle_s: float) -> bool:
    """The job in process `pid` has been running for `settle_s`: a restarted job has restored its
    checkpoint and re-read what came after it (several checkpoint intervals)."""
    status = _component("flink-job")
    extra = status.get("extra", {})
    running_since = status.get("updated_at") or 0
    return bool(
        extra.get("running")
        and extra.get("pid") == pid
        and time.time() * 1000 - running_since >= settle_s * 1000
    )


def drain_flink(pid: int, timeout_s: float = 180) -> None:
    """SIGUSR1 asks the job to stop with drain: the final watermark fires every window, then it exits."""
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while stack.alive(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Flink job (PID {pid}) did not finish draining in {timeout_s:.0f} s")
        time.sleep(0.5)


def _has_made_progress(component: str) -> bool:
    if component == "flink-job":  # it has checkpointed at least once and committed output
        return any(flink_dirs()["metrics"].glob("[!.]*"))
    return bool(_component(component).get("records_in"))


def crash_mid_run(component: str, log: list[str], timeout_s: float = 300) -> None:
    """Once `component` has done some work, SIGKILL it and start it again (it must recover alone)."""
    deadline = time.monotonic() + timeout_s
    while not _has_made_progress(component):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{component} made no progress in {timeout_s:.0f} s")
        time.sleep(0.1)
    old, new = stack.kill_and_restart(component)
    log.append(f"killed {component} (PID {old}) mid-run with SIGKILL, restarted as PID {new}")


def produce(
    the_stage: Stage, endpoint: str, config: WorkloadConfig, rate: float | None, produced: dict[str, Any]
) -> tuple[Manifest, RunSummary]:
    writer = KinesisWriter(client("kinesis", endpoint), the_stage.stream("events-raw"), aggregate=True)

    def progress(n: int, result: Any) -> None:
        produced["offered"] = produced.get("offered", 0) + n
        produced["sent"] = produced.get("sent", 0) + result.sent

    return run(Workload(config), writer, rate=rate, on_progress=progress)


def run_demo(
    the_stage: Stage,
    config: WorkloadConfig,
    rate: float | None = None,
    target: stack.Target = "moto",
    port: int = 4566,
    keep_up: bool = False,
    console: Console | None = None,
    restart: str | None = None,
) -> Reconciliation:
    console = console or Console()
    started = time.monotonic()
    # A SIGTERM (CI timeout, Ctrl-C in another terminal) must still run the `down` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with console.status(f"starting the local stack on {target} ..."):
        state = stack.up(the_stage, target, port)
    console.print(
        f"[green]up[/] in {time.monotonic() - started:.1f} s: {state['endpoint_url']}, state in {state_dir()}"
    )
    try:
        produced: dict[str, Any] = {}
        result: dict[str, Any] = {}
        producer = threading.Thread(
            target=lambda: result.update(
                zip(
                    ("manifest", "summary"),
                    produce(the_stage, state["endpoint_url"], config, rate, produced),
                    strict=True,
                )
            ),
            daemon=True,
        )
        crashes: list[str] = []
        crash = (
            threading.Thread(target=crash_mid_run, args=(restart, crashes), daemon=True) if restart else None
        )
        with Live(dashboard(produced), console=console, refresh_per_second=2) as live:
            producer.start()
            if crash:
                crash.start()
            while producer.is_alive():
                live.update(Group(dashboard(produced), "producing ..."))
                producer.join(0.5)
            if "manifest" not in result:
                raise RuntimeError("the producer failed; see the traceback above")
            if crash:
                crash.join(300)
                if not crashes:
                    raise RuntimeError(f"could not crash and restart {restart}")
            manifest: Manifest = result["manifest"]
            manifest.write(state_dir() / "manifest.json")
            upstream = ("enricher", "raw-archiver", "lake-writer-events", "flink-bridge")
            wait_until(
                live,
                produced,
                lambda: _caught_up(upstream),
                "enricher, archive, lake writer and Flink bridge to catch up",
                600,
            )
            must_fire = windows_fired_before_drain(manifest, spooled_max_event_time())
            job_pid = (stack.load_state() or state)["components"]["flink-job"]
            settle_s = 3 * the_stage.flink.checkpoint_interval_s
            wait_until(
                live,
                produced,
                lambda: must_fire <= fired_windows() and job_settled(job_pid, settle_s),
                "the Flink job to read every spooled event",
                600,
            )
            live.update(Group(dashboard(produced), "draining the Flink job (final watermark) ..."))
            drain_flink(job_pid)
            wait_until(
                live,
                produced,
                lambda: _caught_up(("flink-bridge", "lake-writer-metrics")),
                "the last metric rows to reach the lake",
                300,
            )
            live.update(dashboard(produced))
        for line in crashes:
            console.print(line)
        summary: RunSummary = result["summary"]
        console.print(
            f"produced {summary.offered} records ({summary.sent} accepted, {summary.retried} retried, "
            f"{summary.failed} failed) in {summary.elapsed_s:.1f} s"
        )
        warehouse = LocalWarehouse(s3_lake(endpoint_url=state["endpoint_url"]), snapshot=True)
        dlq = count_by_reason(client("sqs", state["endpoint_url"]), state["resources"]["dlq_url"])
        report = reconcile(manifest, warehouse, dlq, late_event_ids(flink_dirs()["late"]))
        print_report(console, report)
        for title, sql in SAMPLE_QUERIES.items():
            result_set = warehouse.query(sql)
            table = Table(*result_set.columns, title=f"{title}: {sql}")
            for row in result_set.rows:
                table.add_row(*(str(v) for v in row))
            console.print(table)
        console.print(f"demo finished in {time.monotonic() - started:.1f} s")
        return report
    finally:
        if not keep_up:
            for stopped in stack.down():
                console.print(f"stopped {stopped}")


def print_report(console: Console, report: Reconciliation) -> None:
    table = Table("check", "expected", "actual", "result", title="reconciliation: ground truth vs warehouse")
    for check in report.checks:
        table.add_row(
            check.name,
            str(check.expected),
            str(check.actual),
            "[green]exact[/]" if check.ok else "[red]DIFFERS[/]",
        )
    console.print(table)
    for check in report.checks:
        for difference in check.differences[:10]:
            console.print(f"[red]{check.name}[/]: {difference}")
