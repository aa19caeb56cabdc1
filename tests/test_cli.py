"""The `junto` command line, run as an operator would: the installed entry point, real processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from junto import __version__

JUNTO = str(Path(sys.executable).with_name("junto"))


def run(
    *args: str, data_dir: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNTO_")}
    if data_dir is not None:
        env["JUNTO_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [JUNTO, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


# ---- help ---------------------------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "live public conversations" in result.stdout
    for command, explanation in [
        ("serve", "run the node"),
        ("migrate", "create or upgrade the database schema"),
        ("admin", "manage people"),
    ]:
        assert command in result.stdout and explanation in result.stdout


@pytest.mark.parametrize(
    ("command", "must_mention"),
    [
        (
            ["serve"],
            [
                "--host",
                "--port",
                "--data-dir",
                "--database-url",
                "--pubsub-url",
                "redis://",
                "Migrates the database first",
            ],
        ),
        (["migrate"], ["--data-dir", "--database-url", "Apply every pending database migration"]),
        (["admin"], ["create", "reset-password"]),
        (
            ["admin", "create"],
            ["username", "--display-name", "--password-stdin", "never appears in the process list"],
        ),
        (["admin", "reset-password"], ["username", "password reset"]),
    ],
)
def test_each_command_explains_itself(command: list[str], must_mention: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for words in must_mention:
        assert words in text, f"`junto {' '.join(command)} --help` does not mention {words!r}"


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"junto {__version__}"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["launch"], "invalid choice: 'launch'"),
        (["serve", "--port", "eighty"], "invalid int value: 'eighty'"),
    ],
)
def test_bad_usage_is_explained(args: list[str], complaint: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert "usage: junto" in result.stderr


# ---- migrate and admin --------------------------------------------------------------------------


def test_migrate_creates_the_database_in_a_fresh_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"  # does not exist yet
    result = run("migrate", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "database is up to date" in result.stdout
    with sqlite3.connect(data_dir / "junto.sqlite3") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"users", "conversations", "alembic_version"} <= tables
    assert version
    again = run("migrate", "--data-dir", str(data_dir))  # idempotent
    assert again.returncode == 0, again.stderr


@pytest.mark.postgres
def test_migrate_creates_the_schema_in_postgresql(postgres_url: str, tmp_path: Path) -> None:
    result = run("migrate", "--data-dir", str(tmp_path), "--database-url", postgres_url)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "junto.sqlite3").exists()  # the URL wins over the data dir


def test_data_dir_comes_from_the_environment_too(tmp_path: Path) -> None:
    result = run("migrate", data_dir=tmp_path / "from-env")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-env" / "junto.sqlite3").exists()


def test_admin_create_then_reset_password(tmp_path: Path) -> None:
    data = str(tmp_path)
    created = run(
        "admin",
        "create",
        "root",
        "--password-stdin",
        "--data-dir",
        data,
        stdin="a long enough secret\n",
    )
    assert created.returncode == 0, created.stderr
    assert "created administrator 'root'" in created.stdout
    assert "a long enough secret" not in created.stdout + created.stderr

    duplicate = run(
        "admin",
        "create",
        "root",
        "--password-stdin",
        "--data-dir",
        data,
        stdin="another secret here\n",
    )
    assert duplicate.returncode == 1
    assert "error: username 'root' is taken" in duplicate.stderr

    reset = run("admin", "reset-password", "root", "--data-dir", data)
    assert reset.returncode == 0, reset.stderr
    assert "/reset-password?token=" in reset.stdout

    unknown = run("admin", "reset-password", "nobody", "--data-dir", data)
    assert unknown.returncode == 1
    assert "error: " in unknown.stderr


# ---- serve --------------------------------------------------------------------------------------


def test_serve_starts_answers_healthz_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNTO_")}
    env["JUNTO_LOG_LEVEL"] = "warning"
    proc = subprocess.Popen(
        [JUNTO, "serve", "--port", str(port), "--data-dir", str(tmp_path / "node")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        if health is None:
            proc.kill()
            raise AssertionError(f"node did not answer:\n{proc.communicate(timeout=10)[0]}")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok"
        assert body["version"] == __version__
        assert body["database"] == "sqlite"  # the embedded defaults
        assert body["pubsub"] == "memory"
        assert (tmp_path / "node" / "junto.sqlite3").exists()
        assert (tmp_path / "node" / "secret.key").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why it ended.
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output
    assert f"Junto {__version__} serving on http://127.0.0.1:{port}/" in output


@pytest.mark.parametrize(
    ("pubsub_url", "complaint"),
    [
        pytest.param(
            "kafka://127.0.0.1:9092",
            "unsupported pub/sub URL 'kafka://127.0.0.1:9092'",
            id="unknown-scheme",
        ),
        # Nothing listens there: the node refuses to start rather than run without fan-out
        # (after retrying for 10 s, as Redis may still be starting next to it).
        pytest.param(
            "redis://127.0.0.1:{port}/0",
            "expected Redis at redis://127.0.0.1:{port}/0 to accept",
            id="redis-unreachable",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_serve_refuses_an_unusable_pubsub_url(
    tmp_path: Path, pubsub_url: str, complaint: str
) -> None:
    port = free_port()
    url, complaint = pubsub_url.format(port=port), complaint.format(port=port)
    result = run(
        "serve", "--port", str(free_port()), "--data-dir", str(tmp_path), "--pubsub-url", url
    )
    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr
