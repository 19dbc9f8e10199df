"""The Managed Flink application zip: the PyFlink job at the root, its connector jar under lib/.

Layout (what Managed Flink's `kinesis.analytics.flink.run.options` point at):

    main.py  analytics_job.py  analytics_sql.py  job_settings.py  metric_changelog.py
    pipeline/__init__.py  pipeline/config.py  cdk.json     (stage settings the job reads)
    lib/flink-sql-connector-kinesis-<version>.jar           (run option `jarfile`)

The job needs no Python package beyond PyFlink, which the Managed Flink runtime provides.
The Kinesis connector is pinned here, once: version and checksum. It is fetched from Maven Central
at packaging time and verified; this machine cannot reach Maven Central, so tests package a stub jar
with `allow_unverified_jar` and check only the layout.
"""

from __future__ import annotations

import hashlib
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import REPO_ROOT

FLINK_DIR = REPO_ROOT / "flink"
JOB_FILES = ("main.py", "analytics_job.py", "analytics_sql.py", "job_settings.py", "metric_changelog.py")


@dataclass(frozen=True)
class ConnectorJar:
    group: str
    artifact: str
    version: str
    # SHA-512 of the jar as published on Maven Central (its `.jar.sha512`). Not pinned yet: Maven
    # Central is unreachable from the machine this was written on. Until it is set, packaging
    # verifies against the `.sha512` Maven Central publishes and prints the value to pin here.
    sha512: str | None

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    @property
    def url(self) -> str:
        return f"https://repo1.maven.org/maven2/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.file_name}"

    @property
    def zip_path(self) -> str:
        return f"lib/{self.file_name}"


KINESIS_CONNECTOR = ConnectorJar("org.apache.flink", "flink-sql-connector-kinesis", "5.0.0-1.20", sha512=None)


class ChecksumMismatch(ValueError):
    pass


def _sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def fetch_connector(jar: ConnectorJar = KINESIS_CONNECTOR, timeout_s: float = 60) -> bytes:
    """Download the jar and verify it against the pinned checksum (else Maven Central's published one)."""
    with urllib.request.urlopen(jar.url, timeout=timeout_s) as response:
        data: bytes = response.read()
    expected = jar.sha512
    if expected is None:
        with urllib.request.urlopen(jar.url + ".sha512", timeout=timeout_s) as response:
            expected = response.read().decode().split()[0]
        print(f"pin this in pipeline/flink_package.py: sha512={expected}")
    if _sha512(data) != expected:
        raise ChecksumMismatch(f"{jar.url}: sha512 {_sha512(data)} != expected {expected}")
    return data


def build_zip(
    out: Path,
    connector_jar: Path | None = None,
    allow_unverified_jar: bool = False,
    jar: ConnectorJar = KINESIS_CONNECTOR,
) -> list[str]:
    """Write the application zip to `out`; returns its entries. `connector_jar` skips the download
    (it is still checked against the pinned sha512 unless `allow_unverified_jar`)."""
    if connector_jar is None:
        jar_bytes = fetch_connector(jar)
    else:
        jar_bytes = connector_jar.read_bytes()
        if not allow_unverified_jar and (jar.sha512 is None or _sha512(jar_bytes) != jar.sha512):
            raise ChecksumMismatch(f"{connector_jar}: does not match the pinned sha512 of {jar.file_name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in JOB_FILES:
            zf.write(FLINK_DIR / name, name)
        zf.write(REPO_ROOT / "pipeline" / "__init__.py", "pipeline/__init__.py")
        zf.write(REPO_ROOT / "pipeline" / "config.py", "pipeline/config.py")
        zf.write(REPO_ROOT / "cdk.json", "cdk.json")
        zf.writestr(jar.zip_path, jar_bytes)
        return zf.namelist()
