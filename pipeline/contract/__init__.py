"""The event contract: Avro schemas, the codec and the bad-row taxonomy."""

from pipeline.contract.codec import (
    MAX_RECORD_BYTES,
    Decoded,
    WireFormat,
    check_event_time_skew,
    decode,
    encode,
    encode_avro,
    encode_json,
)
from pipeline.contract.compatibility import Incompatibility, Mode, check_chain, check_new_version
from pipeline.contract.errors import BadRowReason, DecodeError
from pipeline.contract.schemas import Contract, SchemaVersion, contract, load_contract

__all__ = [
    "MAX_RECORD_BYTES",
    "BadRowReason",
    "Contract",
    "DecodeError",
    "Decoded",
    "Incompatibility",
    "Mode",
    "SchemaVersion",
    "WireFormat",
    "check_chain",
    "check_event_time_skew",
    "check_new_version",
    "contract",
    "decode",
    "encode",
    "encode_avro",
    "encode_json",
    "load_contract",
]
