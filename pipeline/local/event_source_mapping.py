"""Local stand-in for the Lambda Kinesis event source mapping: polls each shard and calls a handler in process.

No emulator runs Lambda code without Docker, so this mirrors the documented AWS semantics around the
very same handler function: batch size, batching window, starting position (TRIM_HORIZON, LATEST,
AT_TIMESTAMP), parallelization factor (concurrent batches per shard, in order per partition key),
retries, bisect on function error, maximum record age, ReportBatchItemFailures (resume from the lowest
failed sequence number), the on-failure destination record (the exact JSON Lambda sends to SQS) and a
per-shard checkpoint, persisted as one JSON file per shard, so a restarted poller resumes after the last
completed batch: at most the batch in flight when it died is processed again, nothing is skipped.

Differences from AWS, on purpose: invocations are serialised through one in-process "execution
environment" (a Lambda environment also runs one invocation at a time, and handler modules keep
per-environment state such as the Powertools processor); function timeouts are not enforced; shards
are listed once at start (no resharding).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib
import importlib.util
import json
import logging
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from pipeline.aws import client
from pipeline.config import EventSourceMapping
from pipeline.local.durable import save_json_atomically

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
# Lambda's synchronous invocation payload limit.
MAX_PAYLOAD_BYTES = 6_291_456
_RECORD_ENVELOPE_BYTES = 600  # JSON around `data` in one event record (ids, ARNs, timestamps)
_GET_RECORDS_LIMIT = 10_000


@dataclass
class LambdaContextStandIn:
    """What the Lambda runtime passes as `context` (the attributes Powertools reads)."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    timeout_s: float = 300.0
    log_group_name: str = ""
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


@dataclass(frozen=True)
class StreamRecord:
    """One Kinesis record as GetRecords returned it."""

    sequence_number: str
    partition_key: str
    data: bytes
    arrival: float  # approximate arrival, epoch seconds

    @property
    def payload_estimate(self) -> int:
        return (len(self.data) + 2) // 3 * 4 + _RECORD_ENVELOPE_BYTES


@dataclass(frozen=True)
class MappingIdentity:
    """The ARNs the event and the on-failure record carry."""

    function_name: str
    region: str
    account_id: str
    stream_arn: str

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.function_name}-role"


def lambda_event(records: list[StreamRecord], shard_id: str, identity: MappingIdentity) -> dict[str, Any]:
    """The exact event Lambda passes to a Kinesis-triggered function."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64.b64encode(r.data).decode("ascii"),
                    "approximateArrivalTimestamp": r.arrival,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{r.sequence_number}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": identity.role_arn,
                "awsRegion": identity.region,
                "eventSourceARN": identity.stream_arn,
            }
            for r in records
        ]
    }


def _iso_millis(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def on_failure_record(
    records: list[StreamRecord],
    shard_id: str,
    identity: MappingIdentity,
    condition: str,
    invoke_count: int,
    function_error: str | None,
) -> dict[str, Any]:
    """The document Lambda sends to an on-failure destination for discarded Kinesis records.

    `condition` is RetryAttemptsExhausted or RecordAgeExceeded. `responseContext` is present only when
    the function was invoked; `functionError` only when the last invocation raised ("Unhandled").
    """
    document: dict[str, Any] = {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": identity.function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        }
    }
    if invoke_count:
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if function_error:
            response["functionError"] = function_error
        document["responseContext"] = response
    document["version"] = "1.0"
    document["timestamp"] = _iso_millis(time.time())
    document["KinesisBatchInfo"] = {
        "shardId": shard_id,
        "startSequenceNumber": records[0].sequence_number,
        "endSequenceNumber": records[-1].sequence_number,
        "approximateArrivalOfFirstRecord": _iso_millis(records[0].arrival),
        "approximateArrivalOfLastRecord": _iso_millis(records[-1].arrival),
        "batchSize": len(records),
        "streamArn": identity.stream_arn,
    }
    return document


class ShardCheckpoints:
    """One JSON file per (stream, shard): the last sequence number whose batch completed, or where a
    LATEST / AT_TIMESTAMP mapping started before anything completed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, stream: str, shard_id: str) -> Path:
        return self.directory / stream / f"{shard_id}.json"

    def load(self, stream: str, shard_id: str) -> dict[str, Any] | None:
        try:
            document = json.loads(self.path(stream, shard_id).read_text())
        except FileNotFoundError:
            return None
        return document if isinstance(document, dict) else None

    def save(self, stream: str, shard_id: str, document: dict[str, Any]) -> None:
        # Durable: a checkpoint lost to a kill -9 right after a batch would replay or skip batches.
        save_json_atomically(
            self.path(stream, shard_id),
            {**document, "stream": stream, "shard_id": shard_id, "updated_at": time.time()},
        )


