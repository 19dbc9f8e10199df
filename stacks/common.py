"""Helpers every stack module shares: asset staging from local files and cdk-nag acknowledgements."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

from pipeline.config import REPO_ROOT

# `aws`: everything, one stack per part. `emulator`: only what moto's CloudFormation creates, in one stack.
Target = Literal["aws", "emulator"]
BUILD_DIR = REPO_ROOT / "build"
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
