"""Local stand-in for the Managed Flink Kinesis connector: two bridges between the emulator and files.

- `SpoolBridge`: `events-enriched` shards (GetRecords, KPL aggregates unpacked) -> immutable spool
  files (newline-delimited JSON) that the local Flink job's file source picks up.
- `MetricsBridge`: the job's committed metric part files -> the emulator's `metrics` stream.

Both are exactly-once across restarts, each by one rule:

- Spool: the bridge state file (shard positions + the number of the next spool file) is the commit
  point. A batch is written to a hidden temp file first, the state naming it is saved (fsync, atomic
  rename), and only then the temp file is renamed into view. A restart finishes a committed rename
  and deletes uncommitted temps, so a spool file exists exactly when its shard positions were saved.
- Metrics: Flink's FileSink exposes a part file only after the checkpoint covering it completed, and
  it never changes afterwards; the bridge keeps lines-sent per file. Every row is put with the
  partition key `<file>#<line>`; before a put the bridge records the pending line range, and a restart
  that finds one reads the stream and re-sends only the rows whose keys are not there yet.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from pipeline.local.durable import load_json, save_json_atomically
from pipeline.produce.kinesis import KinesisWriter, read_stream
from pipeline.produce.kpl import DeaggregationError, deaggregate

SPOOL_PREFIX = "spool-"


@dataclass
class BridgeStats:
    records: int = 0  # Kinesis records read / rows put
    lines: int = 0  # lines written / files finished
    rejected: int = 0  # lines that are not an enriched event (kept in rejected.jsonl)
    files: list[str] = field(default_factory=list)


def taken_by_job(path: Path) -> bool:
    """True once the job opened `path`: a read moves the access time past the write time (Linux
    `relatime`, the default mount option, updates atime on the first read after a write)."""
    st = path.stat()
    return st.st_atime_ns > st.st_mtime_ns


def access_times_work(directory: Path) -> bool:
    """Whether reads update access times here (not on `noatime` mounts)."""
    probe = directory / ".atime-probe"
    probe.write_bytes(b"probe")
    os.utime(probe, ns=(1, probe.stat().st_mtime_ns))  # atime far before mtime
    probe.read_bytes()
    works = taken_by_job(probe)
    probe.unlink()
    return works


def _spool_line(data: bytes) -> bytes | None:
    """The record as one spool line, or None when it is not a JSON object with event_id and event_time."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if (
        not isinstance(document, dict)
        or not document.get("event_id")
        or not isinstance(document.get("event_time"), int)
    ):
        return None
    return json.dumps(document, separators=(",", ":")).encode()


class SpoolBridge:
    def __init__(
        self, client: Any, stream: str, spool_dir: Path, state_dir: Path, limit: int = 10_000
    ) -> None:
        self.client = client
        self.stream = stream
        self.spool_dir = spool_dir
        self.state_path = state_dir / "spool_bridge.json"
        self.rejected_path = state_dir / "rejected.jsonl"
        self.limit = limit
        spool_dir.mkdir(parents=True, exist_ok=True)
        self.state = load_json(self.state_path, {"shards": {}, "next_file": 0, "pending": None})
        self._recover()
        published = sorted(spool_dir.glob(f"{SPOOL_PREFIX}*"))
        self.newest: Path | None = published[-1] if published else None

    def _name(self, number: int) -> str:
        return f"{SPOOL_PREFIX}{number:09d}.jsonl"

    def _recover(self) -> None:
        pending = self.state.get("pending")
        if pending:
            tmp = self.spool_dir / f".{pending}"
            if tmp.exists():
                os.replace(tmp, self.spool_dir / pending)
        for leftover in self.spool_dir.glob(f".{SPOOL_PREFIX}*"):
            leftover.unlink()  # written by an attempt whose state was never saved: not committed

    def _iterator(self, shard_id: str) -> str:
        after = self.state["shards"].get(shard_id)
        kwargs: dict[str, Any] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
            if after
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        return str(
            self.client.get_shard_iterator(StreamName=self.stream, ShardId=shard_id, **kwargs)[
                "ShardIterator"
            ]
        )

    def poll_once(self) -> BridgeStats:
        """One GetRecords per shard; what came in becomes one spool file. Returns what was moved."""
        stats = BridgeStats()
        positions = dict(self.state["shards"])
        lines: list[bytes] = []
        rejected: list[dict[str, Any]] = []
        for shard in sorted(
            self.client.list_shards(StreamName=self.stream)["Shards"], key=lambda s: s["ShardId"]
        ):
            shard_id = shard["ShardId"]
            response = self.client.get_records(ShardIterator=self._iterator(shard_id), Limit=self.limit)
            records = response["Records"]
            if not records:
                continue
            stats.records += len(records)
            try:
                user_records = deaggregate(records, data_format="Boto3")
            except DeaggregationError as exc:
                rejected.append({"reason": "deaggregation", "detail": str(exc), "shard_id": shard_id})
                user_records = []
            for user in user_records:
                line = _spool_line(user.data)
                if line is None:
                    rejected.append(
                        {
                            "reason": "not_an_enriched_event",
                            "shard_id": shard_id,
                            "sequence_number": user.sequence_number,
                            "data": user.data.decode(errors="replace"),
                        }
                    )
                else:
                    lines.append(line)
            positions[shard_id] = records[-1]["SequenceNumber"]
        if positions == self.state["shards"]:
            return stats
        if rejected:
            # Before the commit point: a crash repeats these lines, it never loses one.
            self.rejected_path.parent.mkdir(parents=True, exist_ok=True)
            with self.rejected_path.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in rejected)
            stats.rejected = len(rejected)
        number = int(self.state["next_file"])
        name = self._name(number)
        if lines:
            tmp = self.spool_dir / f".{name}"
            with open(tmp, "wb") as f:
                f.write(b"\n".join(lines) + b"\n")
                f.flush()
                os.fsync(f.fileno())
        committed = {
            "shards": positions,
            "next_file": number + 1 if lines else number,
            "pending": name if lines else None,
        }
        save_json_atomically(self.state_path, committed)
        self.state = committed
        if lines:
            os.replace(self.spool_dir / f".{name}", self.spool_dir / name)
            stats.files.append(name)
            self.newest = self.spool_dir / name
        stats.lines = len(lines)
        return stats


