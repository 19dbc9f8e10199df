"""Helpers every stack module shares: asset staging from local files, cdk-nag acknowledgements and
the Python Lambda functions built from `lambdas/<folder>/handler.py`."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aws_cdk import Acknowledgment, Annotations, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from pipeline.config import REPO_ROOT, Stage
from pipeline.lake.tables import lake_tables

# `aws`: everything, one stack per part. `emulator`: only what moto's CloudFormation creates, in one stack.
# `localstack`: only what LocalStack creates on the host (no Docker, so no Lambda), in one stack.
Target = Literal["aws", "emulator", "localstack"]
BUILD_DIR = REPO_ROOT / "build"
RUNTIME = lambda_.Runtime.PYTHON_3_13
# The third-party dependency layers (`make layers`): wheels for this runtime's CPython and x86_64.
LAYERS_DIR = BUILD_DIR / "layers"
LAMBDAS_DIR = REPO_ROOT / "lambdas"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache")


def acknowledge(construct: IConstruct, findings: Mapping[str, str]) -> None:
    """Acknowledge cdk-nag findings (`rule[finding]` -> the reason it is acceptable) on `construct`."""
    for finding, reason in findings.items():
        Validations.of(construct).acknowledge(Acknowledgment(id=finding, reason=reason))


def staging_dir(name: str, files: Mapping[str, Path]) -> Path:
    """A fresh directory holding `files` (destination -> source file or folder), removed at exit.

    Lambda and Flink code are packaged from local files (no Docker bundling): CDK hashes the
    directory's content, so a fresh temporary copy per process keeps the asset hash stable while
    letting concurrent synths (tests, `make synth`) run side by side.
    """
    BUILD_DIR.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=BUILD_DIR))
    atexit.register(shutil.rmtree, root, True)
    for dest, source in files.items():
        target = root / dest
        if source.is_dir():
            shutil.copytree(source, target, ignore=_IGNORE)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return root


@dataclass(frozen=True)
class FunctionSpec:
    logical: str  # `Stage.function(logical)` gives the name
    folder: str  # lambdas/<folder>/handler.py
    memory_mb: int
    timeout: Duration
    dependency_layer: bool = True  # False: the handler imports the standard library and `pipeline` only
    tracing: bool = True  # X-Ray active tracing (its permissions have no resource-level scoping)


def code_asset(spec: FunctionSpec) -> lambda_.Code:
    """handler.py at the root, beside the `pipeline` package, its schemas and cdk.json (stage settings)."""
    root = staging_dir(
        spec.folder,
        {
            "handler.py": LAMBDAS_DIR / spec.folder / "handler.py",
            "pipeline": REPO_ROOT / "pipeline",
            "schemas": REPO_ROOT / "schemas",
            "cdk.json": REPO_ROOT / "cdk.json",
        },
    )
    return lambda_.Code.from_asset(str(root))


def layer_dir(spec: FunctionSpec, use_built: bool = True) -> tuple[Path, bool]:
    """The built layer of `spec`, or an empty stand-in (False) so synth works before `make layers`."""
    built = LAYERS_DIR / spec.folder
    if use_built and (built / "python").is_dir() and any((built / "python").iterdir()):
        return built, True
    placeholder = staging_dir(f"{spec.folder}-layer-placeholder", {})
    (placeholder / "python").mkdir()
    (placeholder / "python" / "LAYER_NOT_BUILT.txt").write_text("run `make layers` before `cdk deploy`\n")
    return placeholder, False


def python_function(
    scope: Construct,
    spec: FunctionSpec,
    stage: Stage,
    environment: Mapping[str, str],
    with_dependency_layers: bool = True,
) -> lambda_.Function:
    """The function of `lambdas/<spec.folder>/handler.py`, its log group and (when `spec` has one) its
    dependency layer; `with_dependency_layers=False` ships an empty layer (an emulator runs no code)."""
    handler = LAMBDAS_DIR / spec.folder / "handler.py"
    if not handler.exists():
        raise FileNotFoundError(f"{handler}: the {spec.logical} Lambda has no handler")
    layers: list[lambda_.ILayerVersion] = []
    if spec.dependency_layer:
        layer_path, built = layer_dir(spec, with_dependency_layers)
        layer = lambda_.LayerVersion(
            scope,
            f"{spec.folder}-deps",
            code=lambda_.Code.from_asset(str(layer_path)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[lambda_.Architecture.X86_64],
            description=f"{spec.logical}: third-party dependencies (make layers)",
        )
        if with_dependency_layers and not built:
            message = (
                f"layer {LAYERS_DIR / spec.folder} is not built: {spec.logical} deploys with an EMPTY "
                "dependency layer and will fail to import; run `make layers` before `cdk deploy`"
            )
            Annotations.of(layer).add_warning_v2("pipeline:layer-not-built", message)
            warnings.warn(message, stacklevel=2)
        layers.append(layer)
    name = stage.function(spec.logical)
    log_group = logs.LogGroup(
        scope,
        f"{spec.folder}-logs",
        log_group_name=f"/aws/lambda/{name}",
        retention=logs.RetentionDays.ONE_MONTH,
        removal_policy=RemovalPolicy.DESTROY,
    )
    function = lambda_.Function(
        scope,
        spec.folder,
        function_name=name,
        runtime=RUNTIME,
        architecture=lambda_.Architecture.X86_64,
        handler="handler.handler",
        code=code_asset(spec),
        layers=layers or None,
        memory_size=spec.memory_mb,
        timeout=spec.timeout,
        log_group=log_group,
        environment={
            "PIPELINE_STAGE": stage.name,
            "POWERTOOLS_SERVICE_NAME": spec.logical,
            "POWERTOOLS_METRICS_NAMESPACE": stage.prefix,
            **environment,
        },
        tracing=lambda_.Tracing.ACTIVE if spec.tracing else None,
    )
    acknowledge(
        function.role,  # type: ignore[arg-type]
        {
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]": "The AWS "
            "managed basic execution policy only allows writing this function's CloudWatch logs."
        },
    )
    acknowledge(
        function,
        {
            "AwsSolutions-L1": "Pinned to the runtime the dependency layer's wheels are built for "
            "(`make layers`); bump both together."
        },
    )
    return function


def lake_catalog_arns(stack: Stack, stage: Stage) -> list[str]:
    """The Glue catalog, the stage's database and its lake tables: what a Glue grant on the lake names."""
    return [
        stack.format_arn(service="glue", resource="catalog"),
        stack.format_arn(service="glue", resource="database", resource_name=stage.glue_database),
        *(
            stack.format_arn(
                service="glue", resource="table", resource_name=f"{stage.glue_database}/{t.name}"
            )
            for t in lake_tables()
        ),
    ]
