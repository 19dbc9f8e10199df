"""The compiled JSON pre-check never accepts what fastavro's validator rejects, and accepts the examples."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.contract import contract
from pipeline.contract.codec import json_check
from pipeline.contract.validate import NotCompiled, compile_check

EXAMPLES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "events" / "examples.json").read_text()
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)


def _writer(version_id: str) -> Any:
    event_type, version = version_id.split(".v")
    return contract().version(event_type, int(version))


@pytest.mark.parametrize("version_id", sorted(EXAMPLES))
def test_every_example_takes_the_fast_path(version_id: str) -> None:
    check = json_check(_writer(version_id))
    assert check is not None and check(EXAMPLES[version_id])


@settings(max_examples=400, deadline=None)
@given(
    version_id=st.sampled_from(sorted(EXAMPLES)),
    where=st.sampled_from(["top", "payload", "drop-top", "drop-payload"]),
    pick=st.integers(min_value=0, max_value=20),
    value=JSON_VALUES,
)
def test_never_accepts_what_fastavro_rejects(version_id: str, where: str, pick: int, value: Any) -> None:
    event = copy.deepcopy(EXAMPLES[version_id])
    target = event if where.endswith("top") else event["payload"]
    key = sorted(target)[pick % len(target)]
    if where.startswith("drop"):
        del target[key]
    else:
        target[key] = value
    writer = _writer(version_id)
    check = json_check(writer)
    assert check is not None
    if check(event):
        assert validate(event, writer.parsed, raise_errors=False)


@pytest.mark.parametrize(
    "schema", [{"type": "array", "items": "int"}, "bytes", {"type": "int", "logicalType": "date"}]
)
def test_outside_the_subset_is_not_compiled(schema: Any) -> None:
    with pytest.raises(NotCompiled):
        compile_check(schema)
