import hashlib
import hmac
from typing import Any

import pytest

from pipeline.enrich.enrichment import GeoInfo, Pseudonymiser, enrich, geo_info, user_agent_info
from pipeline.enrich.pseudonym_key import DEV_PSEUDONYM_KEY, pseudonym_key


@pytest.mark.parametrize(
    ("user_agent", "family", "device", "is_bot"),
    [
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Googlebot",
            "Spider",
            True,
        ),
        (
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "bingbot",
            "Spider",
            True,
        ),
        ("python-requests/2.32 my-crawler", "my-crawler", "Spider", True),
        ("acme-spider/1.0", "acme-spider", "Spider", True),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.0 Mobile/15E148 Safari/604.1",
            "Mobile Safari",
            "iPhone",
            False,
        ),
    ],
)
def test_user_agent_and_bot_flag(user_agent: str, family: str, device: str | None, is_bot: bool) -> None:
    info = user_agent_info(user_agent)
    assert (info.ua_family, info.device_family, info.is_bot) == (family, device, is_bot)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("81.2.69.142", GeoInfo("GB", None, "Andrews & Arnold Ltd")),
        ("8.8.8.8", GeoInfo("US", None, "GOOGLE")),
        ("2001:4860:4860::8888", GeoInfo("US", None, "GOOGLE")),  # IPv6 from the bundled data file
        ("2a03:2880:f12f::1", GeoInfo("IN", None, "FACEBOOK")),
        ("10.0.0.1", GeoInfo(None, None, None)),  # private
        ("::1", GeoInfo(None, None, None)),  # loopback
        ("2001:db8::1", GeoInfo(None, None, None)),  # documentation range: not in the data
        ("not an ip", GeoInfo(None, None, None)),
    ],
)
def test_geo_from_ipv4_and_ipv6(ip: str, expected: GeoInfo) -> None:
    assert geo_info(ip) == expected


def test_pseudonyms_are_keyed_hmac_sha256_hex() -> None:
    p = Pseudonymiser(DEV_PSEUDONYM_KEY)
    assert p.pseudonym("u-1") == hmac.new(DEV_PSEUDONYM_KEY, b"u-1", hashlib.sha256).hexdigest()
    assert Pseudonymiser(b"another-key-of-16+bytes").pseudonym("u-1") != p.pseudonym("u-1")
    with pytest.raises(ValueError):
        Pseudonymiser(b"short")


def test_enrich_leaves_nulls_null_and_measures_skew() -> None:
    event: dict[str, Any] = {"event_time": 1_000, "user_id": None, "ip": None, "user_agent": None}
    enrich(event, 2, 1_500, Pseudonymiser(DEV_PSEUDONYM_KEY))
    assert (event["user_id"], event["ip"]) == (None, None)
    assert event["enrichment"]["event_time_skew_ms"] == 500
    assert event["enrichment"]["writer_version"] == 2
    assert event["enrichment"]["ua_family"] is None and event["enrichment"]["is_bot"] is False


def test_pseudonym_key_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("PSEUDONYM_KEY_SECRET", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.setenv("PIPELINE_STAGE", "local")
    from pipeline.config import stage

    stage.cache_clear()
    try:
        assert pseudonym_key() == DEV_PSEUDONYM_KEY
        monkeypatch.setenv("PSEUDONYM_KEY", "00" * 32)
        assert pseudonym_key() == bytes(32)
        monkeypatch.delenv("PSEUDONYM_KEY")
        monkeypatch.setenv("PIPELINE_STAGE", "prod")
        stage.cache_clear()
        with pytest.raises(RuntimeError, match="needs a pseudonym key"):
            pseudonym_key()
    finally:
        stage.cache_clear()
