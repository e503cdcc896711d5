"""Block-Recurrent Transformers (Hutchins et al., 2022): the brt engine from Python.

Load official Meliad checkpoints or brt models, score text, write text, stream long
documents. Computation releases the GIL; each model is used by one thread at a time.
"""

from os import PathLike
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

Tokens = Union[npt.ArrayLike, Sequence[int], Sequence[Sequence[int]]]
Text = Union[str, bytes]

class BrtError(Exception):
    """An error from brt, with its message (what went wrong and what to do)."""

def backends() -> List[str]:
    """The backends compiled into this package ("reference", "cpu", ...)."""

class Model:
    """A model on a backend, ready to score and write text."""

    def __init__(
        self,
        path: Union[str, PathLike],
        *,
        backend: Optional[str] = None,
        threads: int = 0,
        tokenizer: str = "bytes",
        abs_attention_scale: bool = False,
        window: Optional[int] = None,
    ) -> None:
        """Loads the model at `path` (brt safetensors, GGUF, or an official Meliad
        checkpoint) on `backend` ("cpu", "reference", "wgpu", "cuda"; default: the CPU
        backend) with `threads` CPU threads (0: every core). `tokenizer` is "bytes",
        "ids" or a tokenizer.json path. `abs_attention_scale` and `window` are for
        official checkpoints, as `brt`'s flags of the same names."""

    @staticmethod
    def builtin(*, backend: Optional[str] = None, threads: int = 0) -> "Model":
        """The built-in model (a small byte-level Shakespeare model)."""

    @property
    def backend(self) -> str:
        """The backend's name."""

    @property
    def vocab(self) -> int:
        """Vocabulary size (rows of the logits)."""

    @property
    def config(self) -> Dict[str, object]:
        """The configuration (the fields of brt's config.json)."""

    @property
    def fingerprint(self) -> str:
        """The model's fingerprint (16 hex digits; sessions remember it)."""

    def encode(self, text: Text) -> npt.NDArray[np.uint32]:
        """Token ids of `text` with the model's tokenizer."""

    def decode(self, tokens: Tokens) -> str:
        """The text of token ids (invalid UTF-8 replaced by U+FFFD)."""

    def logits(self, tokens: Tokens, *, chunk: int = 512) -> npt.NDArray[np.float32]:
        """Logits of every position: 1-D tokens (one document) give (T, V); 2-D
        (B, T) give (B, T, V). Each document is read from its start."""

    def score(self, text: Text, *, beyond: Optional[Sequence[int]] = None, chunk: int = 512) -> Dict[str, object]:
        """Scores `text` as one document, as `brt eval` scores a file: keys
        `bits_per_byte`, `bits_per_token`, `nats_per_token`, `nats` (the sum), `tokens`,
        `bytes`, `predictions`, `beyond` ({position: bits per token from there on})."""

    def session(self, batch: int = 1, chunk: int = 512) -> "Session":
        """A new session: `batch` documents streamed side by side, at most `chunk`
        tokens per row per call."""

    def load_session(self, path: Union[str, PathLike], chunk: int = 512) -> "Session":
        """Restores a session saved with `Session.save` (on any backend)."""

    def session_from_bytes(self, data: bytes, chunk: int = 512) -> "Session":
        """Restores a session from the bytes of `Session.to_bytes`."""

    def generate(
        self,
        prompt: Text,
        *,
        max_tokens: int = 256,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 0.95,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        presence_penalty: float = 0.0,
        seed: int = 0,
        stop: Optional[Sequence[str]] = None,
        stop_at_eos: bool = True,
        session: Optional["Session"] = None,
    ) -> str:
        """Continues `prompt` and returns the text written (the same text as `brt
        generate` with the same options). Continues `session` (batch 1) if given.
        Stops after `max_tokens`, at a `stop` string (not returned) or at the
        tokenizer's end of sequence (unless `stop_at_eos=False`)."""

    def generate_batch(
        self,
        prompts: Sequence[Text],
        *,
        max_tokens: int = 256,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 0.95,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        presence_penalty: float = 0.0,
        seed: int = 0,
        stop: Optional[Sequence[str]] = None,
        stop_at_eos: bool = True,
    ) -> List[str]:
        """Continues several prompts at once, one per row of a batch: row i draws with
        `seed + i` and writes what `generate` writes for its prompt alone with that
        seed. Much faster per token than one prompt at a time on the CPU backend."""

    def stream(
        self,
        prompt: Text,
        *,
        max_tokens: int = 256,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 0.95,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        presence_penalty: float = 0.0,
        seed: int = 0,
        stop: Optional[Sequence[str]] = None,
        stop_at_eos: bool = True,
        session: Optional["Session"] = None,
    ) -> "TextIterator":
        """Like `generate`, but an iterator of text pieces as they are written."""

class Session:
    """Documents streamed block by block: the carried state of `batch` rows."""

    @property
    def batch(self) -> int:
        """Documents fed side by side."""

    @property
    def tokens_seen(self) -> int:
        """Tokens fed to each row so far."""

    @property
    def model(self) -> Model:
        """The model it belongs to."""

    def feed(self, tokens: Tokens) -> npt.NDArray[np.float32]:
        """Feeds tokens (1-D for one row, 2-D (batch, T)) and returns their logits
        ((T, V) or (B, T, V))."""

    def last_logits(self) -> Optional[npt.NDArray[np.float32]]:
        """The logits of the last position fed to each row, (B, V); None before
        anything was fed."""

    def reset(self) -> None:
        """Starts a new document in every row."""

    def save(self, path: Union[str, PathLike]) -> None:
        """Saves the session to `path` (atomically)."""

    def to_bytes(self) -> bytes:
        """The bytes of the session file."""

    def state(self) -> npt.NDArray[np.float32]:
        """A copy of the carried state, flat (layout: the core's plan)."""

class TextIterator(Iterator[str]):
    """Text being written, piece by piece."""

    def __iter__(self) -> "TextIterator": ...
    def __next__(self) -> str: ...
    @property
    def finish(self) -> Optional[str]:
        """Why generation ended ("length", "end_of_sequence", "stop", "cancelled"),
        or None while it goes on."""

    @property
    def tokens(self) -> npt.NDArray[np.uint32]:
        """The token ids written so far."""

    @property
    def logprobs(self) -> npt.NDArray[np.float64]:
        """The model's log-probability (natural log, before penalties and temperature)
        of each token written so far."""
