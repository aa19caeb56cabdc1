"""Pure parts of accounts and security: rate limiting, colours, origins, redirects."""

from __future__ import annotations

import pytest
from starlette.requests import HTTPConnection

from junto.accounts import (
    PALETTE,
    AccountError,
    clean_colour,
    clean_display_name,
    contrast_on_white,
    normalize_username,
)
from junto.ratelimit import TokenBucket
from junto.web.accounts_pages import safe_next
from junto.web.security import origin_allowed


def test_bucket_allows_a_burst_then_asks_to_wait() -> None:
    bucket = TokenBucket(burst=3, per_second=0.5)
    assert [bucket.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("a", now=0.0) == pytest.approx(2.0)
    assert bucket.take("b", now=0.0) == 0.0  # keys are independent
    assert bucket.take("a", now=1.0) == pytest.approx(1.0)
    assert bucket.take("a", now=2.0) == 0.0  # one token refilled


def test_bucket_forgets_idle_keys_and_caps_memory() -> None:
    bucket = TokenBucket(burst=2, per_second=1.0, max_keys=100)
    for i in range(50):
        bucket.take(f"k{i}", now=0.0)
    assert len(bucket) == 50
    bucket.take("late", now=10.0)  # everyone else has refilled: forgotten
    assert len(bucket) == 1
    for i in range(1000):
        bucket.take(f"flood{i}", now=20.0)
    assert len(bucket) == 100


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="expected burst >= 1"):
        TokenBucket(burst=0, per_second=1)


def test_palette_is_readable_on_white_and_distinct() -> None:
    assert len(set(PALETTE)) == len(PALETTE) >= 8
    assert all(contrast_on_white(c) >= 4.5 for c in PALETTE)


@pytest.mark.parametrize(
    ("colour", "ok"),
    [("#000000", True), ("#767676", True), ("#777777", False), ("#ffff00", False)],
)
def test_colour_contrast_rule(colour: str, ok: bool) -> None:
    if ok:
        assert clean_colour(colour.upper()) == colour
    else:
        with pytest.raises(AccountError, match=r"expected at least 4.5:1"):
            clean_colour(colour)


def test_names() -> None:
    assert normalize_username("  Mixed_Case9 ") == "mixed_case9"
    with pytest.raises(AccountError, match="letters a-z"):
        normalize_username("émile")
    assert clean_display_name("  Ada  ") == "Ada"
    with pytest.raises(AccountError, match="control"):
        clean_display_name("evil\u202eeman")  # right-to-left override spoofing
    with pytest.raises(AccountError, match="at most 64"):
        clean_display_name("x" * 65)


def _conn(headers: dict[str, str], public_url: str = "") -> HTTPConnection:
    from types import SimpleNamespace

    app = SimpleNamespace(state=SimpleNamespace(settings=SimpleNamespace(public_url=public_url)))
    scope = {
        "type": "http",
        "app": app,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return HTTPConnection(scope)


@pytest.mark.parametrize(
    ("headers", "public_url", "allowed"),
    [
        ({"host": "127.0.0.1:8000"}, "", True),  # no Origin: not a browser
        ({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"}, "", True),
        ({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:9000"}, "", False),
        ({"host": "junto.example", "origin": "https://junto.example"}, "", True),
        ({"host": "junto.example:443", "origin": "https://junto.example"}, "", True),
        ({"host": "junto.example", "origin": "https://evil.example"}, "", False),
        ({"host": "10.0.0.5:8000", "origin": "https://junto.example"}, "https://junto.example",
         True),
        ({"host": "junto.example", "origin": "null"}, "", False),
    ],
)  # fmt: skip
def test_origin_allowed(headers: dict[str, str], public_url: str, allowed: bool) -> None:
    assert origin_allowed(_conn(headers, public_url)) is allowed


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/c/abc?x=1", "/c/abc?x=1"),
        ("", "/"),
        (None, "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("relative", "/"),
        ("/ok\nSet-Cookie: x", "/"),
    ],
)
def test_safe_next(raw: str | None, expected: str) -> None:
    assert safe_next(raw) == expected
