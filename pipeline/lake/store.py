"""The lake bucket (or a local directory standing in for it) through one pyarrow filesystem.

One way to reach S3 for writing, listing and reading: `pyarrow.fs.S3FileSystem` honours
$AWS_ENDPOINT_URL like `pipeline.aws.client`, so moto, LocalStack and AWS share the code path, and
DuckDB scans the very same filesystem's datasets (its httpfs extension is not available offline).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from pipeline.config import stage


@dataclass(frozen=True)
class Lake:
    """Keys are bucket-relative (`curated/metrics/window_date=.../x.parquet`) whatever the backend."""

    fs: pafs.FileSystem
    root: str  # the bucket name, or an absolute directory

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def put(self, key: str, body: bytes) -> None:
        if isinstance(self.fs, pafs.LocalFileSystem):
            self.fs.create_dir(self.path(key).rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(self.path(key)) as out:
            out.write(body)

    def get(self, key: str) -> bytes:
        with self.fs.open_input_stream(self.path(key)) as src:
            return bytes(src.readall())

    def keys(self, prefix: str) -> list[str]:
        """Every object key under `prefix` (a folder-like prefix ending in `/`), sorted."""
        selector = pafs.FileSelector(self.path(prefix.rstrip("/")), allow_not_found=True, recursive=True)
        start = len(self.root) + 1
        return sorted(
            info.path[start:] for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.File
        )

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.fs.delete_file(self.path(key))


def s3_filesystem(endpoint_url: str | None = None) -> pafs.S3FileSystem:
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if not endpoint:
        return pafs.S3FileSystem(region=region)
    url = urlparse(endpoint)
    return pafs.S3FileSystem(
        region=region,
        scheme=url.scheme or "http",
        endpoint_override=url.netloc or url.path,
        # Emulators accept any credentials; do not require a profile on a fresh laptop.
        access_key=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )


def s3_lake(bucket: str | None = None, endpoint_url: str | None = None) -> Lake:
    """The stage's lake bucket (default `stage().lake_bucket`) on AWS or the local endpoint."""
    return Lake(s3_filesystem(endpoint_url), bucket or stage().lake_bucket)


def local_lake(directory: Path) -> Lake:
    """A directory laid out like the lake bucket, for tests and offline runs."""
    return Lake(pafs.LocalFileSystem(), str(directory.resolve()))
