"""The URL policy: http(s) only, and hosts that resolve only to globally routable addresses unless allowed."""

from __future__ import annotations

import pytest

from app.errors import UsageError
from app.webhooks.addresses import address_refusal, check_url
from tests.support.webhooks import table_lookup

NAMES = table_lookup(
    {
        "bot.example": ["93.184.216.34"],
        "mixed.example": ["93.184.216.34", "192.168.1.20"],
        "v6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
        "mapped.example": ["::ffff:127.0.0.1"],
    }
)


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.8", "private"),
        ("172.16.4.1", "private"),
        ("192.168.1.20", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata services
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "not globally routable"),  # shared address space (carrier-grade NAT)
        ("::ffff:10.0.0.1", "private"),
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
    ],
)
def test_address_refusals(address: str, refusal: str | None) -> None:
    assert address_refusal(address) == refusal


@pytest.mark.parametrize("url", ["https://bot.example/hook", "http://bot.example:8080/a?b=c", "https://v6.example"])
async def test_public_urls_are_accepted(url: str) -> None:
    await check_url(url, allow_private=False, lookup=NAMES)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://bot.example/x", "only http:// and https://"),
        ("bot.example/hook", "only http:// and https://"),
        ("https://user:pw@bot.example/", "user:password@"),
        ("https:///path", "has no host"),
        ("https://bot.example:99999/", "invalid port"),
        ("https://bot.example/a b", "without spaces"),
        ("http://127.0.0.1:8080/", "127.0.0.1 is a loopback address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("https://mixed.example/", "mixed.example resolves to 192.168.1.20, a private address"),
        ("https://mapped.example/", "a loopback address"),
        ("https://unknown.example/", "does not resolve"),
    ],
)
async def test_refused_urls_say_why(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("?", r"\?").replace("[", r"\[")) as refused:
        await check_url(url, allow_private=False, lookup=NAMES)
    assert "\n" not in str(refused.value)


async def test_the_setting_allows_private_addresses_but_never_other_schemes() -> None:
    await check_url("http://127.0.0.1:8080/hook", allow_private=True, lookup=NAMES)
    await check_url("https://mixed.example/", allow_private=True, lookup=NAMES)
    with pytest.raises(UsageError, match="only http"):
        await check_url("file:///etc/passwd", allow_private=True, lookup=NAMES)
