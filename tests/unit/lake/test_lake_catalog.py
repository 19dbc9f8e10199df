"""Partition registration: which partition a key is in, what Glue gets, retries and the per-process cache."""

from typing import Any

import pytest

from pipeline.config import stage
from pipeline.lake.catalog import (
    BATCH_CREATE_LIMIT,
    CATALOG_ENV,
    GlueCatalog,
    LakePartition,
    PartitionRegistrationError,
    entry_errors,
    glue_catalog,
    partition_input,
    partition_of,
    table_input,
)
from pipeline.lake.tables import events_table

OBJECT = "rta-local-events-enriched.shardId-000000000000.1-9.parquet"
DESCRIPTOR = {
    "Columns": [{"Name": "event_id", "Type": "string"}],
    "Location": "s3://lake/curated/events/event_type=click/",
    "InputFormat": "in",
    "OutputFormat": "out",
    "SerdeInfo": {"SerializationLibrary": "serde"},
}


def click(hour: int) -> LakePartition:
    prefix = f"curated/events/event_type=click/event_date=2025-11-26/event_hour={hour:02d}/"
    return LakePartition("events_click", ("2025-11-26", f"{hour:02d}"), prefix)


def test_partition_of_each_kind_of_lake_key() -> None:
    assert partition_of(
        f"curated/events/event_type=page_view/event_date=2025-11-26/event_hour=07/{OBJECT}"
    ) == LakePartition(
        "events_page_view",
        ("2025-11-26", "07"),
        "curated/events/event_type=page_view/event_date=2025-11-26/event_hour=07/",
    )
    assert partition_of(f"curated/metrics/window_date=2025-11-25/{OBJECT}") == LakePartition(
        "metrics", ("2025-11-25",), "curated/metrics/window_date=2025-11-25/"
    )
    assert partition_of(f"bad/failed_date=2025-11-26/{OBJECT}") == LakePartition(
        "bad_rows", ("2025-11-26",), "bad/failed_date=2025-11-26/"
    )


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (f"raw/year=2025/month=11/day=26/hour=10/{OBJECT}", "is in no lake table"),
        (f"curated/events/event_type=nope/event_date=2025-11-26/event_hour=07/{OBJECT}", "no lake table"),
        (f"curated/events/event_type=click/event_hour=07/event_date=2025-11-26/{OBJECT}", "event_date="),
        (f"curated/events/event_type=click/event_date=/event_hour=07/{OBJECT}", "event_date="),
        ("curated/events/event_type=click/event_date=2025-11-26/event_hour=07", "not an object inside"),
    ],
)
def test_partition_of_rejects_keys_outside_a_partition(key: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        partition_of(key)


def test_partition_input_is_the_table_descriptor_at_the_partition_prefix() -> None:
    got = partition_input(DESCRIPTOR, "lake", click(7))
    assert got == {
        "Values": ["2025-11-26", "07"],
        "StorageDescriptor": {
            **DESCRIPTOR,
            "Location": "s3://lake/curated/events/event_type=click/event_date=2025-11-26/event_hour=07/",
        },
    }
    got["StorageDescriptor"]["Columns"].append({"Name": "x", "Type": "int"})
    assert DESCRIPTOR["Columns"] == [{"Name": "event_id", "Type": "string"}]  # a copy, not shared


def test_table_input_keeps_projection_and_parquet_layout() -> None:
    got = table_input(events_table("click"), "lake")
    assert got["Name"] == "events_click"
    assert got["Parameters"]["projection.enabled"] == "true"
    assert got["Parameters"]["EXTERNAL"] == "TRUE"
    assert [k["Name"] for k in got["PartitionKeys"]] == ["event_date", "event_hour"]
    assert got["StorageDescriptor"]["Location"] == "s3://lake/curated/events/event_type=click/"
    assert got["StorageDescriptor"]["SerdeInfo"] == {
        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }


def test_entry_errors_sorts_already_exists_transient_and_fatal() -> None:
    errors = entry_errors(
        [
            {"PartitionValues": ["a"], "ErrorDetail": {"ErrorCode": "AlreadyExistsException"}},
            {"PartitionValues": ["b"], "ErrorDetail": {"ErrorCode": "InternalServiceException"}},
            {"PartitionValues": ["c"], "ErrorDetail": {"ErrorCode": "ThrottlingException"}},
            {
                "PartitionValues": ["d"],
                "ErrorDetail": {"ErrorCode": "InvalidInputException", "ErrorMessage": "bad value"},
            },
        ]
    )
    assert errors.retry == {("b",), ("c",)}
    assert errors.fatal == {("d",): "InvalidInputException: bad value"}


class FakeGlue:
    """Records calls; answers BatchCreatePartition with the queued per-entry errors, then none."""

    def __init__(self, errors: list[list[dict[str, Any]]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors = list(errors or [])

    def get_table(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("get_table", kwargs))
        return {"Table": {"Name": kwargs["Name"], "StorageDescriptor": DESCRIPTOR}}

    def batch_create_partition(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("batch_create_partition", kwargs))
        return {"Errors": self.errors.pop(0)} if self.errors else {}

    def created(self) -> list[list[list[str]]]:
        return [
            [p["Values"] for p in kwargs["PartitionInputList"]]
            for name, kwargs in self.calls
            if name == "batch_create_partition"
        ]


def catalog(glue: FakeGlue, sleeps: list[float]) -> GlueCatalog:
    return GlueCatalog(glue, "rta_local", "lake", attempts=3, backoff_s=0.5, sleep=sleeps.append)


def test_one_call_per_new_partition_not_per_object() -> None:
    glue, sleeps = FakeGlue(), list[float]()
    cat = catalog(glue, sleeps)
    assert cat.register([click(7), click(7), click(8)]) == [click(7), click(8)]
    assert cat.register([click(8), click(7)]) == []  # cached: no call at all
    assert cat.register([click(9)]) == [click(9)]
    assert glue.created() == [[["2025-11-26", "07"], ["2025-11-26", "08"]], [["2025-11-26", "09"]]]
    assert [name for name, _ in glue.calls].count("get_table") == 1  # descriptor read once per table
    [(_, first), *_] = [c for c in glue.calls if c[0] == "batch_create_partition"]
    assert first["DatabaseName"] == "rta_local" and first["TableName"] == "events_click"
    assert sleeps == []


def test_already_exists_is_success() -> None:
    exists = {"ErrorCode": "AlreadyExistsException", "ErrorMessage": "Partition already exists."}
    glue = FakeGlue([[{"PartitionValues": ["2025-11-26", "07"], "ErrorDetail": exists}]])
    cat = catalog(glue, [])
    assert cat.register([click(7)]) == [click(7)]
    assert cat.registered == {click(7)}


def test_transient_entry_errors_are_retried_alone_with_backoff() -> None:
    throttled = {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
    glue = FakeGlue(
        [
            [{"PartitionValues": ["2025-11-26", "08"], "ErrorDetail": throttled}],
            [{"PartitionValues": ["2025-11-26", "08"], "ErrorDetail": throttled}],
        ]
    )
    sleeps: list[float] = []
    cat = catalog(glue, sleeps)
    cat.register([click(7), click(8)])
    assert glue.created() == [
        [["2025-11-26", "07"], ["2025-11-26", "08"]],
        [["2025-11-26", "08"]],
        [["2025-11-26", "08"]],
    ]
    assert sleeps == [0.5, 1.0]
    assert cat.registered == {click(7), click(8)}


def test_a_partition_still_failing_after_every_attempt_fails_the_batch() -> None:
    busy = {"ErrorCode": "InternalServiceException", "ErrorMessage": "busy"}
    glue = FakeGlue([[{"PartitionValues": ["2025-11-26", "08"], "ErrorDetail": busy}]] * 3)
    cat = catalog(glue, [])
    with pytest.raises(PartitionRegistrationError, match=r"after 3 attempts: \[\['2025-11-26', '08'\]\]"):
        cat.register([click(7), click(8)])
    assert cat.registered == {click(7)}  # registered partitions stay cached; the retry sends only 08
    cat.register([click(7), click(8)])
    assert glue.created()[-1] == [["2025-11-26", "08"]]


def test_a_fatal_entry_error_fails_at_once_and_caches_nothing() -> None:
    invalid = {"ErrorCode": "InvalidInputException", "ErrorMessage": "no such column"}
    glue = FakeGlue([[{"PartitionValues": ["2025-11-26", "07"], "ErrorDetail": invalid}]])
    cat = catalog(glue, [])
    with pytest.raises(PartitionRegistrationError, match=r"rta_local\.events_click: .*InvalidInputException"):
        cat.register([click(7)])
    assert len(glue.created()) == 1
    assert cat.registered == set()


def test_more_partitions_than_one_call_takes_are_split() -> None:
    glue = FakeGlue()
    many = [
        LakePartition("metrics", (f"2025-01-{n:03d}",), f"curated/metrics/window_date=2025-01-{n:03d}/")
        for n in range(BATCH_CREATE_LIMIT + 1)
    ]
    catalog(glue, []).register(many)
    assert [len(call) for call in glue.created()] == [BATCH_CREATE_LIMIT, 1]


def test_glue_catalog_is_off_where_the_emulator_has_no_glue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CATALOG_ENV, "none")
    assert glue_catalog() is None
    monkeypatch.setenv(CATALOG_ENV, "hive")
    with pytest.raises(ValueError, match="use glue or none"):
        glue_catalog()
    monkeypatch.delenv(CATALOG_ENV)
    got = glue_catalog()
    assert got is not None and (got.database, got.bucket) == (stage().glue_database, stage().lake_bucket)
