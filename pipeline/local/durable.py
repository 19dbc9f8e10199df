"""Small state files that must survive a kill -9 right after they are written (checkpoints, bridge
state, status): fsync, then an atomic rename, so a reader sees the old document or the new one."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


def save_json_atomically(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as f:
        json.dump(document, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_json(path: Path, default: dict[str, Any]) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default
    return document if isinstance(document, dict) else default
