"""Redshift SQL custom resource (CDK Provider framework's onEvent and isComplete): applies the
warehouse DDL and fails the deploy when Redshift rejects it. Glue only: see pipeline.warehouse.redshift_sql.

Standard library and the runtime's boto3 only, so the function needs no dependency layer.
"""

import logging
from typing import Any

from pipeline.aws import client
from pipeline.warehouse.redshift_sql import handle

logging.getLogger("pipeline").setLevel(logging.INFO)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, client("redshift-data"))
