"""Run every tier once on every question and persist each generation as it comes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

from tqdm import tqdm

from ..cascade import ask_model
from ..datasets import QAExample
from ..models.base import Backend, ModelError
from .store import RunStore

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """What one call of :func:`run_generations` did.

    Attributes:
        generated: generations stored now; reused: of those, copied from another tier with the
        same backend (greedy decoding gives the same answer; no model call); skipped: already
        stored (resume); errors: questions
        whose generation failed (recorded, not scored); wall_s: seconds of wall time;
        model_s: seconds inside the models (sum of generation latencies).
    """

    generated: int = 0
    skipped: int = 0
    reused: int = 0
    errors: int = 0
    wall_s: float = 0.0
    model_s: float = 0.0


def run_generations(
    examples: Sequence[QAExample],
    tiers: Mapping[str, Backend],
    store: RunStore,
    task: str,
    max_tokens: int = 24,
    progress: bool = True,
) -> RunStats:
    """Answer every question with every tier, skipping what the store already holds.

    Questions are taken in the given order (grouped by passage, see
    :func:`cascade_router.datasets.sample`), and for each question every tier runs in turn, so
    each model's single llama.cpp slot still holds the same passage for the next question and
    reuses its prompt prefix. Tiers that share one backend object (the same model spec and
    options) are asked once per question and the generation is stored for each of them. A failure of one model on one question is stored as an error for
    that (question, tier) and the run goes on.

    Args:
        examples: the questions, in run order.
        tiers: ``{tier name: backend}`` in cascade order (any names; a backend may serve two
            tiers).
        store: where results go (committed row by row).
        task: prompt task.
        max_tokens: answer budget per generation, tokens.
        progress: show a tqdm progress bar (questions/s and ETA).

    Returns:
        :class:`RunStats`.
    """
    for backend in tiers.values():  # an evaluation stores every tier's signals
        if hasattr(backend, "need_logprobs"):
            backend.need_logprobs = True
    done = store.done()
    stats = RunStats()
    t0 = time.perf_counter()
    todo = [ex for ex in examples if any((ex.id, t) not in done for t in tiers)]
    stats.skipped = sum((ex.id, t) in done for ex in examples for t in tiers)
    bar = tqdm(todo, desc="questions", unit="q", disable=not progress, dynamic_ncols=True)
    for ex in bar:
        made: dict[int, object] = {}  # backend id -> this question's answer (greedy: same for a shared backend)
        for tier, backend in tiers.items():
            if (ex.id, tier) in done:
                continue
            try:
                ta = made.get(id(backend))
                fresh = ta is None
                if fresh:
                    ta = made[id(backend)] = ask_model(backend, ex.question, ex.context, task, max_tokens=max_tokens)
                else:
                    stats.reused += 1
            except Exception as e:  # one question's failure never stops the run
                msg = str(e) if isinstance(e, (ModelError, ValueError)) else f"{type(e).__name__}: {e}"
                log.warning("%s failed on %s: %s", tier, ex.id, msg)
                store.put(ex.id, tier, None, None, error=msg)
                stats.errors += 1
                continue
            store.put(ex.id, tier, ta.answer, ta.generation)
            stats.generated += 1
            stats.model_s += ta.generation.latency_s if fresh else 0.0
        bar.set_postfix(errors=stats.errors, refresh=False)
    stats.wall_s = time.perf_counter() - t0
    return stats
