"""The `junto` command line: run a node, migrate its database, administer people."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import ipaddress
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from junto import __version__
from junto.config import Settings, load_settings


def _add_node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        help="folder for the SQLite database, the secret key and media files "
        "(default: $JUNTO_DATA_DIR or ./junto-data)",
    )
    p.add_argument(
        "--database-url",
        help="SQLAlchemy async URL, e.g. postgresql+asyncpg://user:pw@host/db "
        "(default: SQLite inside the data dir)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="junto",
        description="Junto: live public conversations that become collective knowledge.",
    )
    parser.add_argument("--version", action="version", version=f"junto {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the node (web app, realtime hub) in the foreground",
        description="Run a Junto node. Migrates the database first, then serves HTTP and "
        "WebSocket on --host:--port until interrupted (Ctrl-C).",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8000)")
    serve.add_argument(
        "--pubsub-url",
        help="fan-out between node processes: memory:// (default, one process) or "
        "redis://host:port/0 (several processes sharing one database)",
    )
    _add_node_options(serve)

    migrate = sub.add_parser(
        "migrate",
        help="create or upgrade the database schema",
        description="Apply every pending database migration (Alembic) and exit.",
    )
    _add_node_options(migrate)

    admin = sub.add_parser("admin", help="manage people on this node")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    create = admin_sub.add_parser(
        "create",
        help="create a node administrator",
        description="Create a member with administrator rights. The password is read from "
        "--password-stdin or asked for interactively; it never appears in the process list.",
    )
    create.add_argument("username")
    create.add_argument("--display-name", help="name shown to others (default: the username)")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    _add_node_options(create)
    reset = admin_sub.add_parser(
        "reset-password",
        help="print a one-time password reset link for a member",
        description="Issue a password reset token for USERNAME and print the link to open.",
    )
    reset.add_argument("username")
    _add_node_options(reset)
    _add_job_commands(sub)
    _add_model_commands(sub)
    return parser


def _add_job_commands(sub: Any) -> None:
    worker = sub.add_parser(
        "worker",
        help="run a job worker (transcription, rendering) in the foreground",
        description="Run background jobs from the node's queue until SIGTERM or Ctrl-C; a job "
        "in progress then goes back to the queue. The node starts $JUNTO_WORKERS of these "
        "itself; run more, on this or other machines, for more jobs at once. Run `junto "
        "migrate` (or the node) first.",
    )
    worker.add_argument("--name", help="worker name shown in `junto jobs` (default: host-pid)")
    worker.add_argument(
        "--lease-seconds",
        type=float,
        default=30.0,
        help="a job whose worker stops renewing its lease for this long runs again elsewhere "
        "(default 30)",
    )
    worker.add_argument("--once", action="store_true", help="run the ready jobs, then exit")
    worker.add_argument(
        "--parent-pid",
        type=int,
        help="stop when this process is gone (the node passes its own pid, so its workers do "
        "not outlive a node that was killed)",
    )
    _add_node_options(worker)

    jobs = sub.add_parser(
        "jobs",
        help="show background jobs and their progress, retry failed ones",
        description="List jobs with a progress bar: queued, running and failed ones, and those "
        "finished in the last hour (--all: every recent job).",
    )
    jobs.add_argument("--conversation", metavar="SLUG", help="only this conversation's jobs")
    jobs.add_argument("--all", action="store_true", help="include older finished jobs")
    jobs.add_argument(
        "--watch", action="store_true", help="update every second until no job is queued or running"
    )
    _add_node_options(jobs)
    jobs_sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    retry = jobs_sub.add_parser(
        "retry", help="queue a failed job again", description="Queue failed job ID again."
    )
    retry.add_argument("id", type=int, metavar="ID")
    _add_node_options(retry)
    for action in retry._actions:
        # Given after ACTION or before it (`junto jobs --data-dir D retry 7`): the sub-command's
        # unset options must not overwrite what `jobs` parsed.
        if action.dest in ("data_dir", "database_url"):
            action.default = argparse.SUPPRESS


def _add_model_commands(sub: Any) -> None:
    models = sub.add_parser(
        "models",
        help="list or download speech models (captions, transcripts)",
        description="Speech models are faster-whisper names (tiny.en, base, small.en, ...) or "
        "folders of CTranslate2 weights. `list` (the default) says which model the live captions "
        "and the final transcript use and where each comes from; "
        "`pull NAME` downloads NAME from the Hugging Face Hub into the models folder "
        "($JUNTO_MODELS_DIR, default DATA_DIR/models), for machines that serve offline later.",
    )
    # `junto models` alone lists, like `junto models list`.
    models_sub = models.add_subparsers(dest="models_command", required=False, metavar="ACTION")
    listing = models_sub.add_parser("list", help="show the models this node uses and has")
    _add_node_options(listing)
    pull = models_sub.add_parser("pull", help="download a model into the models folder")
    pull.add_argument("name", metavar="NAME", help="e.g. base.en or Systran/faster-whisper-small")
    _add_node_options(pull)


def _models(settings: Settings, args: argparse.Namespace) -> int:
    from junto.speech import models

    if args.models_command in (None, "list"):
        print(models.describe_choice(settings, models.this_machine()))
        print()
        print(models.format_table(models.list_models(settings)))
        return 0
    try:
        path = models.pull(args.name, settings)
    except models.ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"pulled {args.name} into {path}")
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings().with_overrides(
        data_dir=getattr(args, "data_dir", None) and args.data_dir.resolve(),
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        pubsub_url=getattr(args, "pubsub_url", None),
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How `junto serve` runs uvicorn; bench/baseline_broadcast.py uses the same options."""
    return {
        # Frames up to 1 MiB reach the hub, which answers oversize ones (> ws_message_max_bytes)
        # with an error frame and keeps the connection; beyond 1 MiB uvicorn closes it (1009).
        "ws_max_size": 1 << 20,
        "backlog": 4096,
        "ws_ping_interval": settings.heartbeat_seconds,
        "ws_ping_timeout": settings.heartbeat_seconds * 2,
        # permessage-deflate (which every browser offers) keeps a zlib context per connection
        # (about 40 KB: 220 MB of RSS at 5,000 watchers) and compresses every fan-out frame once
        # per client; our frames are small, so it costs far more than it saves (bench/README.md).
        "ws_per_message_deflate": False,
        # A client's address (per-address limits, junto.web.security.client_address) is the TCP
        # peer's, unless it is a proxy the operator named: then its X-Forwarded-For header.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies) or None,
        "access_log": False,
    }


