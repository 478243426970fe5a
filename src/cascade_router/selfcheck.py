"""P(True): a tier asked whether its own answer is correct (Kadavath et al. 2022).

One extra call of the tier: its QA prompt, its answer, and the question "Is your answer
correct ...? Reply yes or no." (:func:`cascade_router.prompts.build_self_check_prompt`); the
first generated token's top alternatives give the probability of ``yes`` against ``no``.
Offline only for now (``eval --self-check`` adds it to a stored run; the report scores
``signal:p_true`` alone and inside a learned gate, charging the call to the first tier).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .cascade import fit_prompt
from .models.base import Backend, Generation
from .models.registry import prompt_variant
from .prompts import build_self_check_prompt

_YES = frozenset({"yes", "y", "true"})
_NO = frozenset({"no", "n", "false"})


@dataclass
class SelfCheck:
    """One self-check: ``p_true`` in [0, 1] (nan when neither ``yes`` nor ``no`` is among the
    first token's top alternatives) and the check's generation (its cost and seconds)."""

    p_true: float
    generation: Generation


def p_true(gen: Generation) -> float:
    """P(yes) / (P(yes) + P(no)) at the first generated position, summing the probabilities of
    the alternatives that read ``yes`` (``Yes``, `` yes``, ``YES``, ``true``) and ``no`` alike
    among the top-k (``Generation.top_logprobs[0]``; the generated token itself where the backend
    returned no alternatives). Normalising over the two answers follows Kadavath et al. 2022
    (P(True) over the two options).

    Returns:
        A probability in [0, 1]; nan when neither answer is among the alternatives.
    """
    alts: list[tuple[str, float]] = []
    if gen.top_logprobs and gen.top_logprobs[0]:
        alts = [(t.token, t.logprob) for t in gen.top_logprobs[0]]
    elif gen.tokens and gen.logprobs:
        alts = [(gen.tokens[0], gen.logprobs[0])]
    yes = no = 0.0
    for tok, lp in alts:
        word = tok.strip().strip(".,!:").lower()
        if not math.isfinite(lp):
            continue
        if word in _YES:
            yes += math.exp(lp)
        elif word in _NO:
            no += math.exp(lp)
    return yes / (yes + no) if yes + no > 0 else math.nan


def self_check(backend: Backend, question: str, context: str | None, answer: str, task: str) -> SelfCheck:
    """Ask ``backend`` whether ``answer`` (its own, cleaned) is correct; greedy, one token.

    The passage is cut to fit the context window as :func:`~cascade_router.cascade.ask_model` cuts it.

    Raises:
        ValueError: the ``chat`` task or an empty question. ModelError: the backend failed.
    """
    if not question or not question.strip():
        raise ValueError("question is empty")
    variant = prompt_variant(str(getattr(backend, "model_id", "")), task)
    prompt, truncated = fit_prompt(
        backend, lambda ctx: build_self_check_prompt(question, ctx, answer, task, backend.family, variant),
        context or "", max_tokens=1)
    gen = backend.generate(prompt)
    gen.truncated_context = truncated
    return SelfCheck(p_true(gen), gen)
