import os

# Tests never touch a real account: any AWS call without an explicit local endpoint fails fast.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from collections.abc import Iterator

import pytest

from pipeline.local.emulator import Emulator, reset_moto, start_moto


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One moto server per test session, on a free loopback port, stopped by PID at the end."""
    emulator = start_moto(log_path=tmp_path_factory.mktemp("moto") / "moto.log")
    yield emulator
    emulator.stop()


@pytest.fixture
def moto_endpoint(moto_server: Emulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean moto server for this test; AWS_ENDPOINT_URL points at it."""
    reset_moto(moto_server.endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    return moto_server.endpoint_url
