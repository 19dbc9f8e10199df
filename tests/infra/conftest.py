"""One CDK app per test session (the first synth costs ~9 s of jsii start-up): prod and dev on AWS,
local on the emulator target, cdk-nag attached as in app.py, so synthesis itself is the nag gate."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from pipeline.config import REPO_ROOT, Stage, stage
from stacks.assembly import Assembly, synthesise

AWS_STAGES = ("prod", "dev")
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
REGION = "us-east-1"


def _cdk(args: list[str], cwd: Path, endpoint: str, extra_env: Mapping[str, str]) -> None:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "1",
        **extra_env,
    }
    run = subprocess.run([str(CDK), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"cdk {' '.join(args)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"


@pytest.fixture(scope="session")
def cdk() -> Callable[[list[str], Path, str, Mapping[str, str]], None]:
    """`cdk(args, cwd, endpoint, extra_env)`: the CDK CLI against a local endpoint; fails the test on error."""
    return _cdk


@pytest.fixture(scope="session")
def synthesised(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    return synthesise(
        tmp_path_factory.mktemp("cdk.out"),
        {"prod": "aws", "dev": "aws", "local": "emulator"},
        stage_assets=False,
    )


@pytest.fixture(params=AWS_STAGES)
def aws_stage(request: pytest.FixtureRequest) -> Stage:
    return stage(request.param)
