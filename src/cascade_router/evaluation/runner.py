"""Run every tier once on every question and persist each generation as it comes."""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

from tqdm import tqdm

from ..cascade import TierAnswer, ask_model
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
    concurrency: int = 1,
) -> RunStats:
    """Answer every question with every tier, skipping what the store already holds.

    Questions are taken in the given order (grouped by passage, see
    :func:`cascade_router.datasets.sample`), and for each question every tier runs in turn, so
    each model's single llama.cpp slot still holds the same passage for the next question and
    reuses its prompt prefix. Tiers that share one backend object (the same model spec and
    options) are asked once per question and the generation is stored for each of them. A failure
    of one model on one question is stored as an error for that (question, tier) and the run goes
    on.

    With ``concurrency`` N > 1, up to N questions are in flight at once, each on a worker thread
    that asks its question's tiers in turn (so every backend sees up to N calls at once: give
    in-process models N llama.cpp slots to decode them in one batch). While enough passages are
    left, the questions in flight come from different passages and each passage's questions
    follow one another, so each slot keeps reusing its passage's prompt prefix. Finished
    questions come back to the calling thread, which stores their rows (the store is only ever
    written from the calling thread), each committed as it comes; rows may be stored in another
    order than the questions, but the set of stored (question, tier) rows is the same as with one
    in flight (not always their text: llama.cpp's batched decoding can change a greedy answer). An
    exception that is not an ``Exception`` (``KeyboardInterrupt``) stops the run: the questions
    still in flight are finished and stored, no new one is started, and it is raised again.

    Args:
        examples: the questions, in run order.
        tiers: ``{tier name: backend}`` in cascade order (any names; a backend may serve two
            tiers). With ``concurrency`` > 1 each backend must accept calls from several threads.
        store: where results go (committed row by row).
        task: prompt task.
        max_tokens: answer budget per generation, tokens.
        progress: show a tqdm progress bar (questions/s and ETA).
        concurrency: questions in flight at once (default 1: one after the other, in the calling
            thread).

    Returns:
        :class:`RunStats` (``model_s`` sums the generation latencies, so with several questions
        in flight it can exceed ``wall_s``).

    Raises:
        ValueError: ``concurrency`` is not an integer >= 1.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    for backend in tiers.values():  # an evaluation stores every tier's signals
        if hasattr(backend, "need_logprobs"):
            backend.need_logprobs = True
    done = store.done()
    stats = RunStats()
    t0 = time.perf_counter()
    todo = [ex for ex in examples if any((ex.id, t) not in done for t in tiers)]
    stats.skipped = sum((ex.id, t) in done for ex in examples for t in tiers)
    bar = tqdm(todo, desc="questions", unit="q", disable=not progress, dynamic_ncols=True)
    if concurrency == 1:
        for ex in bar:
            for result in _answer(ex, tiers, done, task, max_tokens):  # each row stored as it comes
                _record(store, stats, ex, result)
            bar.set_postfix(errors=stats.errors, refresh=False)
    else:
        _run_concurrently(todo, tiers, done, task, max_tokens, store, stats, bar, concurrency)
    bar.close()
    stats.wall_s = time.perf_counter() - t0
    return stats


#: One tier's outcome on one question: (tier, answer or None, fresh model call, error or None).
_Result = tuple[str, TierAnswer | None, bool, str | None]


def _answer(ex: QAExample, tiers: Mapping[str, Backend], done: set[tuple[str, str]], task: str,
            max_tokens: int) -> Iterator[_Result]:
    """Ask ``ex`` of every tier not yet done, in tier order, yielding each outcome as it comes.
    A tier sharing its backend object with an earlier tier gets that tier's answer (no call);
    an ``Exception`` of one tier is yielded as its error and the next tier is asked."""
    made: dict[int, TierAnswer] = {}  # backend id -> this question's answer (greedy: same for a shared backend)
    for tier, backend in tiers.items():
        if (ex.id, tier) in done:
            continue
        try:
            ta = made.get(id(backend))
            fresh = ta is None
            if fresh:
                ta = made[id(backend)] = ask_model(backend, ex.question, ex.context, task, max_tokens=max_tokens)
        except Exception as e:  # one question's failure never stops the run
            msg = str(e) if isinstance(e, (ModelError, ValueError)) else f"{type(e).__name__}: {e}"
            log.warning("%s failed on %s: %s", tier, ex.id, msg)
            yield tier, None, False, msg
            continue
        yield tier, ta, fresh, None


def _record(store: RunStore, stats: RunStats, ex: QAExample, result: _Result) -> None:
    """Store one outcome of :func:`_answer` (commits) and count it in ``stats``."""
    tier, ta, fresh, error = result
    if error is not None:
        store.put(ex.id, tier, None, None, error=error)
        stats.errors += 1
        return
    store.put(ex.id, tier, ta.answer, ta.generation)
    stats.generated += 1
    if fresh:
        stats.model_s += ta.generation.latency_s
    else:
        stats.reused += 1


class _Lanes:
    """Hands out the questions to put in flight so that, while there are enough passages, the
    questions in flight come from different passages and each passage's questions follow one
    another: after a question finishes, the next question of its passage, else the first of the
    next passage not started, else (the last passages) one more of the started passage with the
    most questions left. llama.cpp gives a request the slot whose cached prompt is most similar,
    so each slot keeps reusing its passage's prompt prefix as with one question in flight."""

    def __init__(self, todo: Sequence[QAExample]) -> None:
        self._new = deque(deque(g) for _, g in itertools.groupby(todo, key=lambda ex: ex.passage_id))
        self._started: list[deque] = []

    def take(self, after: deque | None = None) -> tuple[QAExample, deque] | None:
        """The next question and its passage's queue (``after``: the queue of the question that
        just finished), or None when every question has been handed out."""
        if after:
            return after.popleft(), after
        if self._new:
            group = self._new.popleft()
            self._started.append(group)
            return group.popleft(), group
        self._started = [g for g in self._started if g]
        if self._started:
            group = max(self._started, key=len)
            return group.popleft(), group
        return None


