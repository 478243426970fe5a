"""The cascade: SLM -> confidence signals -> router -> accept the SLM answer | escalate to the LLM."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

from .models.base import Backend, Generation, ModelError
from .prompts import build_prompt, check_task, clean_answer
from .routers.base import Reason, Router
from .signals import compute_signals

log = logging.getLogger(__name__)

#: Tokens kept free beside the prompt and the answer budget when fitting a passage.
CONTEXT_MARGIN = 8

#: Tokens a tokenizer may add beyond one per UTF-8 byte (BOS, a SentencePiece dummy prefix).
#: Byte-level BPE and SentencePiece with byte fallback never emit a token covering zero bytes
#: of the text, so ``tokens <= bytes + SPECIAL_TOKEN_SLACK`` for a raw text prompt.
SPECIAL_TOKEN_SLACK = 4


def _surely_fits(prompt, budget: int) -> bool:
    """True when a raw text prompt fits ``budget`` tokens without tokenizing it.

    Chat prompts return False: the template adds text we do not see here.
    """
    return prompt.text is not None and len(prompt.text.encode("utf-8")) + SPECIAL_TOKEN_SLACK <= budget


@dataclass
class TierAnswer:
    """One tier's answer to one question: the cleaned answer and the raw generation."""

    answer: str
    generation: Generation


def ask_model(
    backend: Backend,
    question: str,
    context: str | None = None,
    task: str = "squad",
    max_tokens: int = 24,
    style: str = "short",
) -> TierAnswer:
    """Ask one model one question with the prompt for its family and the task.

    Passage-length policy: when the backend knows its context window (llama.cpp) and the prompt
    plus ``max_tokens`` would not fit, the passage is cut from the end, keeping its start, until
    it fits; a warning is logged and ``Generation.truncated_context`` is set. Endpoints whose
    window is unknown get the whole passage (their own error becomes a :class:`ModelError`).
    A raw text prompt whose UTF-8 byte count already fits is not tokenized (a token covers at
    least one byte), which saves a tokenizer call on most SQuAD questions.

    Args:
        backend: the model.
        question: non-empty question text.
        context: the passage, or None.
        task: see :data:`cascade_router.prompts.TASKS`.
        max_tokens: answer budget in tokens.
        style: chat prompt style (see :func:`build_prompt`).

    Raises:
        ValueError: empty question or unknown task. ModelError: the backend failed.
    """
    if not question or not question.strip():
        raise ValueError("question is empty")
    check_task(task)
    context = context or ""
    prompt = build_prompt(question, context, task, backend.family, max_tokens=max_tokens, style=style)
    truncated = False
    n_ctx = getattr(backend, "n_ctx", None)
    counter = getattr(backend, "prompt_tokens", None)
    if n_ctx and counter is not None:
        budget = n_ctx - max_tokens - CONTEXT_MARGIN
        for _ in range(8):
            if _surely_fits(prompt, budget):
                break
            n = counter(prompt)
            if n is None or n <= budget:
                break
            if not context:
                raise ModelError(f"{backend.model_id}: question alone ({n} tokens) exceeds the context window ({n_ctx})")
            keep = max(0, int(len(context) * (1 - (n - budget) / max(n, 1)) * 0.97) - 1)
            context = context[:keep]
            truncated = True
            prompt = build_prompt(question, context, task, backend.family, max_tokens=max_tokens, style=style)
        if truncated:
            log.warning(
                "%s: passage truncated to %d characters to fit the %d-token context window",
                backend.model_id, len(context), n_ctx,
            )
    gen = backend.generate(prompt)
    gen.truncated_context = truncated
    return TierAnswer(clean_answer(gen.text, allow_abstain=(task == "squad-v2")), gen)


