"""boto3 clients for real AWS or a local endpoint (moto server, LocalStack), one way everywhere."""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode, but our own code retries partial failures; keep SDK retries short.
_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32)


def client(service: str, endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A client for `service`. `endpoint_url` falls back to $AWS_ENDPOINT_URL (boto3's own rule)."""
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    kwargs: dict[str, Any] = {"region_name": region, "config": _CONFIG}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
        # Emulators accept any credentials; do not require a profile on a fresh laptop.
        kwargs.setdefault("aws_access_key_id", os.environ.get("AWS_ACCESS_KEY_ID", "testing"))
        kwargs.setdefault("aws_secret_access_key", os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"))
    return boto3.client(service, **kwargs)