def _run_concurrently(todo: Sequence[QAExample], tiers: Mapping[str, Backend], done: set[tuple[str, str]],
                      task: str, max_tokens: int, store: RunStore, stats: RunStats, bar: tqdm,
                      concurrency: int) -> None:
    """Keep up to ``concurrency`` questions of ``todo`` in flight on worker threads (handed out
    by :class:`_Lanes`) and store each finished question's rows in this thread."""
    def ask(ex: QAExample) -> list[_Result]:
        return list(_answer(ex, tiers, done, task, max_tokens))

    lanes = _Lanes(todo)
    window: dict = {}  # future -> (question, its passage's queue)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="eval") as pool:
        def submit(item: tuple[QAExample, deque] | None) -> None:
            if item is not None:
                window[pool.submit(ask, item[0])] = item

        try:
            for _ in range(concurrency):
                submit(lanes.take())
            while window:
                finished, _ = wait(window, return_when=FIRST_COMPLETED)
                for fut in finished:
                    ex, group = window.pop(fut)
                    for result in fut.result():  # a BaseException of a worker is raised here
                        _record(store, stats, ex, result)
                    bar.update(1)
                    bar.set_postfix(errors=stats.errors, refresh=False)
                    submit(lanes.take(group))
        except BaseException:
            # stop: start nothing new, but keep what the questions still in flight make (the
            # executor's exit waits for them anyway); their own BaseExceptions are dropped
            for fut, (ex, _) in window.items():
                if fut.exception() is None:
                    for result in fut.result():
                        _record(store, stats, ex, result)
            raise