@dataclass
class CascadeResult:
    """The outcome of one question through the cascade.

    Attributes:
        answer: the final answer (the LLM's if escalated, else the SLM's).
        route: ``"slm"`` or ``"llm"`` (the tier whose answer is final).
        escalated: the router asked for the LLM (True even if the LLM then failed).
        slm_answer, llm_answer: each tier's cleaned answer (``llm_answer`` None if not run).
        signals: the SLM's confidence signals ``{name: value}``.
        decision_score, threshold: the router's score and threshold (escalate iff score > threshold).
        reasons: per-signal explanation (value beside threshold).
        slm, llm: the raw generations (``llm`` None if not run).
        cost_usd: dollars for this question; an escalated question pays both tiers.
        latency_s: seconds, sum over the tiers that ran.
        degraded: escalation failed and the SLM answer was returned instead.
        error: the LLM error message when degraded.
    """

    question: str
    answer: str
    route: str
    escalated: bool
    slm_answer: str
    llm_answer: str | None
    signals: dict[str, float]
    decision_score: float
    threshold: float
    reasons: list[Reason]
    slm: Generation
    llm: Generation | None = None
    cost_usd: float = 0.0
    latency_s: float = 0.0
    degraded: bool = False
    error: str | None = None

    @property
    def total_tokens(self) -> int:
        """Prompt + completion tokens over the tiers that ran."""
        gens = [g for g in (self.slm, self.llm) if g is not None]
        return sum(g.prompt_tokens + g.completion_tokens for g in gens)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (nan signals become None)."""
        d = asdict(self)
        d["signals"] = {k: (None if v != v else v) for k, v in self.signals.items()}
        for r in d["reasons"]:
            if r["value"] != r["value"]:
                r["value"] = None
        d["total_tokens"] = self.total_tokens
        return d


@dataclass
class Cascade:
    """A two-tier cascade.

    Args:
        slm: the small model (answers first; its signals drive routing).
        llm: the large model (answers escalated questions).
        router: decides escalation from the SLM's signals.
        slm_price, llm_price: per-tier prices (:class:`cascade_router.evaluation.costs.TierPrice`),
            or None for free.
        max_tokens: answer budget per tier, tokens.
        on_llm_error: ``"degrade"`` (return the SLM answer marked ``degraded``) or ``"raise"``.
        style: chat prompt style (see :func:`cascade_router.prompts.build_prompt`).
    """

    slm: Backend
    llm: Backend
    router: Router
    slm_price: Any = None
    llm_price: Any = None
    max_tokens: int = 24
    on_llm_error: str = "degrade"
    style: str = "short"

    def _cost(self, price: Any, gen: Generation | None) -> float:
        if price is None or gen is None:
            return 0.0
        return float(price.cost(gen.prompt_tokens, gen.completion_tokens))

    def answer(self, question: str, context: str | None = None, task: str = "squad", force: str | None = None) -> CascadeResult:
        """Answer one question.

        Args:
            question: non-empty question.
            context: the passage (or None).
            task: prompt task (``squad``, ``squad-v2``, ``hotpotqa``, ``open``).
            force: ``"slm"`` or ``"llm"`` to skip routing and use that tier alone.

        Raises:
            ValueError: empty question, unknown task or ``force``.
            ModelError: the SLM failed, or the LLM failed with ``on_llm_error="raise"``.
        """
        if force not in (None, "slm", "llm"):
            raise ValueError(f"force must be 'slm' or 'llm', got {force!r}")
        if force == "llm":
            la = ask_model(self.llm, question, context, task, self.max_tokens, self.style)
            return CascadeResult(
                question, la.answer, "llm", True, "", la.answer, {}, float("inf"), 0.0, [],
                slm=Generation(text="", model=self.slm.model_id), llm=la.generation,
                cost_usd=self._cost(self.llm_price, la.generation), latency_s=la.generation.latency_s,
            )
        sa = ask_model(self.slm, question, context, task, self.max_tokens, self.style)
        signals = compute_signals(sa.generation, sa.answer, context)
        score = float(self.router.decision_function(signals)[0])  # drawn once (random router)
        escalate = force is None and not math.isnan(score) and score > self.router.threshold
        res = CascadeResult(
            question, sa.answer, "slm", escalate, sa.answer, None, signals, score,
            float(self.router.threshold), self.router.explain(signals), slm=sa.generation,
            cost_usd=self._cost(self.slm_price, sa.generation), latency_s=sa.generation.latency_s,
        )
        if not escalate:
            return res
        try:
            la = ask_model(self.llm, question, context, task, self.max_tokens, self.style)
        except ModelError as e:
            if self.on_llm_error == "raise":
                raise
            log.warning("LLM tier failed, answering with the SLM (degraded): %s", e)
            res.degraded, res.error = True, str(e)
            return res
        res.answer, res.route, res.llm_answer, res.llm = la.answer, "llm", la.answer, la.generation
        res.cost_usd += self._cost(self.llm_price, la.generation)
        res.latency_s += la.generation.latency_s
        return res

    def close(self) -> None:
        """Close both tiers."""
        self.slm.close()
        self.llm.close()
