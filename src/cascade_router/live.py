"""The visible answer of a generation in progress, for live streaming.

The answer a client gets is the *cleaned* completion (:func:`cascade_router.prompts.clean_chat`
for general chat, :func:`~cascade_router.prompts.clean_answer` for QA), and cleaning can still
change the end of the text when more tokens arrive (a chat-template marker or a new ``User:``
turn cuts it; QA drops an ``Answer:`` prefix, a trailing period, or maps an abstention to ``""``).
:class:`LiveAnswer` therefore sends only a prefix that no later token can change:

* ``chat``: the cleaned text so far, less its last :data:`HOLD_BACK_CHARS` characters, the
  partial word before them and the whitespace before that (a marker such as ``<|im_end|>`` or ``\\nAssistant:`` is shorter, so
  it is always cut before it is sent);
* QA tasks (``squad``, ``squad-v2``, ``hotpotqa``, ``open``): nothing until the tier is done (the
  answer is one short line; its first word may still be a prefix or an abstention).

The rest of the answer is sent when the tier finishes (:func:`remaining`).
"""

from __future__ import annotations

import logging

from .prompts import clean_chat

log = logging.getLogger(__name__)

#: Characters of a chat answer held back until more text follows them (longer than every
#: chat-template marker and turn opening that :func:`~cascade_router.prompts.clean_chat` cuts at).
HOLD_BACK_CHARS = 16


class LiveAnswer:
    """The stable prefix of one tier's visible answer while it is generated.

    Args:
        task: the prompt task (only ``chat`` answers are sent before the tier finishes).

    Attributes:
        sent: the text released so far (a prefix of the tier's final answer).
    """

    def __init__(self, task: str) -> None:
        self.task = task
        self.sent = ""

    def feed(self, raw: str) -> str:
        """The new text that may be sent, given the raw completion so far (``""`` if none)."""
        if self.task != "chat":
            return ""
        text = clean_chat(raw)
        stable = text[: max(0, len(text) - HOLD_BACK_CHARS)]
        # up to the last whole word, never ending in whitespace (the final answer is stripped)
        cut = max(stable.rfind(" "), stable.rfind("\n"), stable.rfind("\t"))
        stable = stable[:cut].rstrip() if cut >= 0 else ""
        if len(stable) <= len(self.sent) or not stable.startswith(self.sent):
            return ""
        delta = stable[len(self.sent):]
        self.sent = stable
        return delta


def remaining(sent: str, final: str) -> str:
    """What is left to send of the ``final`` answer after ``sent``. If ``final`` does not start
    with what was sent (a tier failed after sending, and an earlier tier's answer is used),
    nothing can be taken back: the rest is ``""`` and a warning is logged."""
    if final.startswith(sent):
        return final[len(sent):]
    log.warning("streamed text is not a prefix of the final answer (a tier failed mid-stream); "
                "the final answer is in the last chunk's cascade object")
    return ""
