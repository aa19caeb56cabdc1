"""Strict JSON (RFC 8259) for everything clients send: HTTP request bodies and WebSocket frames.

Python's `json` module accepts `NaN`, `Infinity`, `-Infinity`, numbers that overflow to
infinity (`1e999`), unpaired UTF-16 surrogates (`"\\ud800"`) and UTF-16/32 bodies. None of these
can be stored or written back as JSON, so a value holding one breaks whatever touches it later
(a 500 while encoding an error, a row PostgreSQL refuses). orjson refuses all of them, so one
call here decides for every input path, and the reasons read the same over HTTP and WebSocket.
"""

from __future__ import annotations

from typing import Any

import orjson

RULES = "UTF-8, no NaN or Infinity, no unpaired surrogates"


class BadJson(ValueError):
    """The input is not strict JSON; the message says why (and never repeats the input)."""


def loads(data: bytes | str) -> Any:
    """The decoded value, or BadJson."""
    if isinstance(data, bytes):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            # orjson would call this "surrogates not allowed", which misleads.
            raise BadJson(f"expected JSON in UTF-8, got an invalid byte at {exc.start}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadJson(f"expected strict JSON ({RULES}): {exc}") from None
