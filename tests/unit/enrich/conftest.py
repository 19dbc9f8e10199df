import base64
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pipeline.enrich.bad_rows import DeadLetterQueue
from pipeline.enrich.enrichment import Pseudonymiser
from pipeline.enrich.pseudonym_key import DEV_PSEUDONYM_KEY
from pipeline.enrich.service import Enricher
from pipeline.produce.kinesis import KinesisWriter

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "kinesis"


def kinesis_event(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


class FakeKinesis:
    """put_records that can throttle: `throttle(call_number, entry) -> bool`."""

    def __init__(self, throttle: Callable[[int, dict[str, Any]], bool] | None = None) -> None:
        self.throttle = throttle or (lambda call, entry: False)
        self.calls = 0
        self.accepted: list[dict[str, Any]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        out = []
        for entry in Records:
            if self.throttle(self.calls, entry):
                out.append(
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
                )
            else:
                self.accepted.append({"StreamName": StreamName, **entry})
                out.append({"SequenceNumber": str(len(self.accepted)), "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in out), "Records": out}


class FakeSqs:
    def __init__(self, fail: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.fail = fail or (lambda entry: False)
        self.calls: list[list[dict[str, Any]]] = []
        self.messages: list[dict[str, Any]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert len(Entries) <= 10
        assert sum(len(e["MessageBody"]) for e in Entries) <= 262_144
        self.calls.append(Entries)
        failed = [e for e in Entries if self.fail(e)]
        self.messages += [e for e in Entries if not self.fail(e)]
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if not self.fail(e)],
            "Failed": [{"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in failed],
        }

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(m["MessageBody"]) for m in self.messages]


def make_enricher(kinesis: FakeKinesis, sqs: FakeSqs, max_attempts: int = 3) -> Enricher:
    return Enricher(
        KinesisWriter(
            kinesis,
            "rta-local-events-enriched",
            aggregate=True,
            max_attempts=max_attempts,
            base_backoff_s=0.0,
            max_backoff_s=0.0,
        ),
        DeadLetterQueue(
            sqs, "https://sqs.local/dlq", max_attempts=max_attempts, base_backoff_s=0.0, max_backoff_s=0.0
        ),
        Pseudonymiser(DEV_PSEUDONYM_KEY),
        future_tolerance_s=300,
    )


def load_handler_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "enricher_handler_under_test", REPO / "lambdas/enricher/handler.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Context:
    function_name = "rta-local-enricher"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:rta-local-enricher"
    memory_limit_in_mb = 1024
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/rta-local-enricher"
    log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def handler_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "rta-test")
    return load_handler_module()


def user_records(accepted: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """(partition key, data) of every user record put, KPL aggregates unpacked."""
    from pipeline.produce.kpl import deaggregate

    records = [
        {
            "SequenceNumber": str(i),
            "PartitionKey": e["PartitionKey"],
            "Data": e["Data"],
            "ApproximateArrivalTimestamp": 0.0,
        }
        for i, e in enumerate(accepted)
    ]
    return [(u.partition_key, u.data) for u in deaggregate(records, data_format="Boto3")]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def kit() -> Any:
    """The fakes and helpers above, for test modules (importlib mode cannot import a conftest)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        FakeKinesis=FakeKinesis,
        FakeSqs=FakeSqs,
        make_enricher=make_enricher,
        kinesis_event=kinesis_event,
        user_records=user_records,
        Context=Context,
        b64=b64,
    )
