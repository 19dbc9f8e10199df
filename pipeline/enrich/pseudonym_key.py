"""Where the pseudonymisation key comes from: env var, Secrets Manager (in AWS), or a fixed dev key locally."""

from __future__ import annotations

import os

from pipeline.aws import client
from pipeline.config import stage

# DEV ONLY, NOT A SECRET: lets the `local` stage run without a secret store. Pseudonyms made with it
# are reversible by anyone with this repository; `pseudonym_key()` refuses it for any other stage.
DEV_PSEUDONYM_KEY = b"rta-local-DEV-ONLY-pseudonym-key-not-secret"
LOCAL_STAGES = frozenset({"local"})


def pseudonym_key() -> bytes:
    """$PSEUDONYM_KEY (hex), else the Secrets Manager secret $PSEUDONYM_KEY_SECRET (default: the stage's
    `pseudonym_key_secret`) when running in Lambda, else the dev key for the local stage."""
    if explicit := os.environ.get("PSEUDONYM_KEY"):
        return bytes.fromhex(explicit)
    secret_name = os.environ.get("PSEUDONYM_KEY_SECRET")
    the_stage = stage()
    if secret_name or os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        response = client("secretsmanager").get_secret_value(
            SecretId=secret_name or the_stage.pseudonym_key_secret
        )
        if "SecretBinary" in response:
            return bytes(response["SecretBinary"])
        return str(response["SecretString"]).encode()
    if the_stage.name in LOCAL_STAGES:
        return DEV_PSEUDONYM_KEY
    raise RuntimeError(
        f"stage {the_stage.name!r} needs a pseudonym key: set PSEUDONYM_KEY or PSEUDONYM_KEY_SECRET"
    )
