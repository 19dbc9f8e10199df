from pipeline.aws import client


def test_moto_server_answers_and_resets_between_tests(moto_endpoint: str) -> None:
    kinesis = client("kinesis")
    kinesis.create_stream(StreamName="probe", ShardCount=1)
    assert kinesis.list_streams()["StreamNames"] == ["probe"]


def test_reset_left_nothing_behind(moto_endpoint: str) -> None:
    assert client("kinesis").list_streams()["StreamNames"] == []
