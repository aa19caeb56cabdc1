"""`junto admin create` and `junto admin reset-password`, run as real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from helpers import csrf_headers, signin
from junto.config import Settings


def _junto(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNTO_")}
    return subprocess.run(
        [sys.executable, "-m", "junto", *args, "--data-dir", str(settings.data_dir),
         "--database-url", settings.effective_database_url],
        input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


async def test_admin_create_and_reset_password(
    app_client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    created = await asyncio.to_thread(
        _junto, settings, "admin", "create", "Root", "--display-name", "The Operator",
        "--password-stdin", stdin="admin password 1\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "created administrator 'root'" in created.stdout
    assert "admin password 1" not in created.stdout + created.stderr

    me = await signin(app_client, "root", "admin password 1")
    assert me["is_admin"] is True and me["name"] == "The Operator"

    duplicate = await asyncio.to_thread(
        _junto, settings, "admin", "create", "root", "--password-stdin", stdin="whatever 123\n"
    )
    assert duplicate.returncode == 1
    assert "username 'root' is taken" in duplicate.stderr

    weak = await asyncio.to_thread(
        _junto, settings, "admin", "create", "other", "--password-stdin", stdin="short\n"
    )
    assert weak.returncode == 1
    assert "password must be at least 8 characters" in weak.stderr

    reset = await asyncio.to_thread(_junto, settings, "admin", "reset-password", "root")
    assert reset.returncode == 0, reset.stderr
    token = reset.stdout.split("token=")[1].split()[0]
    r = await app_client.post(
        "/api/password/reset",
        json={"token": token, "password": "new admin password"},
        headers=await csrf_headers(app_client),
    )
    assert r.status_code == 200, r.text
    assert (await signin(app_client, "root", "new admin password"))["is_admin"] is True

    missing = await asyncio.to_thread(_junto, settings, "admin", "reset-password", "ghost")
    assert missing.returncode == 1
    assert "no member named 'ghost'" in missing.stderr
