"""One CDK app per test session (the first synth costs ~9 s of jsii start-up): prod and dev on AWS,
local on the emulator target, cdk-nag attached as in app.py, so synthesis itself is the nag gate."""

from __future__ import annotations

import pytest

from pipeline.config import Stage, stage
from stacks.assembly import Assembly, synthesise

AWS_STAGES = ("prod", "dev")


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
