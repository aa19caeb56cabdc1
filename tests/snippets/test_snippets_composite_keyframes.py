"""The composite that snippets are cut from has a keyframe every second (junto.compositing), so
a stream-copied clip decodes at most a second it does not show."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
from pathlib import Path

import pytest
from compositing_support import Speech, seed
from sqlalchemy import select

from helpers import need_tool
from junto.config import Settings
from junto.jobs import queue
from junto.jobs.worker import run_worker
from junto.storage.engine import make_engine, make_sessionmaker
from junto.storage.migrate import upgrade
from junto.storage.tables import ConversationMedia


async def test_the_composite_has_a_keyframe_every_second(tmp_path: Path) -> None:
    need_tool("ffprobe", "Debian package ffmpeg")
    settings = Settings(data_dir=tmp_path / "data", secret_key="test", workers=0)
    settings.data_dir.mkdir(parents=True)
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    try:
        sessions = make_sessionmaker(engine)
        conv_id = await seed(sessions, settings, [Speech("ana", 0.0, 6.5)])
        async with sessions() as db:
            await queue.enqueue(
                db, "composite.render", {"conversation_id": conv_id}, conversation_id=conv_id
            )
            await db.commit()
        await run_worker(settings, "w-gop", once=True)
        async with sessions() as db:
            media = await db.scalar(
                select(ConversationMedia).where(
                    ConversationMedia.conversation_id == conv_id,
                    ConversationMedia.kind == "composite",
                )
            )
        assert media is not None
    finally:
        await engine.dispose()
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "packet=pts_time,flags", "-of", "json", str(settings.data_dir / media.path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    keys = [float(p["pts_time"]) for p in json.loads(out)["packets"] if "K" in p["flags"]]
    assert keys[0] == pytest.approx(0.0, abs=0.11)
    gaps = [b - a for a, b in itertools.pairwise(keys)]
    assert len(keys) >= 6 and all(abs(g - 1.0) < 0.01 for g in gaps), keys
