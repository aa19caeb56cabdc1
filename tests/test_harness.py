"""The test harness's own rules: a missing tool never passes CI silently."""

from __future__ import annotations

import sys

import pytest

import helpers
from helpers import need_tool


def test_a_missing_tool_skips_on_a_developers_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helpers, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="no-such-tool-junto is not installed"):
        need_tool("no-such-tool-junto", "nowhere")


def test_a_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helpers, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="required under CI"):
        need_tool("no-such-tool-junto", "nowhere")


def test_a_present_tool_gives_its_path() -> None:
    assert need_tool(sys.executable) == sys.executable
