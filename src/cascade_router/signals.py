"""Confidence signals: pure functions of one SLM :class:`Generation`, its cleaned answer and the
passage it was asked about.

Every signal is defined for every generation: where it cannot be measured (no logprobs from
the backend, or no generated token) it is ``nan``, and routers treat ``nan`` as "no evidence"
(a threshold rule on a ``nan`` signal never fires; learned routers impute it).

Logprobs are natural logs; probabilities are ``exp(logprob)``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .metrics.normalize import answer_tokens
from .models.base import Generation
from .prompts import is_abstention

NAN = float("nan")


def length_words(gen: Generation, answer: str | None = None, context: str | None = None) -> float:
    """Answer length in whitespace-separated words (of the cleaned ``answer`` when given, else of
    the raw text). 0 for an empty answer."""
    text = gen.text if answer is None else answer
    return float(len(text.split()))


def length_tokens(gen: Generation, answer: str | None = None, context: str | None = None) -> float:
    """Generated answer tokens: ``len(tokens)`` where the backend returned them, else
    ``completion_tokens``. (llama.cpp bills a stop-string token in ``completion_tokens`` but
    returns no token or logprob for it; it is not part of the answer.)"""
    return float(len(gen.tokens) if gen.tokens else gen.completion_tokens)


def _lps(gen: Generation) -> np.ndarray | None:
    if gen.logprobs is None or len(gen.logprobs) == 0:
        return None
    return np.asarray(gen.logprobs, dtype=float)


def mean_logprob(gen: Generation, answer: str | None = None, context: str | None = None) -> float:
    """Mean of the per-token logprobs (nats per token); nan without logprobs or tokens."""
    lp = _lps(gen)
    return NAN if lp is None else float(lp.mean())


def min_logprob(gen: Generation, answer: str | None = None, context: str | None = None) -> float:
    """Minimum per-token logprob (the least confident token); nan without logprobs or tokens."""
    lp = _lps(gen)
    return NAN if lp is None else float(lp.min())


def _quantile(q: float) -> Callable[..., float]:
    def f(gen: Generation, answer: str | None = None, context: str | None = None) -> float:
        lp = _lps(gen)
        return NAN if lp is None else float(np.quantile(lp, q))  # numpy's default linear method

    f.__doc__ = (
        f"The {int(q * 100)}th percentile of the per-token logprobs (linear interpolation), a "
        "low-quantile aggregate after Gupta et al., 'Language Model Cascades: Token-level "
        "Uncertainty and Beyond', ICLR 2024. nan without logprobs or tokens."
    )
    return f


quantile_logprob_10 = _quantile(0.10)
quantile_logprob_25 = _quantile(0.25)


def _position_entropy(tops: list) -> float:
    lp = np.asarray([t.logprob for t in tops], dtype=float)
    p = np.exp(lp - lp.max())
    p /= p.sum()
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def mean_entropy(gen: Generation, answer: str | None = None, context: str | None = None) -> float:
    """Mean per-token entropy in nats, estimated from the truncated top-k distribution.

    At each generated position the top-k probabilities are renormalised to sum to 1 and
    ``H = -sum p log p`` is taken; the mean over positions is returned. Because the tail beyond
    the top k is dropped this underestimates the true entropy, and is bounded by ``log k``
    (1.609 nats for k=5). nan without top logprobs or tokens.
    """
    if not gen.top_logprobs:
        return NAN
    hs = [_position_entropy(t) for t in gen.top_logprobs if t]
    return float(np.mean(hs)) if hs else NAN


def first_token_margin(gen: Generation, answer: str | None = None, context: str | None = None) -> float:
    """Probability margin ``p(top-1) - p(top-2)`` at the first generated token, in [0, 1].

    After Ramirez et al., 'Optimising Calls to Large Language Models with Uncertainty-Based
    Two-Tier Selection', COLM 2024. With only one alternative reported the margin is ``p(top-1)``;
    nan without top logprobs or tokens.
    """
    if not gen.top_logprobs or not gen.top_logprobs[0]:
        return NAN
    ps = sorted((math.exp(t.logprob) for t in gen.top_logprobs[0]), reverse=True)
    return float(ps[0] - (ps[1] if len(ps) > 1 else 0.0))


def context_support(gen: Generation, answer: str | None = None, context: str | None = None) -> float:
    """Share of the answer's tokens that occur in the passage, in [0, 1] (1 = every token found).

    Both texts are normalised with the official SQuAD rule (``normalize_answer``: lower case, no
    ASCII punctuation, no articles) and split on whitespace; the share counts the answer's
    tokens (with repeats) found anywhere among the passage's tokens. An extractive answer the
    small model copied from the passage scores 1; an invented one scores low. This is the
    "answer grounded in the context" check used for extractive QA; on the stored SQuAD v1.1 and
    HotpotQA runs it is the strongest single signal (see the README). The official rule deletes
    punctuation inside words, so ``Voss`` copied from ``Voss's`` scores 0; splitting on
    non-word characters instead measured slightly worse on SQuAD v1.1 (APGR 0.646 vs 0.657,
    ``python benchmarks/router_variants.py results/squad-v1.1-n1000``).

    An empty answer (the model said nothing usable) has no support: 0. An abstention the task
    allows (SQuAD v2: the raw text says ``unanswerable`` and the cleaned answer is empty) is not
    an extractive answer and gets nan, as does a question without a passage (``context`` None
    or blank): the signal cannot be measured there. Uses the cleaned ``answer`` when given,
    else the raw text.
    """
    if context is None or not context.strip():
        return NAN
    toks = answer_tokens(gen.text if answer is None else answer)
    if not toks:
        return NAN if answer is not None and is_abstention(gen.text) else 0.0
    passage = set(answer_tokens(context))
    return float(sum(t in passage for t in toks) / len(toks))


#: Every signal by name: ``f(generation, cleaned_answer, passage) -> float``.
SIGNALS: dict[str, Callable[..., float]] = {
    "length_words": length_words,
    "length_tokens": length_tokens,
    "mean_logprob": mean_logprob,
    "min_logprob": min_logprob,
    "mean_entropy": mean_entropy,
    "first_token_margin": first_token_margin,
    "quantile_logprob_10": quantile_logprob_10,
    "quantile_logprob_25": quantile_logprob_25,
    "context_support": context_support,
}

#: +1 where a larger value means less confident (escalate), -1 where a smaller value does.
DIRECTION: dict[str, int] = {
    "length_words": 1,
    "length_tokens": 1,
    "mean_logprob": -1,
    "min_logprob": -1,
    "mean_entropy": 1,
    "first_token_margin": -1,
    "quantile_logprob_10": -1,
    "quantile_logprob_25": -1,
    "context_support": -1,
}


def compute_signals(gen: Generation, answer: str | None = None, context: str | None = None) -> dict[str, float]:
    """All :data:`SIGNALS` for one generation: ``{name: value}`` (values may be nan).

    Args:
        gen: the SLM's generation.
        answer: its cleaned answer (:func:`cascade_router.prompts.clean_answer`), or None to use
            the raw text.
        context: the passage the question was asked about, or None (``context_support`` is
            then nan).
    """
    return {name: f(gen, answer, context) for name, f in SIGNALS.items()}


#: Self-consistency signals (need sampled generations of the same tier; see
#: :func:`self_consistency`), with their escalation direction.
SELF_CONSISTENCY_DIRECTION: dict[str, int] = {"sc_agreement": -1, "sc_f1": -1, "sc_entropy": 1}


def self_consistency(answer: str, samples: list[str]) -> dict[str, float]:
    """Agreement of the greedy answer with ``k`` sampled answers of the same tier (Wang et al.
    2023, "Self-Consistency Improves Chain of Thought Reasoning"; as a routing signal: the
    AutoMix and FrugalGPT line of work). Answers are compared under the official SQuAD
    normalisation (:func:`~cascade_router.metrics.normalize.normalize_answer`).

    Returns:
        ``sc_agreement``: share of samples equal to the greedy answer (0..1);
        ``sc_f1``: mean token F1 of each sample against the greedy answer (0..1; the official
        SQuAD F1: two empty answers agree fully);
        ``sc_entropy``: entropy (nats) of the distribution of the normalised answers among the
        greedy answer and the samples. All nan without samples.
    """
    from collections import Counter

    from .metrics.answer import _overlap_prf
    from .metrics.normalize import normalize_answer

    if not samples:
        return {k: NAN for k in SELF_CONSISTENCY_DIRECTION}
    g = normalize_answer(answer)
    norm = [normalize_answer(s) for s in samples]
    gt = g.split()
    f1s = []
    for s in norm:
        st = s.split()
        f1s.append(float(st == gt) if not st or not gt else _overlap_prf(st, gt)[0])
    counts = np.array(list(Counter([g, *norm]).values()), dtype=float)
    p = counts / counts.sum()
    return {"sc_agreement": float(np.mean([s == g for s in norm])), "sc_f1": float(np.mean(f1s)),
            "sc_entropy": float(-(p * np.log(p)).sum())}
