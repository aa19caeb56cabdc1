"""The test harness's own rules: a missing tool never passes CI silently, and `eventually`
waits as long as needed and no longer."""

from __future__ import annotations

import sys

import pytest

import helpers
from conftest import need_service
from helpers import eventually, need_tool


class FakeClock:
    """Time that passes only when `eventually` sleeps: a timeout is tested without waiting."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


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


async def test_eventually_returns_the_first_true_value_of_a_plain_or_async_check() -> None:
    clock = FakeClock()
    answers = iter([0, [], "ready"])
    assert await eventually(lambda: next(answers), clock=clock) == "ready"
    assert clock.slept == [0.05, 0.05]

    async def found() -> int:
        return 7

    assert await eventually(found, clock=clock) == 7


async def test_eventually_retries_a_failing_assertion_and_raises_the_last_at_the_deadline() -> None:
    clock = FakeClock()
    calls = 0

    def check() -> bool:
        nonlocal calls
        calls += 1
        assert calls > 1000, f"only {calls} calls"
        return True

    with pytest.raises(
        AssertionError, match=r"timed out after 2 s waiting for calls: only 5 calls"
    ):
        await eventually(check, timeout=2, what="calls", every=0.5, clock=clock)
    assert clock.t == pytest.approx(1002.0)


async def test_eventually_says_what_a_falsy_check_last_returned() -> None:
    with pytest.raises(AssertionError, match=r"not true: \[\]"):
        await eventually(list, timeout=0.3, clock=FakeClock())


def test_a_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helpers, "IN_CI", True)
    monkeypatch.delenv("JUNTO_TEST_NO_SUCH_SERVICE", raising=False)
    with pytest.raises(pytest.fail.Exception, match="JUNTO_TEST_NO_SUCH_SERVICE is not set"):
        need_service("JUNTO_TEST_NO_SUCH_SERVICE", "A service")
