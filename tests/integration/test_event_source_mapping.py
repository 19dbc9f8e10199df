"""The local Kinesis event source mapping against moto: AWS semantics, checked record by record."""

import base64
import dataclasses
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.aws import client
from pipeline.config import EventSourceMapping
from pipeline.local.event_source_mapping import KinesisEventSourceMapping

STREAM = "esm-source"
SETTINGS = EventSourceMapping(
    batch_size=10,
    max_batching_window_s=0,
    starting_position="TRIM_HORIZON",
    parallelization_factor=1,
    retry_attempts=2,
    bisect_on_error=True,
    max_record_age_s=-1,
    report_batch_item_failures=True,
)


class Recorder:
    """A handler that records every invocation; `behaviour(event) -> response` or raises."""

    def __init__(self, behaviour: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.behaviour: Any = behaviour or (lambda event: {"batchItemFailures": []})

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(json.loads(json.dumps(event)))
        self.contexts.append(context)
        return self.behaviour(event)

    def payloads(self) -> list[list[str]]:
        return [[base64.b64decode(r["kinesis"]["data"]).decode() for r in e["Records"]] for e in self.events]

    def delivered(self) -> list[str]:
        return [p for batch in self.payloads() for p in batch]


def _put(kinesis: Any, payloads: list[str], key: str | None = None) -> list[str]:
    sequence_numbers = []
    for p in payloads:  # one by one: moto keeps per-shard order only for a single writer
        out = kinesis.put_record(StreamName=STREAM, Data=p.encode(), PartitionKey=key or p)
        sequence_numbers.append(out["SequenceNumber"])
    return sequence_numbers


@pytest.fixture
def kinesis(moto_endpoint: str) -> Any:
    k = client("kinesis")
    k.create_stream(StreamName=STREAM, ShardCount=1)
    k.get_waiter("stream_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    return k


@pytest.fixture
def failures_queue(moto_endpoint: str) -> str:
    return str(client("sqs").create_queue(QueueName="esm-failures")["QueueUrl"])


def _mapping(
    handler: Any,
    tmp_path: Path,
    settings: EventSourceMapping = SETTINGS,
    queue: str | None = None,
    **kwargs: Any,
) -> KinesisEventSourceMapping:
    return KinesisEventSourceMapping(
        handler,
        STREAM,
        settings,
        tmp_path / "checkpoints",
        "fn",
        on_failure_queue_url=queue,
        poll_interval_s=0.02,
        retry_backoff_s=0.0,
        **kwargs,
    )


def _drain(mapping: KinesisEventSourceMapping) -> None:
    mapping.start()
    try:
        mapping.wait_caught_up(60)
    finally:
        mapping.stop()


def _failure_documents(queue_url: str) -> list[dict[str, Any]]:
    sqs = client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        out += [json.loads(m["Body"]) for m in got]


def test_event_is_the_exact_lambda_kinesis_event_in_batches_in_order(kinesis: Any, tmp_path: Path) -> None:
    payloads = [f"r{i:02}" for i in range(25)]
    sequence_numbers = _put(kinesis, payloads)
    handler = Recorder()
    mapping = _mapping(handler, tmp_path)
    _drain(mapping)

    assert handler.payloads() == [payloads[0:10], payloads[10:20], payloads[20:25]]
    record = handler.events[0]["Records"][0]
    arn = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    assert set(record) == {
        "kinesis",
        "eventSource",
        "eventVersion",
        "eventID",
        "eventName",
        "invokeIdentityArn",
        "awsRegion",
        "eventSourceARN",
    }
    assert set(record["kinesis"]) == {
        "kinesisSchemaVersion",
        "partitionKey",
        "sequenceNumber",
        "data",
        "approximateArrivalTimestamp",
    }
    assert record["kinesis"]["kinesisSchemaVersion"] == "1.0"
    assert record["kinesis"]["partitionKey"] == "r00"
    assert record["kinesis"]["sequenceNumber"] == sequence_numbers[0]
    assert isinstance(record["kinesis"]["approximateArrivalTimestamp"], float)
    assert abs(record["kinesis"]["approximateArrivalTimestamp"] - time.time()) < 600
    assert (record["eventSource"], record["eventVersion"], record["eventName"]) == (
        "aws:kinesis",
        "1.0",
        "aws:kinesis:record",
    )
    assert record["eventID"] == f"shardId-000000000000:{sequence_numbers[0]}"
    assert record["eventSourceARN"] == arn
    assert record["awsRegion"] == "us-east-1"
    assert record["invokeIdentityArn"] == "arn:aws:iam::123456789012:role/fn-role"
    context = handler.contexts[0]
    assert context.function_name == "fn"
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert context.get_remaining_time_in_millis() > 0
    checkpoint = json.loads((tmp_path / "checkpoints" / STREAM / "shardId-000000000000.json").read_text())
    assert checkpoint["sequence_number"] == sequence_numbers[-1]


def test_partial_failure_resumes_from_the_lowest_failed_sequence_number(kinesis: Any, tmp_path: Path) -> None:
    payloads = [f"r{i:02}" for i in range(10)]
    _put(kinesis, payloads)
    calls = {"n": 0}

    def fail_r03_and_r06_once(event: dict[str, Any]) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] > 1:
            return {"batchItemFailures": []}
        failed = [
            r["kinesis"]["sequenceNumber"]
            for r in event["Records"]
            if r["kinesis"]["partitionKey"] in ("r06", "r03")
        ]
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}

    handler = Recorder(fail_r03_and_r06_once)
    _drain(_mapping(handler, tmp_path))
    assert handler.payloads() == [payloads, payloads[3:]]


