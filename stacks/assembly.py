"""Several pipelines synthesised into one cloud assembly, with their templates at hand (tests, tooling)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App
from aws_cdk.assertions import Template

from pipeline.config import stage
from stacks.app import Pipeline, build, configure
from stacks.common import Target


@dataclass
class Assembly:
    outdir: Path
    pipelines: dict[str, Pipeline]  # stage name -> pipeline
    templates: dict[str, Template]  # stack name -> template

    def template(self, stage_name: str, part: str) -> Template:
        return self.templates[self.pipelines[stage_name].stacks[part].stack_name]

    def resources(self, stage_name: str, part: str, cfn_type: str) -> dict[str, Any]:
        return dict(self.template(stage_name, part).find_resources(cfn_type))

    def validation_report(self) -> dict[str, Any]:
        """cdk-nag's findings (CDK writes the report only when a plugin reported something)."""
        path = self.outdir / "validation-report.json"
        return dict(json.loads(path.read_text())) if path.exists() else {"pluginReports": []}


def synthesise(outdir: Path, targets: Mapping[str, Target], stage_assets: bool = True) -> Assembly:
    """One app with the pipeline of each stage (name -> target); raises on unacknowledged findings.

    `stage_assets=False` leaves asset files where they are instead of copying them into `outdir`
    (the built Lambda layers weigh a few hundred MB): for inspecting templates, not for deploying.
    """
    context = {} if stage_assets else {"aws:cdk:disable-asset-staging": True}
    app = App(outdir=str(outdir), context=context)
    configure(app)
    pipelines = {name: build(app, stage(name), target) for name, target in targets.items()}
    app.synth()
    templates = {s.stack_name: Template.from_stack(s) for p in pipelines.values() for s in p.stacks.values()}
    return Assembly(outdir, pipelines, templates)
