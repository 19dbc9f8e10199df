"""CDK entry point: `cdk synth -c stage=dev [-c target=emulator]` (defaults: cdk.json's stage, target aws)."""

from __future__ import annotations

from aws_cdk import App

from pipeline.config import stage
from stacks.app import build, configure

app = App()
configure(app)
build(app, stage(app.node.try_get_context("stage")), app.node.try_get_context("target") or "aws")
app.synth()