@dataclass
class ShardStats:
    records_read: int = 0
    invocations: int = 0
    records_succeeded: int = 0
    records_discarded: int = 0
    batch_item_failures: int = 0
    function_errors: int = 0
    checkpoint: str | None = None
    caught_up: bool = False
    finished: bool = False
    crashed: bool = False
    last_error: str | None = None


def is_transient(exc: ClientError) -> bool:
    """A server-side failure worth retrying (HTTP 5xx, InternalFailure, ServiceUnavailable); moto also
    answers 500 when a read races a write on the same shard."""
    error = exc.response.get("Error", {})
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return status >= 500 or error.get("Code") in ("InternalFailure", "ServiceUnavailable", "500")


class PollerFailed(RuntimeError):
    """A shard poller stopped on an unexpected error (the mapping would otherwise stall that shard)."""


class _Batch:
    """Records on their way through retries and bisection; counts survive splitting."""

    def __init__(self, records: list[StreamRecord], retries: int = 0, invokes: int = 0) -> None:
        self.records = records
        self.retries = retries
        self.invokes = invokes


class KinesisEventSourceMapping:
    """Polls every shard of `stream_name` (one thread each) and invokes `handler` like Lambda would."""

    def __init__(
        self,
        handler: Handler,
        stream_name: str,
        settings: EventSourceMapping,
        checkpoint_dir: Path,
        function_name: str,
        on_failure_queue_url: str | None = None,
        starting_position_timestamp: float | None = None,
        poll_interval_s: float = 0.2,
        retry_backoff_s: float = 0.05,
        endpoint_url: str | None = None,
        on_batch: Callable[[str, list[StreamRecord], ShardStats], None] | None = None,
    ) -> None:
        if settings.starting_position == "AT_TIMESTAMP" and starting_position_timestamp is None:
            raise ValueError("AT_TIMESTAMP needs starting_position_timestamp")
        self.handler = handler
        self.stream_name = stream_name
        self.settings = settings
        self.checkpoints = ShardCheckpoints(checkpoint_dir)
        self.on_failure_queue_url = on_failure_queue_url
        self.starting_position_timestamp = starting_position_timestamp
        self.poll_interval_s = poll_interval_s
        self.retry_backoff_s = retry_backoff_s
        self.on_batch = on_batch
        self.kinesis = client("kinesis", endpoint_url)
        self.sqs = client("sqs", endpoint_url) if on_failure_queue_url else None
        summary = self.kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]
        stream_arn = summary["StreamARN"]
        self.identity = MappingIdentity(
            function_name, self.kinesis.meta.region_name, stream_arn.split(":")[4], stream_arn
        )
        self.stop_event = threading.Event()
        self.stats: dict[str, ShardStats] = {}
        self._invoke_lock = threading.Lock()  # one execution environment: one invocation at a time
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def shard_ids(self) -> list[str]:
        shards: list[str] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream_name}
        while True:
            page = self.kinesis.list_shards(**kwargs)
            shards += [s["ShardId"] for s in page["Shards"]]
            if not page.get("NextToken"):
                return shards
            kwargs = {"NextToken": page["NextToken"]}

    def start(self) -> None:
        for shard_id in self.shard_ids():
            self.stats[shard_id] = ShardStats(checkpoint=self._checkpoint_sequence(shard_id))
            thread = threading.Thread(
                target=self._poll_shard, args=(shard_id,), name=f"esm-{shard_id}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the batch in flight, checkpoint it, and stop reading."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout_s)

    def run(self) -> None:
        """Blocking: until `stop_event` is set. Raises `PollerFailed` when a shard poller died, so a
        supervising process sees the mapping exit instead of idling with a shard unread."""
        self.start()
        while not self.stop_event.wait(0.5):
            dead = [s for s in self.stats.values() if s.crashed]
            if dead:
                self.stop()
                raise PollerFailed("; ".join(str(s.last_error) for s in dead))
        self.stop()

    def caught_up(self) -> bool:
        return bool(self.stats) and all(s.caught_up or s.finished for s in self.stats.values())

    def wait_caught_up(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.caught_up():
            errors = [s.last_error for s in self.stats.values() if s.last_error]
            if any(s.crashed for s in self.stats.values()):
                raise PollerFailed(f"mapping on {self.stream_name}: {errors}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"mapping on {self.stream_name} not caught up after {timeout_s}s: {errors}"
                )
            time.sleep(0.05)

    # -- reading -------------------------------------------------------------------------------

    def _checkpoint_sequence(self, shard_id: str) -> str | None:
        document = self.checkpoints.load(self.stream_name, shard_id)
        return document.get("sequence_number") if document else None

    def _iterator(self, shard_id: str, after: str | None) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream_name, "ShardId": shard_id}
        document = self.checkpoints.load(self.stream_name, shard_id) or {}
        if after:
            kwargs |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
        elif document.get("sequence_number"):
            kwargs |= {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": document["sequence_number"],
            }
        elif document.get("started_at") is not None:
            kwargs |= {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": document["started_at"]}
        elif self.settings.starting_position == "TRIM_HORIZON":
            kwargs |= {"ShardIteratorType": "TRIM_HORIZON"}
        else:
            # LATEST and AT_TIMESTAMP: remember where we started, so a restart before the first
            # completed batch neither skips records put meanwhile nor jumps to the new LATEST.
            started_at = (
                self.starting_position_timestamp
                if self.settings.starting_position == "AT_TIMESTAMP"
                else time.time()
            )
            self.checkpoints.save(
                self.stream_name, shard_id, {"sequence_number": None, "started_at": started_at}
            )
            kwargs |= {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": started_at}
        return str(self.kinesis.get_shard_iterator(**kwargs)["ShardIterator"])

    def _poll_shard(self, shard_id: str) -> None:
        stats = self.stats[shard_id]
        try:
            self._poll(shard_id, stats)
        except Exception as exc:  # surface in stats; a dead poller must be visible, not silent
            stats.last_error = f"{type(exc).__name__}: {exc}"
            stats.crashed = True
            log.exception("poller for %s/%s failed", self.stream_name, shard_id)

    def _poll(self, shard_id: str, stats: ShardStats) -> None:
        iterator: str | None = self._iterator(shard_id, None)
        buffer: deque[StreamRecord] = deque()
        last_read: str | None = None
        window_started: float | None = None
        round_size = self.settings.batch_size * self.settings.parallelization_factor
        while not self.stop_event.is_set():
            got_records = False
            behind = 0
            if iterator is not None and len(buffer) < round_size:
                try:
                    page = self.kinesis.get_records(
                        ShardIterator=iterator,
                        Limit=min(_GET_RECORDS_LIMIT, max(round_size - len(buffer), 1)),
                    )
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code == "ExpiredIteratorException":
                        iterator = self._iterator(shard_id, last_read)
                        continue
                    if code in ("ProvisionedThroughputExceededException", "LimitExceededException"):
                        self.stop_event.wait(self.poll_interval_s)
                        continue
                    if is_transient(exc):  # the service's own 5xx: Lambda's poller retries too
                        log.warning(
                            "GetRecords on %s/%s failed, retrying: %s", self.stream_name, shard_id, exc
                        )
                        self.stop_event.wait(self.poll_interval_s)
                        continue
                    raise
                iterator = page.get("NextShardIterator")
                behind = int(page.get("MillisBehindLatest", 0))
                for r in page["Records"]:
                    buffer.append(
                        StreamRecord(
                            r["SequenceNumber"],
                            r["PartitionKey"],
                            bytes(r["Data"]),
                            r["ApproximateArrivalTimestamp"].timestamp(),
                        )
                    )
                    last_read = r["SequenceNumber"]
                got_records = bool(page["Records"])
                stats.records_read += len(page["Records"])
            if buffer and window_started is None:
                window_started = time.monotonic()
            window_over = (
                window_started is not None
                and time.monotonic() - window_started >= self.settings.max_batching_window_s
            )
            full = len(buffer) >= round_size or sum(r.payload_estimate for r in buffer) >= MAX_PAYLOAD_BYTES
            if buffer and (full or window_over or iterator is None or (not got_records and window_over)):
                self._run_round(shard_id, _take_round(buffer, round_size), stats)
                window_started = time.monotonic() if buffer else None
                continue
            if iterator is None and not buffer:
                stats.finished = True  # closed shard, fully processed
                return
            stats.caught_up = not buffer and not got_records and behind == 0
            if not got_records:
                wait = self.poll_interval_s
                if window_started is not None:
                    wait = min(
                        wait,
                        max(0.0, self.settings.max_batching_window_s - (time.monotonic() - window_started)),
                    )
                self.stop_event.wait(wait)

    # -- invoking ------------------------------------------------------------------------------

    def _run_round(self, shard_id: str, records: list[StreamRecord], stats: ShardStats) -> None:
        """Up to `parallelization_factor` batches at once, records of one partition key in one lane (in
        order); the shard checkpoint moves past the round only when every lane completed."""
        stats.caught_up = False
        factor = self.settings.parallelization_factor
        lanes: list[list[StreamRecord]] = [[] for _ in range(factor)]
        for r in records:
            lanes[_lane(r.partition_key, factor)].append(r)
        batches = [
            lane[i : i + self.settings.batch_size]
            for lane in lanes
            if lane
            for i in range(0, len(lane), self.settings.batch_size)
        ]
        by_lane = [
            [b for b in batches if b and _lane(b[0].partition_key, factor) == n] for n in range(factor)
        ]
        if factor == 1:
            completed = self._run_lane(shard_id, by_lane[0], stats)
        else:
            with ThreadPoolExecutor(max_workers=factor, thread_name_prefix=f"esm-{shard_id}-lane") as pool:
                completed = all(pool.map(lambda lane: self._run_lane(shard_id, lane, stats), by_lane))
        if not completed:  # stopped mid-round: leave the checkpoint where it was, replay on restart
            return
        stats.checkpoint = records[-1].sequence_number
        self.checkpoints.save(self.stream_name, shard_id, {"sequence_number": stats.checkpoint})
        if self.on_batch:
            self.on_batch(shard_id, records, stats)

    def _run_lane(self, shard_id: str, batches: list[list[StreamRecord]], stats: ShardStats) -> bool:
        return all(self._process_batch(shard_id, records, stats) for records in batches)

    def _process_batch(self, shard_id: str, records: list[StreamRecord], stats: ShardStats) -> bool:
        """Invoke until every record succeeded or was discarded; False if stopped before that."""
        settings = self.settings
        work: deque[_Batch] = deque([_Batch(records)])
        while work:
            batch = work.popleft()
            if settings.max_record_age_s >= 0:
                oldest_allowed = time.time() - settings.max_record_age_s
                expired = [r for r in batch.records if r.arrival < oldest_allowed]
                if expired:
                    self._discard(shard_id, expired, "RecordAgeExceeded", batch.invokes, None, stats)
                    batch.records = [r for r in batch.records if r.arrival >= oldest_allowed]
                    if not batch.records:
                        continue
            if batch.retries and self.stop_event.wait(min(2.0, self.retry_backoff_s * 2**batch.retries)):
                return False
            batch.invokes += 1
            failed_from, function_error = self._invoke(shard_id, batch.records, stats)
            if failed_from is None:
                stats.records_succeeded += len(batch.records)
                continue
            if function_error and settings.bisect_on_error and len(batch.records) > 1:
                # Splitting does not use up the retry quota (AWS docs).
                half = len(batch.records) // 2
                work.extendleft(
                    [
                        _Batch(batch.records[half:], batch.retries, batch.invokes),
                        _Batch(batch.records[:half], batch.retries, batch.invokes),
                    ]
                )
                continue
            stats.records_succeeded += failed_from
            remainder = batch.records[failed_from:]
            if 0 <= settings.retry_attempts <= batch.retries:
                self._discard(
                    shard_id, remainder, "RetryAttemptsExhausted", batch.invokes, function_error, stats
                )
                continue
            work.appendleft(_Batch(remainder, batch.retries + 1, batch.invokes))
            if self.stop_event.is_set():
                return False
        return True

    def _invoke(
        self, shard_id: str, records: list[StreamRecord], stats: ShardStats
    ) -> tuple[int | None, str | None]:
        """(index of the first record to retry or None when all succeeded, "Unhandled" on a raise)."""
        event = lambda_event(records, shard_id, self.identity)
        context = LambdaContextStandIn(self.identity.function_name, self.identity.function_arn)
        with self._invoke_lock:
            stats.invocations += 1
            try:
                response = self.handler(event, context)
            except Exception as exc:
                stats.function_errors += 1
                stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("function error on %s (%d records): %s", shard_id, len(records), exc)
                return 0, "Unhandled"
        if not self.settings.report_batch_item_failures:
            return None, None
        failed_from = _lowest_failure(response, records)
        if failed_from is not None:
            stats.batch_item_failures += 1
        return failed_from, None

    def _discard(
        self,
        shard_id: str,
        records: list[StreamRecord],
        condition: str,
        invokes: int,
        function_error: str | None,
        stats: ShardStats,
    ) -> None:
        stats.records_discarded += len(records)
        document = on_failure_record(records, shard_id, self.identity, condition, invokes, function_error)
        log.warning("discarding %d records of %s: %s", len(records), shard_id, condition)
        if self.sqs is not None and self.on_failure_queue_url:
            self.sqs.send_message(QueueUrl=self.on_failure_queue_url, MessageBody=json.dumps(document))


def _lowest_failure(response: Any, records: list[StreamRecord]) -> int | None:
    """Index of the lowest reported failure; a malformed report fails the whole batch (as in AWS)."""
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return None
    positions = {r.sequence_number: i for i, r in enumerate(records)}
    lowest = len(records)
    for item in response["batchItemFailures"]:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in positions:
            return 0
        lowest = min(lowest, positions[identifier])
    return lowest


def _lane(partition_key: str, factor: int) -> int:
    if factor == 1:
        return 0
    return int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big") % factor


def _take_round(buffer: deque[StreamRecord], round_size: int) -> list[StreamRecord]:
    taken: list[StreamRecord] = []
    size = 0
    while buffer and len(taken) < round_size:
        if taken and size + buffer[0].payload_estimate > MAX_PAYLOAD_BYTES:
            break
        record = buffer.popleft()
        size += record.payload_estimate
        taken.append(record)
    return taken


def load_handler(spec: str) -> Handler:
    """`package.module:function` or `path/to/file.py:function` (Lambda code folders are not packages)."""
    target, _, name = spec.rpartition(":")
    if not target or not name:
        raise ValueError(f"handler spec {spec!r} must look like module:function or file.py:function")
    if target.endswith(".py"):
        path = Path(target).resolve()
        module_name = "lambda_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module  # as an import would: tools and tests can find the module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    handler = getattr(module, name)
    if not callable(handler):
        raise TypeError(f"{spec} is not callable")
    return handler


def run_mapping(
    handler_spec: str,
    stream_name: str,
    settings: EventSourceMapping,
    checkpoint_dir: Path,
    function_name: str,
    on_failure_queue_url: str | None = None,
    stop: threading.Event | None = None,
    poll_interval_s: float = 0.2,
) -> KinesisEventSourceMapping:
    """Blocking entry point for a process (`pipeline mapping run`): returns after `stop` is set or SIGTERM."""
    import signal

    mapping = KinesisEventSourceMapping(
        load_handler(handler_spec),
        stream_name,
        settings,
        checkpoint_dir,
        function_name,
        on_failure_queue_url=on_failure_queue_url,
        poll_interval_s=poll_interval_s,
    )
    if stop is not None:
        mapping.stop_event = stop
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, lambda *_: mapping.stop_event.set())
            signal.signal(signal.SIGINT, lambda *_: mapping.stop_event.set())
    mapping.run()
    return mapping
