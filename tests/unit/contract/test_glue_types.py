from typing import Any

import pytest

from pipeline.contract import contract
from pipeline.contract.glue_types import GlueColumn, glue_columns, glue_type


@pytest.mark.parametrize(
    ("avro", "expected"),
    [
        ("string", "string"),
        ("int", "int"),
        ("long", "bigint"),
        ("float", "float"),
        ("double", "double"),
        ("boolean", "boolean"),
        ("bytes", "binary"),
        (["null", "string"], "string"),
        (["long", "null"], "bigint"),
        ({"type": "long", "logicalType": "timestamp-millis"}, "timestamp"),
        ({"type": "int", "logicalType": "date"}, "date"),
        ({"type": "string", "logicalType": "uuid"}, "string"),
        ({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}, "decimal(12,2)"),
        ({"type": "enum", "name": "Level", "symbols": ["INFO", "WARN"]}, "string"),
        ({"type": "fixed", "name": "Md5", "size": 16}, "binary"),
        ({"type": "array", "items": "string"}, "array<string>"),
        ({"type": "map", "values": "double"}, "map<string,double>"),
        ({"type": "map", "values": ["null", "long"]}, "map<string,bigint>"),
        (
            {
                "type": "record",
                "name": "P",
                "fields": [
                    {"name": "a", "type": "int"},
                    {"name": "b", "type": {"type": "array", "items": "long"}},
                ],
            },
            "struct<a:int,b:array<bigint>>",
        ),
    ],
)
def test_glue_type_maps_avro_types(avro: Any, expected: str) -> None:
    assert glue_type(avro) == expected


def test_unions_of_several_types_and_named_references_are_rejected() -> None:
    with pytest.raises(ValueError, match="several non-null types"):
        glue_type(["null", "string", "long"])
    with pytest.raises(ValueError, match="named type references"):
        glue_type("Purchase")


def test_glue_columns_keep_field_order_and_docs() -> None:
    record = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "id", "type": "string", "doc": "the key"},
            {"name": "n", "type": ["null", "int"]},
        ],
    }
    assert glue_columns(record) == [GlueColumn("id", "string", "the key"), GlueColumn("n", "int", None)]
    with pytest.raises(ValueError, match="expected an Avro record"):
        glue_columns({"type": "map", "values": "string"})


def test_enriched_purchase_columns_follow_the_newest_schema() -> None:
    columns = {c.name: c.type for c in glue_columns(contract().enriched_schema("purchase"))}
    assert columns["event_time"] == "timestamp"
    assert columns["payload"] == (
        "struct<order_id:string,amount_minor:bigint,currency:string,item_count:int,coupon_code:string>"
    )
    assert columns["enrichment"].startswith("struct<arrival_time:timestamp,event_time_skew_ms:bigint,")
    assert list(columns)[-2:] == ["payload", "enrichment"]
