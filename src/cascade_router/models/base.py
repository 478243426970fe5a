"""The model-facing records and the backend interface every tier implements."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable


class ModelError(RuntimeError):
    """A model backend failed to produce a generation (unreachable, bad reply, crash)."""


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
    def from_dict(cls, d: dict) -> "Generation":
        """Rebuild a Generation from :meth:`to_dict` output (e.g. a stored run's row).

        Raises:
            ValueError: ``d`` is not a dict, lacks ``text``, or a field has the wrong type
                (the message names the field); ``logprobs`` not matching ``tokens`` in length.
        """
        if not isinstance(d, dict):
            raise ValueError(f"a generation must be a JSON object, got {type(d).__name__}")
        d = dict(d)
        if "text" not in d:
            raise ValueError("generation lacks the field 'text'")
        _check_fields(d)
        tops = d.get("top_logprobs")
        if tops is not None:
            d["top_logprobs"] = [[TokenTop(t["token"], float(t["logprob"])) for t in pos] for pos in tops]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_top(t) -> bool:
    return isinstance(t, dict) and isinstance(t.get("token"), str) and _is_num(t.get("logprob"))


#: Field -> (check, what it must be) for :meth:`Generation.from_dict`; None passes where allowed.
_FIELD_CHECKS = {
    "text": (lambda v: isinstance(v, str), "a string"),
    "tokens": (lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v), "a list of strings"),
    "logprobs": (lambda v: v is None or (isinstance(v, list) and all(_is_num(x) for x in v)), "null or a list of numbers"),
    "top_logprobs": (lambda v: v is None or (isinstance(v, list) and all(isinstance(p, list) and all(_is_top(t) for t in p) for p in v)),
                     'null or a list of lists of {"token": str, "logprob": number}'),
    "prompt_tokens": (_is_count, "a count (int >= 0)"),
    "completion_tokens": (_is_count, "a count (int >= 0)"),
    "cached_prompt_tokens": (lambda v: v is None or _is_count(v), "null or a count"),
    "finish_reason": (lambda v: v is None or isinstance(v, str), "null or a string"),
    "latency_s": (_is_num, "a number of seconds"),
    "model": (lambda v: isinstance(v, str), "a string"),
    "prompt_ms": (lambda v: v is None or _is_num(v), "null or a number"),
    "predicted_ms": (lambda v: v is None or _is_num(v), "null or a number"),
    "truncated_context": (lambda v: isinstance(v, bool), "true or false"),
}


def _check_fields(d: dict) -> None:
    for name, (ok, what) in _FIELD_CHECKS.items():
        if name in d and not ok(d[name]):
            raise ValueError(f"generation field {name!r} must be {what}, got {d[name]!r:.80}")
    toks, lps = d.get("tokens") or [], d.get("logprobs")
    if toks and lps is not None and len(lps) != len(toks):
        raise ValueError(f"generation has {len(lps)} logprobs for {len(toks)} tokens")


@dataclass
class Prompt:
    """What a backend is asked to complete: either chat ``messages`` or a raw ``text`` prompt.

    ``stop`` lists stop strings; ``max_tokens`` bounds the completion length (tokens).
    """

    messages: list[dict] | None = None
    text: str | None = None
    stop: list[str] = field(default_factory=list)
    max_tokens: int = 32

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
