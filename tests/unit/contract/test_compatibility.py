import copy
from typing import Any

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.contract import Mode, check_chain, check_new_version, contract
from pipeline.contract.schemas import compose, make_version

BASE_PAYLOAD: dict[str, Any] = {
    "type": "record",
    "name": "Purchase",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "amount_minor", "type": "long"},
        {"name": "currency", "type": "string"},
    ],
}


def _version(n: int, payload: dict[str, Any]) -> Any:
    return make_version("purchase", n, compose("purchase", payload, contract().envelope))


def _evolve(change: str) -> dict[str, Any]:
    payload = copy.deepcopy(BASE_PAYLOAD)
    fields = payload["fields"]
    if change == "add_optional":
        fields.append({"name": "coupon_code", "type": ["null", "string"], "default": None})
    elif change == "add_required":
        fields.append({"name": "channel", "type": "string"})
    elif change == "drop_field":
        fields.pop(2)  # currency, no default
    elif change == "widen_type":
        fields[1]["type"] = "double"  # old long readers cannot read doubles
    return payload


# (mode, evolution it accepts, evolution it rejects, field named in the rejection)
CASES = [
    (Mode.BACKWARD, "add_optional", "add_required", "payload.channel"),
    (Mode.BACKWARD_ALL, "add_optional", "add_required", "payload.channel"),
    (Mode.FORWARD, "add_required", "drop_field", "payload.currency"),
    (Mode.FORWARD_ALL, "add_required", "widen_type", "payload.amount_minor"),
    (Mode.FULL, "add_optional", "add_required", "payload.channel"),
    (Mode.FULL_ALL, "add_optional", "drop_field", "payload.currency"),
]


@pytest.mark.parametrize(("mode", "accepted", "rejected", "field"), CASES, ids=[c[0].value for c in CASES])
def test_each_mode_accepts_one_evolution_and_rejects_another(
    mode: Mode, accepted: str, rejected: str, field: str
) -> None:
    v1 = _version(1, BASE_PAYLOAD)
    assert check_new_version(_version(2, _evolve(accepted)), [v1], mode) == []
    problems = check_new_version(_version(2, _evolve(rejected)), [v1], mode)
    assert len(problems) == 1
    assert problems[0].subject == "purchase"
    assert problems[0].fields == (field,)
    assert {problems[0].reader_version, problems[0].writer_version} == {1, 2}


def test_none_accepts_anything() -> None:
    v1 = _version(1, BASE_PAYLOAD)
    assert check_new_version(_version(2, _evolve("drop_field")), [v1], Mode.NONE) == []


def test_all_modes_check_every_earlier_version_not_just_the_last() -> None:
    v1 = _version(1, BASE_PAYLOAD)
    v2 = _version(2, _evolve("add_optional"))
    # v3 makes coupon_code required: readable from v2 data, not from v1 data.
    v3_payload = _evolve("add_optional")
    v3_payload["fields"][3] = {"name": "coupon_code", "type": ["null", "string"]}
    v3 = _version(3, v3_payload)
    assert check_new_version(v3, [v1, v2], Mode.BACKWARD) == []
    [problem] = check_new_version(v3, [v1, v2], Mode.BACKWARD_ALL)
    assert (problem.reader_version, problem.writer_version, problem.fields) == (
        3,
        1,
        ("payload.coupon_code",),
    )


def test_shipped_chains_are_compatible_in_their_modes() -> None:
    c = contract()
    for event_type in c.event_types:
        assert check_chain(list(c.versions[event_type].values()), Mode(c.mode(event_type))) == []


runner = CliRunner()


def test_cli_check_passes_on_shipped_schemas() -> None:
    result = runner.invoke(app, ["schemas", "check"])
    assert result.exit_code == 0, result.output
    assert "compatible" in result.output


def test_cli_check_rejects_an_incompatible_candidate(tmp_path: Any) -> None:
    candidate = tmp_path / "v4.avsc"
    payload = copy.deepcopy(BASE_PAYLOAD)
    payload["fields"].append({"name": "item_count", "type": "int"})
    payload["fields"].append({"name": "channel", "type": "string"})
    candidate.write_text(__import__("json").dumps(payload))
    result = runner.invoke(app, ["schemas", "check", "--candidate", str(candidate), "--subject", "purchase"])
    assert result.exit_code == 1
    assert "purchase: v4 cannot read data written by v3" in result.output
    assert "payload.channel" in result.output


def test_cli_check_accepts_a_compatible_candidate(tmp_path: Any) -> None:
    candidate = tmp_path / "v2.avsc"
    payload = {
        "type": "record",
        "name": "Click",
        "fields": [
            {"name": "url", "type": "string"},
            {"name": "element_id", "type": "string"},
            {"name": "x", "type": "long"},
            {"name": "y", "type": "long"},
            {"name": "button", "type": ["null", "string"], "default": None},
        ],
    }
    candidate.write_text(__import__("json").dumps(payload))
    result = runner.invoke(app, ["schemas", "check", "--candidate", str(candidate), "--subject", "click"])
    assert result.exit_code == 0, result.output