class MetricsBridge:
    def __init__(
        self, client: Any, stream: str, metrics_dir: Path, state_dir: Path, batch_rows: int = 500
    ) -> None:
        self.client = client
        self.stream = stream
        self.metrics_dir = metrics_dir
        self.state_path = state_dir / "metrics_bridge.json"
        self.batch_rows = batch_rows
        self.writer = KinesisWriter(
            client, stream, aggregate=False
        )  # Redshift streaming ingestion reads plain records
        self.state = load_json(self.state_path, {"files": {}, "pending": None})

    def _save(self) -> None:
        save_json_atomically(self.state_path, self.state)

    def _committed_files(self) -> list[Path]:
        if not self.metrics_dir.exists():
            return []
        files = [p for p in self.metrics_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
        return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def _put(self, name: str, rows: list[tuple[int, bytes]]) -> None:
        result = self.writer.put([(f"{name}#{line}", data) for line, data in rows])
        if result.failed:
            raise RuntimeError(f"putting metric rows of {name} to {self.stream} failed: {result.errors}")

    def _finish_pending(self) -> int:
        pending = self.state.get("pending")
        if not pending:
            return 0
        name, start, end = pending["file"], int(pending["start"]), int(pending["end"])
        present = {r.partition_key for r in read_stream(self.client, self.stream)}
        lines = (self.metrics_dir / name).read_bytes().splitlines()
        missing = [(i, lines[i]) for i in range(start, end) if f"{name}#{i}" not in present]
        if missing:
            self._put(name, missing)
        self.state["files"][name] = end
        self.state["pending"] = None
        self._save()
        return len(missing)

    def poll_once(self) -> BridgeStats:
        stats = BridgeStats(records=self._finish_pending())
        for path in self._committed_files():
            lines = [line for line in path.read_bytes().splitlines()]
            done = int(self.state["files"].get(path.name, 0))
            while done < len(lines):
                end = min(done + self.batch_rows, len(lines))
                self.state["pending"] = {"file": path.name, "start": done, "end": end}
                self._save()
                self._put(path.name, [(i, lines[i]) for i in range(done, end)])
                self.state["files"][path.name] = end
                self.state["pending"] = None
                self._save()
                stats.records += end - done
                done = end
                stats.lines += 1 if done == len(lines) else 0
        return stats


def run_bridges(
    client: Any,
    enriched_stream: str,
    metrics_stream: str,
    spool_dir: Path,
    metrics_dir: Path,
    state_dir: Path,
    interval_s: float = 1.0,
    duration_s: float | None = None,
) -> None:
    """Both bridges in one loop until `duration_s` passes (forever when None)."""
    spool = SpoolBridge(client, enriched_stream, spool_dir, state_dir)
    metrics = MetricsBridge(client, metrics_stream, metrics_dir, state_dir)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    while deadline is None or time.monotonic() < deadline:
        try:
            spool.poll_once()
            metrics.poll_once()
        except ClientError as exc:  # the emulator restarting: try again next round
            if exc.response.get("Error", {}).get("Code") not in (
                "ResourceNotFoundException",
                "ProvisionedThroughputExceededException",
            ):
                raise
        time.sleep(interval_s)
