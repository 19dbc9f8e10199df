"""Test double for the mapping process: the real enricher handler, frozen after its Nth invocation.

After invocation N has delivered its events and bad rows (but before the mapping can checkpoint it), it
writes what that batch held to $KILL_READY_FILE and sleeps forever, so the test can kill the process by
PID at a known point: exactly one delivered batch is not checkpointed.
"""

import json
import os
import time
from pathlib import Path
from typing import Any

from pipeline.local.event_source_mapping import load_handler
from pipeline.produce.kpl import deaggregate

_real = load_handler(
    str(Path(__file__).resolve().parents[2] / "lambdas" / "enricher" / "handler.py") + ":handler"
)
_calls = 0


def handler(event: dict[str, Any], context: Any) -> Any:
    global _calls
    response = _real(event, context)
    _calls += 1
    if _calls == int(os.environ["KILL_AFTER_INVOCATIONS"]):
        ready = Path(os.environ["KILL_READY_FILE"])
        document = {
            "kinesis_records": len(event["Records"]),
            "user_records": len(deaggregate(event["Records"])),
            "failures": response["batchItemFailures"],
        }
        ready.with_suffix(".tmp").write_text(json.dumps(document))
        ready.with_suffix(".tmp").rename(ready)
        while True:
            time.sleep(1)
    return response
