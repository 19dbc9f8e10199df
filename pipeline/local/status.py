"""Per-component status files under the local state folder; `pipeline status` reads them.

Each stand-in process owns one file (`status/<component>.json`) and rewrites it atomically, so
readers never see a torn document and no process needs to serve an API.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import REPO_ROOT
from pipeline.local.durable import save_json_atomically


def state_dir() -> Path:
    return Path(os.environ.get("PIPELINE_STATE_DIR", REPO_ROOT / ".state"))


@dataclass
class ComponentStatus:
    component: str
    records_in: int = 0
    records_out: int = 0
    lag_ms: int | None = None  # milliseconds behind the newest record of its input
    watermark: int | None = None  # event-time watermark (ms), for the Flink job
    late_events: int = 0
    bad_rows: int = 0
    last_error: str | None = None
    updated_at: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class StatusPublisher:
    """Accumulates a component's counters and writes them at most every `interval_s`."""

    def __init__(self, component: str, directory: Path | None = None, interval_s: float = 0.5) -> None:
        self.status = ComponentStatus(component)
        self.path = (directory or state_dir()) / "status" / f"{component}.json"
        self.interval_s = interval_s
        self._last_write = 0.0

    def add(self, records_in: int = 0, records_out: int = 0, late_events: int = 0, bad_rows: int = 0) -> None:
        self.status.records_in += records_in
        self.status.records_out += records_out
        self.status.late_events += late_events
        self.status.bad_rows += bad_rows
        self.flush()

    def set(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self.status, name, value)
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_write >= self.interval_s:
            self.status.updated_at = int(time.time() * 1000)
            save_json_atomically(self.path, asdict(self.status))
            self._last_write = now
