"""How the stacks package local files: Lambda code and layers, Flink properties, Redshift SQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import stage
from stacks import analytics, common, warehouse
from stacks.common import staging_dir
from stacks.processing import ENRICHER


def test_layer_falls_back_to_an_empty_stand_in_until_make_layers_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "LAYERS_DIR", tmp_path)
    path, built = common.layer_dir(ENRICHER)
    assert built is False
    assert [p.name for p in (path / "python").iterdir()] == ["LAYER_NOT_BUILT.txt"]

    (tmp_path / "enricher" / "python" / "orjson").mkdir(parents=True)
    assert common.layer_dir(ENRICHER) == (tmp_path / "enricher", True)
    # The emulator target never ships the built layer: moto runs no code.
    assert common.layer_dir(ENRICHER, use_built=False)[1] is False


def test_staging_dir_copies_files_and_folders_without_caches(tmp_path: Path) -> None:
    source = tmp_path / "pkg"
    (source / "__pycache__").mkdir(parents=True)
    (source / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"x")
    (source / "m.py").write_text("X = 1\n")
    (tmp_path / "h.py").write_text("def handler(event, context): ...\n")
    root = staging_dir("t", {"handler.py": tmp_path / "h.py", "pkg": source})
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["handler.py", "pkg", "pkg/m.py"]


def test_redshift_sql_is_split_into_statements_and_rendered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "redshift").mkdir()
    (tmp_path / "redshift" / "10_b.sql").write_text("-- only a comment;\nSELECT 2;\n")
    (tmp_path / "redshift" / "00_a.sql").write_text(
        "-- schema\nCREATE EXTERNAL SCHEMA s FROM KINESIS\nIAM_ROLE '${redshift_role_arn}';\n\n"
        "CREATE VIEW v AS SELECT ';' AS semi FROM ${glue_database}.t;\n"
    )
    monkeypatch.setattr(warehouse, "WAREHOUSE_DIR", tmp_path)
    statements = warehouse.redshift_statements(stage("dev"), "arn:aws:iam::1:role/r")
    assert statements == [
        "-- schema\nCREATE EXTERNAL SCHEMA s FROM KINESIS\nIAM_ROLE 'arn:aws:iam::1:role/r'",
        "CREATE VIEW v AS SELECT ';' AS semi FROM rta_dev.t",
        "SELECT 2",
    ]


def test_flink_property_groups_come_from_the_job_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analytics, "FLINK_DIR", tmp_path)
    assert analytics.application_properties() == {}
    (tmp_path / "application_properties.json").write_text(
        '[{"PropertyGroupId": "job", "PropertyMap": {"runtime.mode": "streaming", "watermark.interval.ms": 200}}]'
    )
    assert analytics.application_properties() == {
        "job": {"runtime.mode": "streaming", "watermark.interval.ms": "200"}
    }
