"""Request bodies of the OpenAI-compatible API, and the passage convention.

Only the fields the cascade uses are declared (``model`` picks where the cascade starts: a tier
name or model id starts at that tier, anything else routes from the first tier); every other
OpenAI field (``temperature``, ``top_p``, ``user``, ...) is accepted and ignored (decoding is
always greedy). Declared numbers and flags are strict: ``"stream": "yes"`` or
``"max_tokens": "10"`` is a 400, not coerced; ``null`` means the default, as in OpenAI's API.

Passage convention (how a question and its passage are read from a request):

1. The question is the last ``user`` message (``/v1/chat/completions``) or the ``prompt``
   string (``/v1/completions``). Earlier turns are ignored: the cascade answers one question.
2. If that text has a line starting with ``Question:``, the text after the last such marker is
   the question and the text before it is the passage, with a leading ``Passage:``,
   ``Context:`` or ``Paragraphs:`` label removed::

       Passage: Hamlet is a tragedy written by William Shakespeare.
       Question: Who wrote Hamlet?

3. Otherwise the passage comes from ``system`` (or ``developer``) messages whose content starts
   with one of those labels (``Passage: ...``); a system message without a label is an
   instruction and is ignored.
4. Task: the request's ``task`` extension field if given (``squad``, ``squad-v2``,
   ``hotpotqa``, ``open``, ``chat``); else ``hotpotqa`` when the passage was labelled
   ``Paragraphs:``, ``squad`` for any other passage. Without a passage, a request is QA-shaped
   (task ``open``: a few-word answer) only when it is one short question: a single user turn
   of at most 30 words ending in ``?``, with no assistant turn and no system instruction.
   Anything else (``Write a haiku about autumn``, a multi-turn conversation, an instruction in
   a system message) is general chat (task ``chat``): the whole conversation, system message
   and every turn, goes to each tier through its chat template, with a larger default answer
   budget and the chat gate (see the README).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from ..prompts import is_short_question

Task = Literal["squad", "squad-v2", "hotpotqa", "open", "chat"]

#: The ``model`` value that routes through the whole cascade, from the first tier. A tier's
#: name or model id (or ``slm``/``llm``, the first/last tier) starts the cascade at that tier
#: instead; any other name routes like ``cascade`` (see :mod:`cascade_router.server.app`).
CASCADE_MODEL = "cascade"


class ContentPart(BaseModel):
    """One part of a multi-part message content; only ``{"type": "text", "text": ...}`` is used."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One chat message (OpenAI schema)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` adds a final chunk with ``usage`` and no choices."""

    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool | None = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = Field(None, description="cascade (route from the first tier), or a tier's name or "
                                                "model id (start at that tier)")
    max_tokens: StrictInt | None = Field(None, ge=1, description="answer budget per tier, tokens")
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    n: StrictInt | None = Field(1, ge=1, le=1, description="only one choice is supported")
    task: Task | None = Field(None, description="cascade extension: the prompt task")


class ChatCompletionRequest(_Common):
    """Body of ``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)


class CompletionRequest(_Common):
    """Body of ``POST /v1/completions`` (``prompt``: a string, or a list holding one string)."""

    prompt: str | list[str]


class RequestError(ValueError):
    """A request that passed the schema but cannot be answered (-> HTTP 400).

    Attributes:
        param: the offending field (``"messages"``, ``"prompt"``, ``"max_tokens"``, ...).
    """

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


@dataclass
class Query:
    """A question parsed from a request: the question, the passage (or None), the task, and
    for the ``chat`` task the conversation (``[{"role", "content"}, ...]``, ending with the user's
    turn)."""

    question: str
    passage: str | None
    task: str
    conversation: list[dict] | None = None




_QUESTION_RE = re.compile(r"(?im)^[ \t]*question[ \t]*:[ \t]*")
_LABEL_RE = re.compile(r"(?is)^\s*(passage|context|paragraphs?|document)\s*:\s*")


def _checked(text: str, param: str) -> str:
    """``text`` if it is valid Unicode text (JSON can carry lone UTF-16 surrogates, which no
    model or UTF-8 encoder accepts); else RequestError naming ``param``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RequestError(f"text is not valid Unicode (a lone surrogate at character {e.start})", param=param) from None
    return text


