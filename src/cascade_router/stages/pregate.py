"""The pre-generation gate: a stage before the first tier that sends a question straight to a
later tier when a router on the question's embedding says the first tier will not do
(:class:`cascade_router.routers.pregen.EmbeddingRouter`, fitted by ``calibrate --router pregen``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..routers.base import decide


@dataclass
class PreGate:
    """A router on question embeddings and the tier it sends questions to.

    Attributes:
        router: a fitted :class:`~cascade_router.routers.pregen.EmbeddingRouter`.
        embedder: an open embedder of the spec the router was fitted on.
        to: the tier name an escalated question starts at.
        label: a label for results (the router file).
    """

    router: Any
    embedder: Any
    to: str
    label: str = "pregen"

    def decide(self, question: str) -> tuple[float, float, bool]:
        """``(score, threshold, skip)`` for one question (embedded in the cache's normalised form).

        Raises:
            EmbeddingError: the embedder failed.
        """
        from .cache import normalise_question

        score = float(self.router.decision_function(self.embedder.embed([normalise_question(question)]))[0])
        return score, float(self.router.threshold), bool(decide(score, self.router.threshold))

    def close(self) -> None:
        self.embedder.close()
