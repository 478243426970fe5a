"""The cascade: tier 1 -> gate -> tier 2 -> gate -> ... -> last tier -> [abstain gate].

Each tier answers with its own prompt; the gate after it (a router over that tier's own
confidence signals) accepts the answer or escalates to the next tier. An optional gate after the
last tier accepts or **abstains** (the question cannot be answered from the passage; the answer
is then empty, SQuAD v2.0's no-answer prediction). Every tier that ran is paid for.
The decision rule is :func:`cascade_router.routers.base.decide` (score > threshold escalates, a
nan score never does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from .early import early_check
from .live import LiveAnswer
from .models.base import Backend, ContextLengthError, Generation, ModelError
from .models.registry import prompt_variant
from .models.sse import EARLY_STOP, OnToken
from .jsonsafe import json_safe
from .prompts import CHAT_MAX_TOKENS, build_prompt, check_task, clean_answer, clean_chat
from .routers.base import Reason, Router, decide
from .signals import compute_signals
from .tiers import Tier, TierQueueTimeout, check_tier_names

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


def fit_prompt(backend: Backend, build, context: str, max_tokens: int):
    """The prompt ``build(context)``, with the passage cut from the end (keeping its start) until
    the prompt plus ``max_tokens`` fits the backend's context window, where the backend knows it
    (llama.cpp); endpoints whose window is unknown get the whole passage. A prompt whose UTF-8
    byte count already fits is not tokenized (a token covers at least one byte).

    Args:
        backend: the model. build: ``context -> Prompt``. context: the passage ("" for none).
        max_tokens: the completion budget, tokens.

    Returns:
        ``(prompt, truncated)``.

    Raises:
        ContextLengthError: the prompt does not fit even without a passage.
    """
    prompt = build(context)
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
                raise ContextLengthError(f"{backend.model_id}: question alone ({n} tokens) exceeds the context window ({n_ctx})",
                                         n_tokens=n, n_ctx=n_ctx)
            keep = max(0, int(len(context) * (1 - (n - budget) / max(n, 1)) * 0.97) - 1)
            context = context[:keep]
            truncated = True
            prompt = build(context)
        if truncated:
            log.warning(
                "%s: passage truncated to %d characters to fit the %d-token context window",
                backend.model_id, len(context), n_ctx,
            )
    return prompt, truncated


def ask_model(
    backend: Backend,
    question: str,
    context: str | None = None,
    task: str = "squad",
    max_tokens: int = 24,
    style: str = "short",
    conversation: list[dict] | None = None,
    on_token: OnToken | None = None,
    temperature: float = 0.0,
    seed: int | None = None,
) -> TierAnswer:
    """Ask one model one question with the prompt for its family and the task (and the model's
    prompt variant, :func:`~cascade_router.models.registry.prompt_variant`).

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
        conversation: the ``chat`` task's messages (see :func:`build_prompt`).
        on_token: None, or a callback that sees the generation after every token and may stop
            it (:data:`cascade_router.models.sse.OnToken`); a backend whose ``generate`` takes
            no ``on_token`` answers in one piece and the callback sees the whole generation once.
        temperature, seed: sampling (see :class:`~cascade_router.models.base.Prompt`; default greedy).

    Raises:
        ValueError: empty question or unknown task. ModelError: the backend failed.
    """
    if not question or not question.strip():
        raise ValueError("question is empty")
    check_task(task)
    context = context or ""
    variant = prompt_variant(str(getattr(backend, "model_id", "")), task)
    prompt, truncated = fit_prompt(
        backend, lambda ctx: build_prompt(question, ctx, task, backend.family, max_tokens=max_tokens, style=style,
                                          conversation=conversation, variant=variant), context, max_tokens)
    if temperature or seed is not None:
        prompt = dataclasses.replace(prompt, temperature=float(temperature), seed=seed)
    if on_token is None:
        gen = backend.generate(prompt)
    elif "on_token" in inspect.signature(backend.generate).parameters:
        gen = backend.generate(prompt, on_token=on_token)
    else:  # a backend that cannot stream
        gen = backend.generate(prompt)
        on_token(gen)
    gen.truncated_context = truncated
    if task == "chat":
        return TierAnswer(clean_chat(gen.text), gen)
    return TierAnswer(clean_answer(gen.text, allow_abstain=(task == "squad-v2")), gen)


class TierBusyError(ModelError):
    """Every call slot of a tier stayed busy for its queue timeout (the tier is saturated, not
    failing: it does not count towards its circuit breaker)."""


#: The route of a result whose last gate abstained.
ABSTAIN_ROUTE = "abstain"
#: The route of a result served by the semantic cache (a stage before the first tier).
CACHE_ROUTE = "cache"


@dataclass
class TierRun:
    """One tier that really ran on one question.

    Attributes:
        tier: the tier's name; model: its model id.
        answer: the cleaned answer; generation: the raw generation.
        signals: the confidence signals of this generation ``{name: value}`` (nan where undefined).
        cost_usd: dollars for this call; latency_s: seconds for this call (model time: from
            sending it to the answer); queue_s: seconds waited for one of the tier's call slots
            before it.
    """

    tier: str
    model: str
    answer: str
    generation: Generation
    signals: dict[str, float]
    cost_usd: float
    latency_s: float
    queue_s: float = 0.0

    @property
    def stopped_early(self) -> bool:
        """The generation was stopped by early escalation (:mod:`cascade_router.early`): the
        gate after this tier was certain to escalate before the answer was complete."""
        return self.generation.finish_reason == EARLY_STOP

    @property
    def unavailable(self) -> list[str]:
        """Signals that could not be measured on this run (nan: no logprobs from the backend, no
        generated token, no passage); a gate never fires on them."""
        return [k for k, v in self.signals.items() if v != v]


@dataclass
class GateDecision:
    """What the gate after one tier decided.

    Attributes:
        after: the tier the gate stands after.
        router: the router's label (its name, file or kind).
        score: the decision score; threshold: the threshold (escalate iff score > threshold).
        outcome: ``"accept"``, ``"escalate"`` (to the next tier) or ``"abstain"`` (after the
            last tier).
        reasons: per-signal explanation (value beside threshold).
        early: the decision was taken before the tier's answer was complete (early
            escalation: the rest of the answer could not have changed it).
    """

    after: str
    router: str
    score: float
    threshold: float
    outcome: str
    reasons: list[Reason] = field(default_factory=list)
    early: bool = False


@dataclass
class TierFailure:
    """A tier that failed on this question (its error message); ``busy``: it was saturated (no
    call slot came free in its queue timeout) rather than failing."""

    tier: str
    error: str
    busy: bool = False


@dataclass
class CascadeResult:
    """The outcome of one question through the cascade.

    Attributes:
        question: the question.
        answer: the final answer (``""`` when the cascade abstained).
        route: the name of the tier whose answer is final, or ``"abstain"``.
        runs: the tiers that really ran, in order.
        decisions: every gate decision, in order.
        cost_usd: dollars, summed over every tier that ran.
        latency_s: seconds, summed over every tier that ran (they run in sequence), plus the time
            spent on tiers that failed (model time: waits for a tier's call slot are apart).
        queue_s: seconds spent waiting for the tiers' call slots, summed.
        failures: tiers that failed (a later tier or an earlier answer was used instead).
        start: the tier the cascade started at (the first tier unless asked otherwise).
        cache: the hit (:class:`cascade_router.stages.cache.CacheHit`) when the semantic cache
            answered (route ``cache``: no tier ran, cost 0, the original route inside).
        cache_status: ``"hit"``, ``"miss"`` (looked up, then answered by the tiers and stored),
            or None (no cache, or bypassed).
        cache_error: the cache's error message when a lookup or store failed (the request was
            answered by the tiers all the same).
        pregate: the pre-generation gate's decision (``after`` is ``"question"``; ``escalate``
            means the first tier was skipped), or None.
    """

    question: str
    answer: str
    route: str
    runs: list[TierRun]
    decisions: list[GateDecision]
    cost_usd: float = 0.0
    latency_s: float = 0.0
    failures: list[TierFailure] = field(default_factory=list)
    start: str | None = None
    cache: Any = None
    cache_status: str | None = None
    cache_error: str | None = None
    pregate: GateDecision | None = None
    queue_s: float = 0.0

    @property
    def degraded(self) -> bool:
        """A tier failed on the way, so the answer is not the one the gates would have chosen."""
        return bool(self.failures)

    @property
    def error(self) -> str | None:
        """The failures' messages joined, or None."""
        return "; ".join(f"{f.tier}: {f.error}" for f in self.failures) or None

    @property
    def escalated(self) -> bool:
        """Some gate escalated (or abstained)."""
        return any(d.outcome != "accept" for d in self.decisions)

    @property
    def abstained(self) -> bool:
        return self.route == ABSTAIN_ROUTE

    def run(self, tier: str) -> TierRun | None:
        """The run of ``tier`` (its last, when a cut answer was generated again), or None."""
        return next((r for r in reversed(self.runs) if r.tier == tier), None)

    @property
    def prompt_tokens(self) -> int:
        return sum(r.generation.prompt_tokens for r in self.runs)

    @property
    def completion_tokens(self) -> int:
        return sum(r.generation.completion_tokens for r in self.runs)

    @property
    def total_tokens(self) -> int:
        """Prompt + completion tokens over the tiers that ran."""
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (see :mod:`cascade_router.jsonsafe`: nan -> null, inf -> "inf")."""
        d = json_safe(self)
        d.update(degraded=self.degraded, escalated=self.escalated, total_tokens=self.total_tokens)
        return d


@dataclass
class Cascade:
    """An N-tier cascade: tiers in order, and a gate (router) after each one.

    Args:
        tiers: the tiers, cheapest first (names unique).
        gates: ``gates[i]`` stands after ``tiers[i]`` and decides from that tier's own signals;
            one router per tier but the last is required, and an optional last entry (a router or
            None) is the abstain gate after the last tier.
        max_tokens: default answer budget per tier, tokens.
        on_error: when a tier after the first fails: ``"degrade"`` (try the next tier, else
            return the last answer obtained, marked degraded) or ``"raise"``.
        style: chat prompt style (see :func:`cascade_router.prompts.build_prompt`).
        gate_labels: a label per gate for results (default: the router's kind).
        cache: a :class:`cascade_router.stages.cache.SemanticCache`: a stage before the first
            tier that answers repeated and paraphrased questions (None: no cache).
        pregate: a :class:`cascade_router.stages.pregate.PreGate`: a stage after the cache that
            sends a question straight to a later tier from its embedding alone (None: none).
        chat_gate: the gate after the first tier for the ``chat`` task (general chat answers are
            long, so the QA gates' length rules would escalate every one); None: the QA gate.
        early_escalation: stop a tier's generation as soon as the gate after it is certain to
            escalate (:mod:`cascade_router.early`: threshold rules on ``length_tokens`` or
            ``min_logprob``); the decisions are those of the full generations. Default True.

    Raises:
        ValueError: no tier, duplicate tier names, wrong number of gates, a missing gate, an
            unknown ``on_error``.
    """

    tiers: list[Tier]
    gates: list[Router | None]
    max_tokens: int = 24
    on_error: str = "degrade"
    style: str = "short"
    gate_labels: list[str] | None = None
    cache: Any = None
    pregate: Any = None
    chat_gate: Router | None = None
    chat_gate_label: str | None = None
    early_escalation: bool = True

    def __post_init__(self) -> None:
        self.tiers = list(self.tiers)
        self.gates = list(self.gates)
        n = len(self.tiers)
        if n == 0:
            raise ValueError("a cascade needs at least one tier")
        check_tier_names([t.name for t in self.tiers])
        if len(self.gates) not in (n - 1, n):
            raise ValueError(f"{n} tiers need {n - 1} gates (plus an optional abstain gate), got {len(self.gates)}")
        for i, g in enumerate(self.gates[: n - 1]):
            if g is None:
                raise ValueError(f"the gate after tier {self.tiers[i].name!r} is missing (give a router)")
        if self.on_error not in ("degrade", "raise"):
            raise ValueError(f"on_error must be 'degrade' or 'raise', got {self.on_error!r}")
        if self.gate_labels is None:
            self.gate_labels = [getattr(g, "kind", "router") if g is not None else "" for g in self.gates]
        # an endpoint tier with logprobs="auto" asks for them only where a gate reads its signals
        need: dict[int, bool] = {}
        for i, t in enumerate(self.tiers):
            gated = i < len(self.gates) and self.gates[i] is not None
            need[id(t.backend)] = need.get(id(t.backend), False) or gated
        for t in self.tiers:
            if hasattr(t.backend, "need_logprobs"):
                t.backend.need_logprobs = need[id(t.backend)]

    @property
    def names(self) -> list[str]:
        """The tier names, in order."""
        return [t.name for t in self.tiers]

    def fingerprint(self) -> str:
        """sha256 hex of what decides an answer: every tier (name, model id and spec, prompt
        family, top-k, context window, an endpoint's URL, price),
        every gate (its router's JSON: kind, params, fitted state), the pre-generation gate, the
        prompt style. Part of
        every semantic-cache key, so a changed cascade never reuses old answers."""
        from .jsonsafe import json_safe
        from .models.openai_compat import OpenAICompatBackend

        tiers = [[t.name, t.model_id, str(t.options.get("model", "")), getattr(t.backend, "family", None),
                  getattr(t.backend, "top_k", None), getattr(t.backend, "n_ctx", None),
                  str(t.backend.base_url) if isinstance(t.backend, OpenAICompatBackend) else "",
                  vars(t.price)] for t in self.tiers]
        gates = [g.to_dict() if g is not None else None for g in self.gates]
        pre = None if self.pregate is None else [self.pregate.router.to_dict(), self.pregate.to]
        chat = None if self.chat_gate is None else self.chat_gate.to_dict()
        raw = json.dumps(json_safe([tiers, gates, self.style, pre, chat], nan="string"), sort_keys=True)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    @property
    def abstain_gate(self) -> Router | None:
        """The gate after the last tier, if any."""
        return self.gates[len(self.tiers) - 1] if len(self.gates) == len(self.tiers) else None

    def tier(self, name: str) -> Tier:
        """The tier called ``name``. Raises ValueError listing the names."""
        for t in self.tiers:
            if t.name == name:
                return t
        raise ValueError(f"unknown tier {name!r}; tiers: {', '.join(self.names)}")

    def _gate_router(self, i: int, task: str) -> tuple[Router | None, str]:
        """The router after tier ``i`` for ``task`` and its label (None, "" without a gate)."""
        router = self.gates[i] if i < len(self.gates) else None
        label = self.gate_labels[i] if router is not None else ""
        if task == "chat" and i == 0 and router is not None and self.chat_gate is not None:
            router = self.chat_gate
            label = f"chat: {self.chat_gate_label or getattr(self.chat_gate, 'kind', 'router')}"
        return router, label

    def gate(self, i: int, run: TierRun, task: str = "squad") -> GateDecision | None:
        """The decision of the gate after tier ``i`` on its run (None without a gate); for the
        ``chat`` task the gate after the first tier is :attr:`chat_gate` where set."""
        router, label = self._gate_router(i, task)
        if router is None:
            return None
        score = float(router.decision_function(run.signals)[0])  # drawn once (random router)
        threshold = float(router.threshold)
        last = i == len(self.tiers) - 1
        go_on = decide(score, threshold)
        outcome = ("abstain" if last else "escalate") if go_on else "accept"
        return GateDecision(run.tier, label, score, threshold, outcome, router.explain(run.signals),
                            early=run.stopped_early)

    def run_tier(self, i: int, question: str, context: str | None, task: str, max_tokens: int,
                 conversation: list[dict] | None = None, on_text=None, early: bool = True) -> TierRun:
        """Ask tier ``i`` alone, holding one of its call slots (:class:`~cascade_router.tiers.TierSlots`).

        With :attr:`early_escalation` and a gate after the tier that can be decided early, the
        generation stops as soon as it is (:mod:`cascade_router.early`). ``on_text(tier, delta)``
        (None: not streamed) receives the visible answer as it grows (:class:`~cascade_router.live.LiveAnswer`);
        returning True stops the generation (the client went away). ``early=False`` never stops
        early (an answer that will be returned whatever its gate says).

        Raises:
            ModelError: the tier failed, or :class:`TierBusyError` (no call slot came free in
                its queue timeout); ``tier`` set.
        """
        t = self.tiers[i]
        nxt = self.tiers[i + 1].breaker if i + 1 < len(self.tiers) else None
        check = None
        if early and self.early_escalation and not (nxt is not None and nxt.state == "open"):
            check = early_check(self._gate_router(i, task)[0])  # not towards a tier being skipped
        live = LiveAnswer(task) if on_text is not None else None
        on_token = None
        if check is not None or live is not None:
            def on_token(g: Generation) -> bool:
                if live is not None:  # called on every token, so that a client gone away stops it
                    if on_text(t.name, live.feed(g.text)):
                        return True
                return check is not None and check(g)
        try:
            with t.slots.hold() as waited:
                if t.breaker is not None and t.breaker.state == "open":  # opened while this call waited
                    raise ModelError(f"circuit open after repeated failures: skipped for another "
                                     f"{t.breaker.seconds_left():.0f} s")
                ta = ask_model(t.backend, question, context, task, max_tokens, self.style, conversation, on_token)
        except TierQueueTimeout as e:
            raise TierBusyError(f"{t.name}: {e}", tier=t.name) from None
        except ModelError as e:
            e.tier = t.name
            raise
        g = ta.generation
        return TierRun(t.name, t.model_id, ta.answer, g, compute_signals(g, ta.answer, context),
                       t.price.of(g), g.latency_s, waited)

    def answer(self, question: str, context: str | None = None, task: str = "squad",
               max_tokens: int | None = None, start: str | None = None, use_cache: bool = True,
               conversation: list[dict] | None = None, on_text=None) -> CascadeResult:
        """Answer one question through the tiers.

        Args:
            question: non-empty question.
            context: the passage (or None).
            task: prompt task (``squad``, ``squad-v2``, ``hotpotqa``, ``open``).
            max_tokens: answer budget per tier for this question (default :attr:`max_tokens`; for
                the ``chat`` task at least :data:`~cascade_router.prompts.CHAT_MAX_TOKENS`).
            start: a tier name: start there and skip the gates before it (None: the first tier).
            use_cache: consult the semantic cache (when the cascade has one) and store the answer;
                False bypasses it (the request's ``x-cascade-cache-control: no-cache``).
            conversation: for ``task="chat"``, the messages (system, user and assistant turns,
                ending with the user's); default ``question`` as one turn.
            on_text: live streaming: ``on_text(tier, delta)`` receives the growing visible answer
                of a tier whose answer is final once it has one (no gate after it), while it is
                generated (see :mod:`cascade_router.live`; QA answers arrive when the tier is
                done); a True return stops that generation. The result's ``answer`` is the whole
                answer as always.

        Raises:
            ValueError: empty question, unknown task or ``start``.
            ModelError: the starting tier failed, or a later one with ``on_error="raise"``;
                ``ModelError.tier`` names it.
        """
        i0 = 0 if start is None else self.names.index(self.tier(start).name)
        if max_tokens is not None:
            budget = int(max_tokens)
        else:  # general chat answers in sentences, QA in a few words
            budget = max(self.max_tokens, CHAT_MAX_TOKENS) if task == "chat" else self.max_tokens
        key = None
        cache_error = None
        if self.cache is not None and use_cache:
            if not question or not question.strip():
                raise ValueError("question is empty")
            from .stages.cache import cache_key

            scope = context if task != "chat" else json.dumps((conversation or [])[:-1], sort_keys=True)
            key = cache_key(task, scope, self.fingerprint(), budget, start)
            try:
                hit = self.cache.lookup(question, key)
            except Exception as e:  # a failing cache never fails the request
                log.warning("semantic cache lookup failed (answering through the tiers): %s", e)
                hit, cache_error = None, f"{type(e).__name__}: {e}"
            if hit is not None:
                return CascadeResult(question, hit.answer, CACHE_ROUTE, [], [], 0.0, hit.lookup_s,
                                     start=self.tiers[i0].name, cache=hit, cache_status="hit")
        decision = None
        if self.pregate is not None and start is None:
            try:
                score, threshold, skip = self.pregate.decide(question)
                decision = GateDecision("question", self.pregate.label, score, threshold, "escalate" if skip else "accept")
                if skip:
                    i0 = self.names.index(self.tier(self.pregate.to).name)
            except Exception as e:  # a failing pre-generation gate never fails the request
                log.warning("pre-generation gate failed (starting at the first tier): %s", e)
        res = self._through_tiers(question, context, task, budget, i0, conversation, on_text)
        res.pregate = decision
        res.cache_error = cache_error
        if key is not None:
            res.cache_status = "miss"
            if not res.degraded:  # a fallback answer is not stored
                original = {"tiers": [r.tier for r in res.runs], "cost_usd": res.cost_usd,
                            "latency_s": res.latency_s, "prompt_tokens": res.prompt_tokens,
                            "completion_tokens": res.completion_tokens}
                try:
                    self.cache.put(question, key, res.answer, res.route, original)
                except Exception as e:
                    log.warning("semantic cache store failed (the answer is returned all the same): %s", e)
                    res.cache_error = f"{type(e).__name__}: {e}"
        return res

    def _through_tiers(self, question: str, context: str | None, task: str, budget: int, i0: int,
                       conversation: list[dict] | None = None, on_text=None) -> CascadeResult:
        """The tiers from ``i0`` on, each gate deciding (see :meth:`answer`)."""
        res = CascadeResult(question, "", "", [], [], start=self.tiers[i0].name)
        n = len(self.tiers)
        for i in range(i0, n):
            t0 = time.perf_counter()
            breaker = self.tiers[i].breaker
            final = self._gate_router(i, task)[0] is None  # no gate after it: its answer is final
            try:
                if breaker is not None and not breaker.allow():
                    raise ModelError(f"circuit open after repeated failures: skipped for another "
                                     f"{breaker.seconds_left():.0f} s", tier=self.tiers[i].name)
                try:
                    run = self.run_tier(i, question, context, task, budget, conversation,
                                        on_text if final else None)
                except (ContextLengthError, TierBusyError):
                    if breaker is not None:
                        breaker.release_probe()
                    raise  # the request's fault, or a saturated tier: not a failing one
                except ModelError:
                    if breaker is not None:
                        breaker.record_failure()
                    raise
                if breaker is not None:
                    breaker.record_success()
            except ModelError as e:
                if not res.runs or self.on_error == "raise":
                    e.partial = res if res.runs else None  # what earlier tiers spent (fail mode): for metrics
                    raise
                res.latency_s += time.perf_counter() - t0  # the time lost on the failed tier
                log.warning("tier %s failed (%s); %s", e.tier, e,
                            "trying the next tier" if i < n - 1 else "answering with the last answer obtained")
                res.failures.append(TierFailure(self.tiers[i].name, str(e), isinstance(e, TierBusyError)))
                continue
            res.runs.append(run)
            res.cost_usd += run.cost_usd
            res.latency_s += run.latency_s
            res.queue_s += run.queue_s
            decision = self.gate(i, run, task)
            if decision is not None:
                res.decisions.append(decision)
            if decision is None or decision.outcome == "accept":
                res.answer, res.route = run.answer, run.tier
                return res
            if decision.outcome == "abstain":
                res.answer, res.route = "", ABSTAIN_ROUTE
                return res
        # every tier after the last successful one failed: degrade to that answer
        last = res.runs[-1]
        if last.stopped_early:  # its answer was cut by early escalation: generate it whole now
            j = self.names.index(last.tier)
            try:
                whole = self.run_tier(j, question, context, task, budget, conversation, early=False)
            except ModelError as e:
                res.failures.append(TierFailure(last.tier, f"generating the whole answer after early escalation: {e}"))
            else:
                res.runs.append(whole)
                res.cost_usd += whole.cost_usd
                res.latency_s += whole.latency_s
                res.queue_s += whole.queue_s
                last = whole
        res.answer, res.route = last.answer, last.tier
        return res

    def answer_many(self, items: Iterable[Mapping[str, Any]], task: str = "squad", max_tokens: int | None = None
                    ) -> Iterator[CascadeResult | ModelError]:
        """Answer a batch, one question after another: for each item (``{"question", "context"
        (optional), "task" (optional, default ``task``)}``) its :class:`CascadeResult`, or the
        :class:`ModelError` that stopped it (the batch goes on).

        Raises:
            ValueError: an item without a non-empty ``question`` (before any model runs for it).
        """
        for item in items:
            try:
                yield self.answer(item["question"], item.get("context"), task=item.get("task") or task,
                                  max_tokens=max_tokens)
            except ModelError as e:
                yield e

    def close(self) -> None:
        """Close every tier (a backend shared by two tiers is closed once) and the cache."""
        if self.cache is not None:
            self.cache.close()
        if self.pregate is not None:
            self.pregate.close()
        seen: set[int] = set()
        for t in self.tiers:
            if id(t.backend) not in seen:
                seen.add(id(t.backend))
                t.close()
