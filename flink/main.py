"""Entry point of the analytics job, on Managed Flink (`python` run option) and locally.

    .venv-flink/bin/python flink/main.py --properties flink/application_properties.local.json

Without `--properties` the job reads `/etc/flink/application_properties.json` (Managed Flink) and
returns once the job is submitted, as a Managed Flink main must. Locally it waits for the job: a
`batch` run returns when its bounded input is processed, a `streaming` run until stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# `pipeline.config` (stage settings from cdk.json) sits beside main.py in the application zip and one
# level up in the repository.
sys.path.append(str(HERE if (HERE / "pipeline").is_dir() else HERE.parent))

import analytics_job  # noqa: E402 - needs the path above, both in the zip and in the repo
from job_settings import load_settings  # noqa: E402

STATUS_FILE_ENV = "PIPELINE_FLINK_STATUS_FILE"  # set by the local stack (pipeline/local/components.py)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--properties", type=Path, help="application properties JSON (default: Managed Flink's)"
    )
    args = parser.parse_args(argv)
    # Installed first: a drain asked for while the job is still starting waits for it, not kills it.
    drain = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: drain.set())
    settings = load_settings(args.properties)
    client = analytics_job.start(settings)
    if args.properties is not None:
        publish_running(os.environ.get(STATUS_FILE_ENV))
        wait_or_drain(client, settings.checkpoint_dir, drain)
    return 0


def publish_running(status_file: str | None) -> None:
    """Tells the local stack this process's job is running and since when (it times drains by it)."""
    if status_file:
        path = Path(status_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        running = {"component": "flink-job", "extra": {"running": True, "pid": os.getpid()}}
        tmp.write_text(json.dumps({**running, "updated_at": int(time.time() * 1000)}))
        os.replace(tmp, path)


def wait_or_drain(client: Any, checkpoint_dir: str | None, drain: threading.Event) -> None:
    """Waits for the local job; SIGUSR1 stops it with drain, like `stop --drain` on a cluster: the
    sources stop, a final watermark fires every open window, the sinks commit, then the job ends."""
    result = client.get_job_execution_result()
    while not result.done():
        if drain.wait(0.5):
            savepoints = f"file://{Path(checkpoint_dir or '.state/flink').resolve()}/savepoints"
            client.stop_with_savepoint(True, savepoints).result()
            break
    result.result()


if __name__ == "__main__":
    sys.exit(main())
