"""Raw archiver Lambda: Firehose's data transformation of events-raw into raw/ lines (glue only).

Standard library only, so the function needs no dependency layer: see pipeline.lake.raw.
"""

from typing import Any

from pipeline.lake.raw import firehose_transform


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return firehose_transform(event)
