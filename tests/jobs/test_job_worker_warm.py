"""A worker loads the transcript model before a conversation ends, not on its first track."""

from __future__ import annotations

import asyncio
import logging

import pytest
from jobs_support import Sessions, sessions_fixture  # noqa: F401 - fixture

from helpers import eventually
from junto.config import Settings
from junto.jobs.worker import run_worker


async def test_a_worker_loads_the_transcript_model_while_idle(
    settings: Settings, sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="junto.jobs")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, "warm", stop_event=stop, warm_up=True))

    def loaded() -> bool:
        if worker.done():  # it will not load anything now: fail at once
            pytest.fail("the worker stopped")
        return f"loaded {settings.transcript_model} ahead" in caplog.text

    try:
        await eventually(loaded, 120, what="the worker to load the model", every=0.1)
    finally:
        stop.set()
        await worker


async def test_a_worker_for_other_kinds_loads_no_model(
    settings: Settings, sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="junto.jobs")
    await run_worker(settings, "video", once=True, warm_up=True, kinds=["composite.render"])
    assert "ahead" not in caplog.text