def test_malformed_failure_report_retries_the_whole_batch(kinesis: Any, tmp_path: Path) -> None:
    payloads = [f"r{i}" for i in range(4)]
    _put(kinesis, payloads)
    responses = iter([{"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}, {"batchItemFailures": []}])
    handler = Recorder(lambda event: next(responses))
    _drain(_mapping(handler, tmp_path))
    assert handler.payloads() == [payloads, payloads]


def test_bisect_isolates_a_poison_record_then_discards_it_with_the_aws_failure_record(
    kinesis: Any, tmp_path: Path, failures_queue: str
) -> None:
    payloads = [f"r{i}" for i in range(8)]
    sequence_numbers = _put(kinesis, payloads)

    def raise_on_poison(event: dict[str, Any]) -> None:
        if any(base64.b64decode(r["kinesis"]["data"]) == b"r5" for r in event["Records"]):
            raise ValueError("poison")

    handler = Recorder(raise_on_poison)
    _drain(_mapping(handler, tmp_path, queue=failures_queue))

    assert (
        handler.payloads()
        == [
            payloads,  # fails: bisect
            payloads[0:4],  # ok
            payloads[4:8],  # fails: bisect
            payloads[4:6],  # fails: bisect
            ["r4"],  # ok
            ["r5"],  # fails, then 2 retries
            ["r5"],
            ["r5"],
            ["r6", "r7"],
        ]
    )
    [document] = _failure_documents(failures_queue)
    arn = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    assert list(document) == ["requestContext", "responseContext", "version", "timestamp", "KinesisBatchInfo"]
    assert document["requestContext"]["functionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert document["requestContext"]["approximateInvokeCount"] == 6
    assert set(document["requestContext"]) == {
        "requestId",
        "functionArn",
        "condition",
        "approximateInvokeCount",
    }
    assert document["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert document["version"] == "1.0"
    assert document["timestamp"].endswith("Z") and len(document["timestamp"]) == 24
    info = document["KinesisBatchInfo"]
    assert list(info) == [
        "shardId",
        "startSequenceNumber",
        "endSequenceNumber",
        "approximateArrivalOfFirstRecord",
        "approximateArrivalOfLastRecord",
        "batchSize",
        "streamArn",
    ]
    assert (info["shardId"], info["batchSize"], info["streamArn"]) == ("shardId-000000000000", 1, arn)
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == sequence_numbers[5]
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")


def test_without_bisect_a_failing_batch_is_retried_whole_then_discarded(
    kinesis: Any, tmp_path: Path, failures_queue: str
) -> None:
    payloads = [f"r{i}" for i in range(3)]
    sequence_numbers = _put(kinesis, payloads)

    def always_raise(event: dict[str, Any]) -> None:
        raise RuntimeError("down")

    handler = Recorder(always_raise)
    settings = dataclasses.replace(SETTINGS, bisect_on_error=False, retry_attempts=1)
    _drain(_mapping(handler, tmp_path, settings, queue=failures_queue))
    assert handler.payloads() == [payloads, payloads]
    [document] = _failure_documents(failures_queue)
    info = document["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        sequence_numbers[0],
        sequence_numbers[-1],
        3,
    )
    assert document["requestContext"]["approximateInvokeCount"] == 2


def test_records_older_than_the_maximum_age_are_discarded_without_invoking(
    kinesis: Any, tmp_path: Path, failures_queue: str
) -> None:
    _put(kinesis, ["old1", "old2"])
    handler = Recorder()
    settings = dataclasses.replace(SETTINGS, max_record_age_s=0)
    time.sleep(0.01)  # let the records age past a 0 s limit
    _drain(_mapping(handler, tmp_path, settings, queue=failures_queue))
    assert handler.events == []
    [document] = _failure_documents(failures_queue)
    assert document["requestContext"]["condition"] == "RecordAgeExceeded"
    assert document["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in document
    assert document["KinesisBatchInfo"]["batchSize"] == 2


def test_latest_skips_what_was_there_and_reads_what_comes(kinesis: Any, tmp_path: Path) -> None:
    _put(kinesis, ["before1", "before2"])
    handler = Recorder()
    mapping = _mapping(handler, tmp_path, dataclasses.replace(SETTINGS, starting_position="LATEST"))
    mapping.start()
    try:
        mapping.wait_caught_up(30)
        _put(kinesis, ["after1", "after2"])
        deadline = time.monotonic() + 30
        while len(handler.delivered()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        mapping.stop()
    assert handler.delivered() == ["after1", "after2"]


def test_at_timestamp_starts_at_the_first_record_at_or_after_it(kinesis: Any, tmp_path: Path) -> None:
    _put(kinesis, ["before"])
    time.sleep(0.05)  # arrival timestamps have millisecond resolution
    start = time.time()
    _put(kinesis, ["after1", "after2"])
    handler = Recorder()
    settings = dataclasses.replace(SETTINGS, starting_position="AT_TIMESTAMP")
    _drain(_mapping(handler, tmp_path, settings, starting_position_timestamp=start))
    assert handler.delivered() == ["after1", "after2"]


def test_parallelization_keeps_each_partition_key_in_order(kinesis: Any, tmp_path: Path) -> None:
    sent = []
    for i in range(30):
        key = f"k{i % 3}"
        kinesis.put_record(StreamName=STREAM, Data=f"{key}-{i:02}".encode(), PartitionKey=key)
        sent.append(f"{key}-{i:02}")
    handler = Recorder()
    settings = dataclasses.replace(SETTINGS, parallelization_factor=4, batch_size=4)
    _drain(_mapping(handler, tmp_path, settings))
    assert sorted(handler.delivered()) == sorted(sent)
    for key in ("k0", "k1", "k2"):
        assert [p for p in handler.delivered() if p.startswith(key)] == [p for p in sent if p.startswith(key)]
    lane = {k: int.from_bytes(hashlib.md5(k.encode()).digest(), "big") % 4 for k in ("k0", "k1", "k2")}
    assert len(set(lane.values())) == 2  # the keys spread over two lanes
    for batch in handler.payloads():  # a batch holds the keys of one lane only
        assert len(batch) <= 4
        assert len({lane[p.split("-")[0]] for p in batch}) == 1


def test_a_stopped_mapping_resumes_from_its_checkpoint_without_replaying(
    kinesis: Any, tmp_path: Path
) -> None:
    payloads = [f"r{i:02}" for i in range(30)]
    _put(kinesis, payloads)
    first: KinesisEventSourceMapping | None = None

    def stop_after_second_batch(event: dict[str, Any]) -> None:
        if len(handler.events) == 2 and first is not None:
            first.stop_event.set()

    handler = Recorder(stop_after_second_batch)
    first = _mapping(handler, tmp_path)
    first.start()
    assert first.stop_event.wait(30)
    first.stop()
    assert handler.delivered() == payloads[:20]

    second = Recorder()
    _drain(_mapping(second, tmp_path))
    assert second.delivered() == payloads[20:]


def test_batching_window_waits_for_more_records(kinesis: Any, tmp_path: Path) -> None:
    handler = Recorder()
    settings = dataclasses.replace(SETTINGS, max_batching_window_s=1, batch_size=100)
    mapping = _mapping(handler, tmp_path, settings)
    mapping.start()
    try:
        for p in ["a", "b", "c"]:
            _put(kinesis, [p])
        deadline = time.monotonic() + 30
        while len(handler.delivered()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        mapping.stop()
    assert handler.payloads() == [["a", "b", "c"]]


def test_stop_event_ends_every_poller_thread(kinesis: Any, tmp_path: Path) -> None:
    mapping = _mapping(Recorder(), tmp_path)
    mapping.start()
    mapping.stop(timeout_s=10)
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("esm-"))


def test_a_crashed_poller_makes_run_raise(kinesis: Any, tmp_path: Path) -> None:
    from pipeline.local.event_source_mapping import PollerFailed

    mapping = _mapping(Recorder(), tmp_path)

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("iterator service down")

    mapping.kinesis.get_shard_iterator = broken
    with pytest.raises(PollerFailed, match="iterator service down"):
        mapping.run()
    assert mapping.stats["shardId-000000000000"].crashed
