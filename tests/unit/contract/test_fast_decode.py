"""The codec's fused decodes (one generated function per writer for regular JSON and Avro bodies) give
exactly what the step-by-step path gives, event or bad row, over a whole workload rich in bad rows."""

import copy
from typing import Any

import pytest

from pipeline.contract import DecodeError, WireFormat, codec, contract, decode, encode
from pipeline.produce.workload import Workload, WorkloadConfig


def _outcome(data: bytes) -> Any:
    try:
        decoded = decode(data)
    except DecodeError as exc:
        return (exc.reason, exc.detail, exc.field)
    return (decoded.event, decoded.writer.id, decoded.wire_format)


def _step_by_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decode without the fused functions: their compilers give none, their caches start empty."""
    monkeypatch.setattr(codec, "_compile_fast_json", lambda writer, reader: None)
    monkeypatch.setattr(codec, "_compile_fast_read", lambda writer, reader, upcast: None)
    monkeypatch.setattr(codec, "_JSON_FAST", {})
    monkeypatch.setattr(codec, "_AVRO_PLANS", {})
    monkeypatch.setattr(contract(), "decode_plans", {})


def _inputs() -> list[bytes]:
    records = Workload(
        WorkloadConfig(events=3_000, seed=21, bad=0.2, duplicates=0.05, end_ms=1_764_150_000_000)
    )
    out = [r.data for r in records if len(r.data) < 1_000_000]
    # Odd but readable: a non-canonical event_id (the step-by-step path canonicalises it), extra JSON
    # keys, a JSON event missing a nullable field.
    event = {
        "event_id": "0B8F5C2E-9D4A-4B1E-8C3F-1A2B3C4D5E02",
        "event_type": "click",
        "schema_version": 1,
        "event_time": 1_764_150_002_000,
        "source": "web",
        "user_id": None,
        "session_id": "s-1",
        "user_agent": None,
        "ip": None,
        "payload": {"url": "/p/42", "element_id": "buy", "x": 10, "y": 20},
    }
    out += [encode(event, f) for f in WireFormat]
    extra = copy.deepcopy(event) | {"debug": True}
    missing = copy.deepcopy(event)
    del missing["ip"]
    out += [encode(extra, WireFormat.JSON), encode(missing, WireFormat.JSON)]
    return out


def test_fused_and_step_by_step_decodes_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = _inputs()
    fused = [_outcome(data) for data in inputs]
    assert codec._JSON_FAST and any(plan.fast for plan in codec._AVRO_PLANS.values())
    assert contract().decode_plans
    with monkeypatch.context() as patch:
        _step_by_step(patch)
        step_by_step = [_outcome(data) for data in inputs]
    assert fused == step_by_step
    good = [o for o in fused if isinstance(o[0], dict)]
    reasons = {o[0] for o in fused if not isinstance(o[0], dict)}
    assert len(good) > 2_000 and len(reasons) >= 5
    assert {o[2] for o in good} == set(WireFormat)