def tune_gc() -> None:
    """Keep garbage-collector pauses short with thousands of open connections."""
    # Each WebSocket holds ~200 GC-tracked objects, so 5,000 watchers are ~1M objects. With
    # CPython's default thresholds (700, 10, 10) the futures every fan-out creates survive a
    # young collection, pile up in the oldest generation and trigger full collections every
    # few seconds: 0.5-3 s stalls of the event loop (bench/README.md). A fan-out's objects die
    # by reference counting long before 100,000 allocations, so they are never promoted.
    gc.collect()
    gc.freeze()  # code and startup objects live forever: keep them out of every later scan
    gc.set_threshold(100_000, 50, 100)


def serve_problem(settings: Settings) -> str | None:
    """Why `junto serve` must not start with these settings, or None if it may.

    Every absolute link the node writes (feeds, Open Graph tags, oEmbed, invites) comes from
    `Settings.base_url`, never from a request's Host header. Without JUNTO_PUBLIC_URL that is the
    listening address, which is right only on this machine: a node reachable from others would
    hand out links to 0.0.0.0 or to an address behind a proxy.
    """
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return (
                "JUNTO_PUBLIC_URL must be an http(s) address such as https://junto.example.org, "
                f"got {settings.public_url!r}"
            )
        return None
    if _is_loopback(settings.host):
        return None
    return (
        f"--host {settings.host} accepts connections from other machines, but JUNTO_PUBLIC_URL "
        "is not set, so links in feeds, link previews and embeds could not reach this node. "
        "Set JUNTO_PUBLIC_URL to the address people use (e.g. "
        "JUNTO_PUBLIC_URL=https://junto.example.org), or listen on 127.0.0.1."
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _serve(settings: Settings) -> int:
    import uvicorn

    from junto.app import build_app

    problem = serve_problem(settings)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings)
    tune_gc()
    print(f"Junto {__version__} serving on http://{settings.host}:{settings.port}/", flush=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        **uvicorn_options(settings),
    )
    return 0


def _migrate(settings: Settings) -> int:
    from junto.storage.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    print("database is up to date")
    return 0


async def _with_db(settings: Settings, action: str, args: argparse.Namespace) -> int:
    from junto import accounts
    from junto.storage.engine import make_engine, make_sessionmaker

    engine = make_engine(settings.effective_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            if action == "create":
                password = _read_password(args.password_stdin)
                user = await accounts.create_member(
                    db,
                    username=args.username,
                    password=password,
                    display_name=args.display_name or args.username,
                    is_admin=True,
                )
                await db.commit()
                print(f"created administrator {user.username!r} (id {user.id})")
            else:
                token = await accounts.issue_password_reset(db, args.username)
                await db.commit()
                base = settings.base_url
                print(f"password reset link (valid 1 hour): {base}/reset-password?token={token}")
    except accounts.AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("error: the two passwords differ")
    return first


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    import os
    import socket

    from junto.jobs.worker import run_worker

    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    asyncio.run(
        run_worker(
            settings,
            name,
            once=args.once,
            lease_s=args.lease_seconds,
            handle_signals=True,
            parent_pid=args.parent_pid,
        )
    )
    return 0


def _jobs(settings: Settings, args: argparse.Namespace) -> int:
    from junto.jobs import console, queue
    from junto.storage.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    try:
        if args.jobs_command == "retry":
            print(asyncio.run(console.retry_job(settings, args.id)))
            return 0
        return asyncio.run(
            console.show_jobs(
                settings,
                sys.stdout,
                conversation=args.conversation,
                show_all=args.all,
                watch=args.watch,
            )
        )
    except (queue.JobError, console.ConsoleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    # One-shot commands print their own result line; library INFO logging is noise there.
    level = settings.log_level.upper() if args.command in ("serve", "worker") else "WARNING"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # start-up chatter
    if args.command == "serve":
        return _serve(settings)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "worker":
        return _worker(settings, args)
    if args.command == "jobs":
        return _jobs(settings, args)
    if args.command == "models":
        return _models(settings, args)
    from junto.storage.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    return asyncio.run(_with_db(settings, args.admin_command, args))


if __name__ == "__main__":
    raise SystemExit(main())
