"""The model-facing records and the backend interface every tier implements."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable


class ModelError(RuntimeError):
    """A model backend failed to produce a generation (unreachable, bad reply, crash).

    Attributes:
        tier: the name of the cascade tier that failed, where known (set by the cascade).
        partial: see ``__init__``.
    """

    def __init__(self, message: str = "", tier: str | None = None) -> None:
        super().__init__(message)
        self.tier = tier
        #: with ``on_error="raise"``, the result so far (the tiers that ran before the failure, their
        #: gate decisions, tokens and cost), so that a 503 still accounts for them; else None.
        self.partial = None


class ContextLengthError(ModelError):
    """The request itself does not fit a tier's context window (the question alone, before any
    passage): the client's mistake, not a failing tier (the server answers 400
    ``context_length_exceeded``).

    Attributes:
        n_tokens: tokens the prompt takes; n_ctx: the window, tokens.
    """

    def __init__(self, message: str = "", tier: str | None = None, n_tokens: int = 0, n_ctx: int = 0) -> None:
        super().__init__(message, tier)
        self.n_tokens = int(n_tokens)
        self.n_ctx = int(n_ctx)


@dataclass
class TokenTop:
    """One alternative at a generated position: the token string and its natural-log probability."""

    token: str
    logprob: float


@dataclass
class Generation:
    """One generation by one model.

    Attributes:
        text: the raw completion text (before answer clean-up).
        tokens: generated token strings, shape ``(n,)``.
        logprobs: natural-log probability of each generated token, shape ``(n,)``;
            ``None`` when the backend returned no logprobs.
        top_logprobs: for each generated position, the top-k alternatives (k <= ``top_k``),
            best first, shape ``(n, <=k)``; ``None`` when the backend returned none.
        prompt_tokens: tokens in the prompt as sent.
        completion_tokens: tokens generated, as billed by the backend; llama.cpp counts a
            stop-string token here that has no entry in ``tokens``/``logprobs``.
        cached_prompt_tokens: prompt tokens served from the KV/prompt cache, where the backend
            reports them (``None`` otherwise). Prompt tokens evaluated = prompt - cached.
        finish_reason: ``"stop"``, ``"length"``, ... as the backend reports it.
        latency_s: wall-clock seconds for the call, as seen by the caller.
        model: the model id that produced it.
        prompt_ms: milliseconds the backend spent on the prompt, where reported.
        predicted_ms: milliseconds the backend spent generating, where reported.
        truncated_context: True when the passage was cut to fit the context window.
    """

    text: str
    tokens: list[str] = field(default_factory=list)
    logprobs: list[float] | None = None
    top_logprobs: list[list[TokenTop]] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int | None = None
    finish_reason: str | None = None
    latency_s: float = 0.0
    model: str = ""
    prompt_ms: float | None = None
    predicted_ms: float | None = None
    truncated_context: bool = False

    @property
    def has_logprobs(self) -> bool:
        """True when per-token logprobs came back (possibly an empty list for an empty answer)."""
        return self.logprobs is not None

    def to_dict(self) -> dict:
        """A JSON-serialisable dict; inverse of :meth:`from_dict`."""
        return asdict(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Generation":
        """Rebuild a Generation from the JSON of :meth:`to_dict` (e.g. a stored run's row).

        Types are checked strictly by pydantic (a string where a number belongs, a bool where a
        count belongs, a malformed ``top_logprobs`` entry are errors); unknown fields are ignored.

        Raises:
            ValueError: not JSON, not an object, no ``text``, a field of the wrong type (the
                message names the field), a negative token count, or ``logprobs`` not matching
                ``tokens`` in length.
        """
        from pydantic import ValidationError

        if not isinstance(text, (str, bytes)):
            raise ValueError(f"a generation must be JSON text, got {type(text).__name__}")
        try:
            g = _adapter(cls).validate_json(text, strict=True)
        except ValidationError as e:
            err = e.errors()[0]
            if err["type"] == "json_invalid":
                raise ValueError(f"generation is not valid JSON: {err['msg']}") from None
            if not err["loc"]:
                raise ValueError("a generation must be a JSON object") from None
            where = f" at {'.'.join(map(str, err['loc']))}" if len(err["loc"]) > 1 else ""
            raise ValueError(f"generation field {err['loc'][0]!r}{where}: {err['msg']}") from None
        counts = {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens,
                  "cached_prompt_tokens": g.cached_prompt_tokens}
        bad = [k for k, v in counts.items() if v is not None and v < 0]
        if bad:
            raise ValueError(f"generation field {bad[0]!r} must be a count (>= 0), got {counts[bad[0]]}")
        if g.tokens and g.logprobs is not None and len(g.logprobs) != len(g.tokens):
            raise ValueError(f"generation has {len(g.logprobs)} logprobs for {len(g.tokens)} tokens")
        return g

    @classmethod
    def from_dict(cls, d: dict) -> "Generation":
        """Rebuild a Generation from :meth:`to_dict` output; checked as :meth:`from_json`.

        Raises:
            ValueError: as :meth:`from_json`.
        """
        return cls.from_json(json.dumps(d))


@functools.cache
def _adapter(cls):
    """pydantic's validator for a dataclass, built once per class (building it takes ms)."""
    from pydantic import TypeAdapter

    return TypeAdapter(cls)


@dataclass
class Prompt:
    """What a backend is asked to complete: either chat ``messages`` or a raw ``text`` prompt.

    ``stop`` lists stop strings; ``max_tokens`` bounds the completion length (tokens);
    ``temperature`` 0 is greedy decoding (the default; every gate and evaluation uses it), > 0
    samples (self-consistency), with ``seed`` making a sample reproducible where the backend
    honours it.
    """

    messages: list[dict] | None = None
    text: str | None = None
    stop: list[str] = field(default_factory=list)
    max_tokens: int = 32
    temperature: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.text is None):
            raise ValueError("Prompt needs exactly one of 'messages' or 'text'")


@runtime_checkable
class Backend(Protocol):
    """A model tier. Implementations: :class:`LlamaCppBackend`, :class:`OpenAICompatBackend`."""

    model_id: str
    family: str  # prompt family: "chat" (instruct, chat template) or "base" (few-shot completion)
    n_ctx: int | None  # context window in tokens, where known

    def generate(self, prompt: Prompt) -> Generation:
        """Run one greedy generation. Raises :class:`ModelError` on failure."""
        ...

    def prompt_tokens(self, prompt: Prompt) -> int | None:
        """Tokens ``prompt`` occupies in the context window, or ``None`` if unknown (then no
        passage truncation happens on our side)."""
        ...

    def close(self) -> None:
        """Release the model (threads, memory, sockets)."""
        ...