def run_samples(examples: Sequence[QAExample], tier: str, backend: Backend, store: RunStore, task: str,
                max_tokens: int = 24, k: int = 4, temperature: float = 0.7, seed: int = 0,
                progress: bool = True) -> RunStats:
    """Add ``k`` sampled generations of one tier per question (self-consistency), skipping the
    samples already stored; each is committed as it comes.

    Sample ``j`` of question ``q`` uses llama.cpp's (or the endpoint's) sampling seed
    ``crc32("q:j:seed")``, so a rerun makes the same samples. The prompt is the greedy one, so
    its prefix is in the prompt cache: a sample costs mainly its generated tokens.

    Args:
        examples: the run's questions. tier: the tier sampled (its name in the store).
        backend: that tier's model. store: the run's store. task: prompt task.
        max_tokens: answer budget per sample, tokens. k: samples per question (>= 1).
        temperature: sampling temperature (> 0). seed: run seed mixed into every sample's seed.

    Returns:
        :class:`RunStats` (``generated``: samples stored now; ``skipped``: already stored).

    Raises:
        ValueError: ``k`` < 1 or ``temperature`` <= 0.
    """
    import zlib

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"samples k must be an integer >= 1, got {k!r}")
    if not float(temperature) > 0:
        raise ValueError(f"sampling temperature must be > 0, got {temperature!r}")
    have = {q: len(v) for q, v in store.samples(tier).items()}
    stats = RunStats()
    t0 = time.perf_counter()
    for ex in tqdm(examples, desc=f"{tier} samples", unit="q", disable=not progress, dynamic_ncols=True):
        for j in range(have.get(ex.id, 0), k):
            try:
                ta = ask_model(backend, ex.question, ex.context, task, max_tokens=max_tokens, temperature=temperature,
                               seed=zlib.crc32(f"{ex.id}:{j}:{seed}".encode()) & 0x7FFFFFFF)
            except Exception as e:  # a failed sample is retried by the next run
                log.warning("%s sample %d failed on %s: %s", tier, j, ex.id, e)
                stats.errors += 1
                break
            store.put_sample(ex.id, tier, j, temperature, ta.answer, ta.generation)
            stats.generated += 1
            stats.model_s += ta.generation.latency_s
        stats.skipped += min(have.get(ex.id, 0), k)
    stats.wall_s = time.perf_counter() - t0
    return stats


def pending_self_checks(store: RunStore, tier: str) -> tuple[dict[str, str], set[str]]:
    """``(answers, checked)``: ``tier``'s stored answers by question id (error rows left out) and
    the questions it already has a self-check for; read before any model loads, so a damaged
    store is reported first.

    Raises:
        StoreError: a damaged stored row or check, or a foreign ``checks`` table.
    """
    answers = {r.qid: r.answer or "" for r in store.rows() if r.tier == tier and r.error is None}
    return answers, set(store.checks(tier))


def run_self_checks(examples: Sequence[QAExample], tier: str, backend: Backend, store: RunStore, task: str,
                    progress: bool = True, pending: tuple[dict[str, str], set[str]] | None = None) -> RunStats:
    """Add ``tier``'s self-check (P(True), :func:`cascade_router.selfcheck.self_check`) of its
    stored answer for every question that has one and no check yet; each is committed as it
    comes. Questions whose answer is not stored (an error row, not yet generated) are skipped and
    checked by a later run.

    ``pending``: what :func:`pending_self_checks` returned for this store and tier (read here
    when not given).

    Returns:
        :class:`RunStats` (``generated``: checks stored now; ``skipped``: already stored).
    """
    from ..selfcheck import self_check

    answers, have = pending if pending is not None else pending_self_checks(store, tier)
    stats = RunStats()
    t0 = time.perf_counter()
    for ex in tqdm(examples, desc=f"{tier} self-checks", unit="q", disable=not progress, dynamic_ncols=True):
        if ex.id in have:
            stats.skipped += 1
            continue
        if ex.id not in answers:
            continue
        try:
            chk = self_check(backend, ex.question, ex.context, answers[ex.id], task)
        except Exception as e:  # a failed check is retried by the next run
            log.warning("%s self-check failed on %s: %s", tier, ex.id, e)
            stats.errors += 1
            continue
        store.put_check(ex.id, tier, chk.p_true, chk.generation)
        stats.generated += 1
        stats.model_s += chk.generation.latency_s
    stats.wall_s = time.perf_counter() - t0
    return stats
