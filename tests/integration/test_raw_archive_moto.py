"""The local Firehose stand-in against moto: events-raw -> local event source mapping ->
`archive_handler` -> raw/ in the lake bucket, read back byte-identical with the records' metadata."""

import dataclasses
import json
from pathlib import Path

import pytest

from pipeline.aws import client
from pipeline.config import REPO_ROOT, stage
from pipeline.contract.codec import WireFormat, encode_avro
from pipeline.lake.raw import archive_handler, raw_keys, read_raw_object
from pipeline.lake.replay import ReplayReport, enrich_records
from pipeline.lake.store import s3_lake
from pipeline.local.event_source_mapping import KinesisEventSourceMapping
from pipeline.produce.kinesis import KinesisWriter

EXAMPLES = json.loads((REPO_ROOT / "tests/fixtures/events/examples.json").read_text())


@pytest.mark.integration
def test_the_local_archive_keeps_every_record_and_its_metadata(moto_endpoint: str, tmp_path: Path) -> None:
    local = stage()
    stream = local.stream("events-raw")
    kinesis = client("kinesis")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=stream, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50}
    )
    client("s3").create_bucket(Bucket=local.lake_bucket)

    purchase = dict(EXAMPLES["purchase.v2"], payload=dict(EXAMPLES["purchase.v2"]["payload"], items=5))
    avro = encode_avro(purchase, WireFormat.AVRO_GLUE)
    assert b"\n" in avro
    users = [("s-1", avro), ("s-2", json.dumps(EXAMPLES["click.v1"]).encode()), ("s-3", b"not an event")]
    # One KPL aggregate of all three, then the Avro record alone, plain.
    assert KinesisWriter(kinesis, stream, aggregate=True).put(users).sent == 3
    assert KinesisWriter(kinesis, stream, aggregate=False).put(users[:1]).sent == 1
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    put = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    assert len(put) == 2

    settings = dataclasses.replace(local.lake_writer_mapping, max_batching_window_s=0)  # no waiting in a test
    mapping = KinesisEventSourceMapping(
        archive_handler, stream, settings, tmp_path / "checkpoints", "raw-archive", poll_interval_s=0.02
    )
    mapping.start()
    try:
        mapping.wait_caught_up(60)
    finally:
        mapping.stop()

    lake = s3_lake()
    arrivals = [round(r["ApproximateArrivalTimestamp"].timestamp() * 1000) for r in put]
    [key] = raw_keys(lake, min(arrivals) - 1000, max(arrivals) + 1000)
    assert key.endswith(f"-{shard}.{put[0]['SequenceNumber']}-{put[1]['SequenceNumber']}.gz")
    records = read_raw_object(key, lake.get(key))
    assert [(r.data, r.arrival_ms, r.partition_key, r.shard_id, r.sequence_number) for r in records] == [
        (bytes(r["Data"]), a, r["PartitionKey"], shard, r["SequenceNumber"])
        for r, a in zip(put, arrivals, strict=True)
    ]
    report = ReplayReport(0, 1)
    enriched = [json.loads(line) for line in enrich_records(records, report)]
    assert [e["event_type"] for e in enriched] == ["purchase", "click", "purchase"]
    assert report.bad_rows == {"unparseable": 1}  # "not an event", from inside the aggregate