def _text(content: str | list[ContentPart] | None, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return _checked(content, param)
    parts = []
    for p in content:
        if p.type != "text":
            raise RequestError(f"only text content is supported, got a {p.type!r} part", param=param)
        parts.append(p.text or "")
    return _checked("\n".join(parts), param)


def _strip_label(text: str) -> tuple[str, str | None]:
    """``(text without its leading label, label lower-cased or None)``."""
    m = _LABEL_RE.match(text)
    if not m:
        return text.strip(), None
    return text[m.end():].strip(), m.group(1).lower()


def _task_for(label: str | None, passage: str | None) -> str:
    if not passage:
        return "open"
    return "hotpotqa" if label and label.startswith("paragraph") else "squad"


def split_question(text: str) -> tuple[str, str | None, str | None]:
    """Split ``"[Passage: ...] Question: ..."`` text (rule 2 of the module docstring).

    Returns:
        ``(question, passage or None, passage label or None)``; text without a ``Question:``
        line is all question.
    """
    marks = list(_QUESTION_RE.finditer(text))
    if not marks:
        return text.strip(), None, None
    m = marks[-1]
    passage, label = _strip_label(text[: m.start()])
    return text[m.end():].strip(), (passage or None), label


def query_from_chat(req: ChatCompletionRequest) -> Query:
    """The question, passage and task of a chat request (see the module docstring).

    Raises:
        RequestError: no user message, empty question, non-text content, or text that is not
            valid Unicode.
    """
    users = [i for i, m in enumerate(req.messages) if m.role == "user"]
    if not users:
        raise RequestError("messages must contain a user message (the question)", param="messages")
    i = users[-1]
    question, passage, label = split_question(_text(req.messages[i].content, f"messages.{i}.content"))
    if passage is None:
        found = []
        for j, m in enumerate(req.messages):
            if m.role in ("system", "developer"):
                body, lab = _strip_label(_text(m.content, f"messages.{j}.content"))
                if lab is not None and body:
                    found.append(body)
                    label = label or lab
        passage = "\n\n".join(found) or None
    if not question:
        raise RequestError("the question (last user message) is empty", param=f"messages.{i}.content")
    task = req.task or _task_for(label, passage)
    if task != "chat" and (passage is not None or req.task is not None):
        return Query(question, passage, task)
    turns = [{"role": m.role if m.role != "developer" else "system", "content": _text(m.content, f"messages.{j}.content")}
             for j, m in enumerate(req.messages[: i + 1]) if m.role in ("system", "developer", "user", "assistant")]
    instructed = any(t["role"] == "system" and t["content"].strip() for t in turns)
    one_question = sum(t["role"] != "system" for t in turns) == 1 and is_short_question(question)
    if task == "chat" or instructed or not one_question:
        return Query(question, None, "chat", turns)
    return Query(question, passage, task)


def query_from_prompt(req: CompletionRequest) -> Query:
    """The question, passage and task of a completions request.

    Raises:
        RequestError: a list prompt not holding exactly one string, an empty question, or text
            that is not valid Unicode.
    """
    prompt = req.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise RequestError("prompt must be a string or a list of exactly one string", param="prompt")
        prompt = prompt[0]
    question, passage, label = split_question(_checked(prompt, "prompt"))
    if not question:
        raise RequestError("the question (prompt) is empty", param="prompt")
    task = req.task or _task_for(label, passage)
    if task == "chat" or (passage is None and req.task is None and not is_short_question(question)):
        return Query(question, None, "chat", [{"role": "user", "content": question}])
    return Query(question, passage, task)
