"""Early escalation: stop a tier's generation as soon as the gate after it is certain to escalate.

A gate reads the whole answer, but some threshold rules are decided partway through: a signal
that can only grow as tokens are added (``length_tokens``) is already over an "escalate when
longer than" threshold, or one that can only fall (``min_logprob``, the least confident token so
far) is already under an "escalate when below" threshold. Every later token keeps the rule
fired, so the full generation's decision would be *escalate* too; stopping there saves the rest
of the tier's decoding and escalates at once, with the decision unchanged.

Which gates qualify (:func:`early_check`):

* :class:`~cascade_router.routers.threshold.SignalRouter` on ``length_tokens`` with direction +1
  or on ``min_logprob`` with direction -1;
* :class:`~cascade_router.routers.threshold.ThresholdRouter` (OR-ed rules, the presets): its
  score is the largest rule exceedance, so one such rule over the router's threshold already
  decides it (the presets' own rules, on ``length_words``, ``mean_entropy`` and
  ``mean_logprob``, are not monotone: a ThresholdRouter qualifies only with a rule above).

Learned gates (logistic regression over every signal) are never certain before the end.
"""

from __future__ import annotations

from typing import Callable

from .models.base import Generation
from .routers.base import Router, decide
from .routers.threshold import SignalRouter, ThresholdRouter
from .signals import length_tokens, min_logprob

#: Signals whose value on a prefix of a generation bounds the full generation's value: +1 only
#: grows as tokens are added, -1 only falls.
MONOTONE: dict[str, tuple[int, Callable[[Generation], float]]] = {
    "length_tokens": (1, length_tokens),
    "min_logprob": (-1, min_logprob),
}


def early_check(router: Router | None) -> Callable[[Generation], bool] | None:
    """A test on a partial generation that is True only when ``router`` is certain to escalate
    on the full generation, or None when the router has no such rule (see the module docstring).

    The test takes the generation so far (tokens and logprobs of the tokens generated yet; the
    token that matched a stop string is not among them, as in the finished generation).
    """
    if isinstance(router, SignalRouter):
        spec = MONOTONE.get(router.signal)
        if spec is None or spec[0] != router.direction:
            return None
        f, d, t = spec[1], router.direction, router.threshold

        def check(g: Generation) -> bool:
            return bool(decide(d * f(g), t))

        return check
    if isinstance(router, ThresholdRouter):
        rules = [(sig, t, router.directions[sig]) for sig, t in router.rules.items()
                 if sig in MONOTONE and MONOTONE[sig][0] == router.directions[sig]]
        if not rules:
            return None
        thr = router.threshold

        def check_rules(g: Generation) -> bool:
            for sig, t, d in rules:
                v = MONOTONE[sig][1](g)
                if decide(d * (v - t) / max(abs(t), 1e-9), thr):
                    return True
            return False

        return check_rules
    return None
