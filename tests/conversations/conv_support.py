"""A real node in-process and several people (HTTP clients with their own cookies) on it.

Every test here runs on SQLite and on PostgreSQL (the `database_url` fixture). Test modules
import the `world` fixture from here: this folder has no conftest.py, because the root one is
imported by name as `conftest` (for LiveNode) and a second module of that name would shadow it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from helpers import World, open_world
from junto.config import Settings


@pytest.fixture(name="world")
async def world_fixture(settings: Settings) -> AsyncIterator[World]:
    async with open_world(settings, World) as world:
        yield world
