"""Prompts per model family and task style, and the one answer clean-up function.

Families:
    ``chat``: instruction-tuned models reached through their chat template (SmolLM2-Instruct,
        OpenAI-style chat endpoints).
    ``base``: base models reached with few-shot completion prompts (Gemma 3 270M base).

Tasks:
    ``squad``: extractive short answer from one passage (SQuAD v1.1).
    ``squad-v2``: as ``squad`` but the model may abstain; an abstention becomes ``""``.
    ``hotpotqa``: multi-hop question over several titled paragraphs; yes/no allowed.
    ``open``: no passage; answer from the model's own knowledge in a few words.
    ``chat``: general chat, not QA-shaped: the whole conversation (system message and every turn)
        through the tier's chat template (chat family) or as a ``User:``/``Assistant:``
        transcript (base family); the answer is the whole reply, not a span.

The passage always comes before the question, and the fixed instructions and few-shot examples
come before the passage, so that questions on the same passage share the longest possible
KV-cache prefix. The few-shot examples below were written for this project; none is taken from
an evaluation set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .models.base import Prompt

TASKS = ("squad", "squad-v2", "hotpotqa", "open", "chat")
#: Default answer budget of the ``chat`` task, tokens (the QA tasks answer in a few words).
CHAT_MAX_TOKENS = 256
FAMILIES = ("chat", "base")
#: What a model says to abstain; :func:`clean_answer` maps it to the empty answer.
ABSTAIN = "unanswerable"

DATASET_TASK = {"squad-v1.1": "squad", "squad-v2.0": "squad-v2", "hotpotqa": "hotpotqa"}


@dataclass(frozen=True)
class Shot:
    """One worked example: passage (may be empty), question, answer."""

    context: str
    question: str
    answer: str


_SHOTS_EXTRACTIVE = (
    Shot(
        "The Larkspur Bridge, finished in 1911, crosses the Tamsen River at its narrowest point. "
        "It was designed by the engineer Clara Voss and carried trams until 1958.",
        "Who designed the Larkspur Bridge?",
        "Clara Voss",
    ),
    Shot(
        "Marrowfield is a market town of about 12,000 people. Its weekly cheese market, held every "
        "Thursday since 1620, draws traders from across the valley.",
        "On which day is the cheese market held?",
        "Thursday",
    ),
)
_SHOT_UNANSWERABLE = Shot(
    "The Orrin telescope sits on Mount Kell at 2,400 metres. It was built to study faint comets "
    "and began observations in 1987.",
    "Who paid for the Orrin telescope?",
    ABSTAIN,
)
_SHOTS_MULTIHOP = (
    Shot(
        "Harwick Lane: Harwick Lane is a 2009 novel by the writer Tomas Brell.\n\n"
        "Tomas Brell: Tomas Brell (born 1971) is a novelist from Ghent, Belgium.",
        "In which city was the author of Harwick Lane born?",
        "Ghent",
    ),
    Shot(
        "Velia Sound: Velia Sound is a rock band formed in Leeds in 1994.\n\n"
        "The Marrows: The Marrows are a folk band formed in Cork in 2001.",
        "Was Velia Sound formed before The Marrows?",
        "yes",
    ),
)

_INSTRUCTIONS = {
    "squad": "Answer the question with the shortest span copied from the passage: a few words, "
    "not a sentence.",
    "squad-v2": "Answer the question with the shortest span copied from the passage: a few words, "
    f"not a sentence. If the passage does not contain the answer, reply {ABSTAIN}.",
    "hotpotqa": "Answer the question using the paragraphs. Reply with a short span (a few words), "
    "or yes or no.",
    "open": "Answer the question with a few words, not a sentence.",
}


def _shots(task: str) -> tuple[Shot, ...]:
    if task == "squad":
        return _SHOTS_EXTRACTIVE
    if task == "squad-v2":
        return (*_SHOTS_EXTRACTIVE, _SHOT_UNANSWERABLE)
    if task == "hotpotqa":
        return _SHOTS_MULTIHOP
    return ()


#: Prompt variants: ``standard`` (every model by default) and ``reminded`` (multi-hop
#: prompts for small base models: the question also before the paragraphs, the instruction
#: repeated after it and ``Short answer:`` as the label; other tasks as ``standard``). A model's
#: variant per task comes from :func:`cascade_router.models.registry.prompt_variant` (the
#: embedded SmolLM2 uses ``reminded`` on HotpotQA: on a 40-question dev slice it cut SmolLM2's
#: empty answers from 23 to 11 and raised its F1 from 12.1 to 24.6, while it cut Gemma's F1 from
#: 32.7 to 20.8; ``benchmarks/hotpot_empty_answers.py``).
VARIANTS = ("standard", "reminded")

#: Revision of each (task, family, variant) prompt; 1 unless listed. A run records the revision
#: of each tier's prompt (:func:`cascade_router.evaluation.runs.identity_for`), so generations
#: made with another prompt are never mixed with new ones, while a tier whose prompt did not
#: change can still be reused (``eval --reuse``).
PROMPT_REVISIONS: dict[tuple[str, str, str], int] = {("hotpotqa", "base", "reminded"): 2}


def prompt_revision(task: str, family: str, variant: str = "standard") -> int:
    """The revision of the prompt of ``task`` for ``family`` and ``variant`` (see :data:`PROMPT_REVISIONS`)."""
    return PROMPT_REVISIONS.get((task, family, variant), 1)


def check_task(task: str) -> str:
    """Return ``task`` if valid; raises ValueError listing the valid task names otherwise."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    return task


def _block(context: str, question: str, task: str, family: str = "chat", variant: str = "standard") -> str:
    label = "Paragraphs" if task == "hotpotqa" else "Passage"
    head = f"{label}:\n{context}\n\n" if context else ""
    if _reminded(task, family, variant):
        return f"Question: {question}\n\n{head}Question: {question}\n{_MULTIHOP_REMINDER}"
    return f"{head}Question: {question}"


#: What the ``reminded`` multi-hop base prompt repeats after the question.
_MULTIHOP_REMINDER = "Reply with a short span from the paragraphs (a few words), or yes or no."


def _reminded(task: str, family: str, variant: str) -> bool:
    return prompt_revision(task, family, variant) == 2 and task == "hotpotqa"


def build_prompt(
    question: str,
    context: str | None,
    task: str,
    family: str,
    max_tokens: int = 24,
    style: str = "short",
    conversation: list[dict] | None = None,
    variant: str = "standard",
) -> Prompt:
    """Build the prompt for one question.

    Args:
        question: the question text (non-empty).
        context: the passage (``None`` or ``""`` for ``open``).
        task: one of :data:`TASKS`.
        family: ``"chat"`` or ``"base"`` (see module docstring).
        max_tokens: completion budget in tokens.
        style: for the ``chat`` family, ``"short"`` (instructions in the system message and
            few-shot turns, the measured best variant, see README) or ``"plain"`` (instructions
            only, no example turns).
        variant: ``standard`` or ``reminded`` (see :data:`VARIANTS`; the model's own choice
            comes from :func:`cascade_router.models.registry.prompt_variant`).
        conversation: for the ``chat`` task, the messages ``[{"role", "content"}, ...]`` (system,
            user and assistant turns, the last a user turn); default: ``question`` as one turn.

    Returns:
        A :class:`Prompt` with chat ``messages`` (chat family) or raw ``text`` (base family);
        stop strings end the answer at the first newline.

    Raises:
        ValueError: unknown task, family, style or variant.
    """
    check_task(task)
    if variant not in VARIANTS:
        raise ValueError(f"unknown prompt variant {variant!r}; valid: {', '.join(VARIANTS)}")
    context = context or ""
    if task == "chat":
        return _chat_prompt(conversation or [{"role": "user", "content": question}], family, max_tokens)
    if family == "chat":
        if style not in ("short", "plain"):
            raise ValueError(f"unknown prompt style {style!r}; valid: short, plain")
        messages = [{"role": "system", "content": _INSTRUCTIONS[task]}]
        if style == "short":
            for shot in _shots(task):
                messages.append({"role": "user", "content": _block(shot.context, shot.question, task)})
                messages.append({"role": "assistant", "content": shot.answer})
        messages.append({"role": "user", "content": _block(context, question, task)})
        return Prompt(messages=messages, stop=["\n"], max_tokens=max_tokens)
    if family == "base":
        parts = [_INSTRUCTIONS[task], ""]
        label = "Short answer:" if _reminded(task, family, variant) else "Answer:"
        for shot in _shots(task):
            parts.append(_block(shot.context, shot.question, task, family, variant) + f"\n{label} {shot.answer}\n")
        parts.append(_block(context, question, task, family, variant) + f"\n{label}")
        return Prompt(text="\n".join(parts), stop=["\n"], max_tokens=max_tokens)
    raise ValueError(f"unknown model family {family!r}; valid families: {', '.join(FAMILIES)}")


#: The self-check question put to a tier after its own answer (P(True), Kadavath et al. 2022).
SELF_CHECK_QUESTION = {
    "hotpotqa": "Is your answer correct according to the paragraphs? Reply yes or no.",
    "open": "Is your answer correct? Reply yes or no.",
}
_SELF_CHECK_DEFAULT = "Is your answer correct according to the passage? Reply yes or no."


def build_self_check_prompt(question: str, context: str | None, answer: str, task: str, family: str,
                            variant: str = "standard") -> Prompt:
    """The P(True) self-check prompt (Kadavath et al. 2022, "Language Models (Mostly) Know What
    They Know", section 3): the tier's own QA prompt, its answer, then one question asking whether
    that answer is correct; the model replies with one token (``max_tokens=1``), whose ``yes``/``no``
    probabilities give P(True) (:func:`cascade_router.selfcheck.p_true`).

    The QA prompt comes first unchanged, so the check reuses its KV-cache prefix: it costs the
    answer, the check question and one generated token. An empty answer is shown as
    :data:`ABSTAIN`.

    Args:
        question, context, task, family, variant: as :func:`build_prompt` (QA tasks only).
        answer: the tier's cleaned answer to check.

    Raises:
        ValueError: the ``chat`` task (no single answer to check), an unknown task or family.
    """
    if task == "chat":
        raise ValueError("the self-check applies to QA tasks, not to general chat")
    qa = build_prompt(question, context, task, family, variant=variant)
    check = SELF_CHECK_QUESTION.get(task, _SELF_CHECK_DEFAULT)
    shown = answer.strip() or ABSTAIN
    if family == "chat":
        messages = [*qa.messages, {"role": "assistant", "content": shown}, {"role": "user", "content": check}]
        return Prompt(messages=messages, stop=[], max_tokens=1)
    return Prompt(text=f"{qa.text} {shown}\n\n{check}\nReply:", stop=[], max_tokens=1)


_ROLES = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant"}


def _chat_prompt(conversation: list[dict], family: str, max_tokens: int) -> Prompt:
    """The ``chat`` task: the conversation as it is (chat family) or as a transcript ending in
    ``Assistant:`` that stops at the next ``User:`` turn (base family)."""
    turns = [{"role": m["role"], "content": str(m.get("content") or "")} for m in conversation
             if m.get("role") in _ROLES]
    if not turns or turns[-1]["role"] != "user":
        raise ValueError("a chat conversation must end with a user message")
    if family == "chat":
        return Prompt(messages=turns, stop=[], max_tokens=max_tokens)
    if family == "base":
        lines = [f"{_ROLES[t['role']]}: {t['content']}" for t in turns]
        return Prompt(text="\n".join(lines) + "\nAssistant:", stop=list(_TURN_STOPS), max_tokens=max_tokens)
    raise ValueError(f"unknown model family {family!r}; valid families: {', '.join(FAMILIES)}")


#: Where a base model's transcript reply ends: the next turn it starts writing.
_TURN_STOPS = ("\nUser:", "\nAssistant:", "\nSystem:")
_TURN_RE = re.compile(r"\n(?:User|Assistant|System):")


def clean_chat(text: str) -> str:
    """A chat reply as the user sees it: the whole text, cut at a chat-template marker or at a
    new ``User:``/``Assistant:``/``System:`` turn (a base model continuing the transcript), trimmed."""
    text = _TEMPLATE_OPEN.sub("", text or "", count=1)
    text = _TEMPLATE_MARKER.split(text, maxsplit=1)[0]
    return _TURN_RE.split(text, maxsplit=1)[0].strip()


def is_short_question(text: str) -> bool:
    """The QA-shape rule for a request without a passage: one question of at most 30 words
    ending in ``?`` (else it is general chat)."""
    return text.rstrip().endswith("?") and len(text.split()) <= 30


_PREFIX = re.compile(
    r"^\s*(?:(?:the\s+)?(?:final\s+|short\s+)?(?:answer|response)\s*(?:is)?\s*[:\-–]|a\s*:)\s*", re.I
)
# Words that only ever abstain ("unanswerable") count whatever follows them ("Unanswerable: the
# passage ...", "UNANSWERABLE!!"). Words that can start a title ("Unknown Pleasures", "None (Seinfeld)",
# "No Answer" by ELO) count only as the whole answer, optionally followed by a sentence end and an
# explanation ("Unknown. The passage ...") or "because ...".
_ABSTAIN_RE = re.compile(
    r"^(?:(?:unanswerable|not answerable|cannot be answered|can't be answered)\b"
    r"|(?:no answer|unknown|n/a|none|i do(?: not|n['’]?t) know)"
    r"(?:\s*[.!?;]*\s*$|\s*[.!?;]+\s+\S|\s+because\b))",
    re.I,
)
_QUOTES = "\"'“”‘’`«»*"  # and markdown emphasis


def is_abstention(text: str) -> bool:
    """True when a raw completion is an abstention (``unanswerable``, ``no answer``, ``N/A``...),
    by the rule :func:`clean_answer` applies with ``allow_abstain``."""
    ans = clean_answer(text)
    return bool(ans) and bool(_ABSTAIN_RE.match(ans))


#: End-of-turn and template markers of common chat templates (ChatML, Gemma, Llama 2/3, Phi).
_TEMPLATE_MARKER = re.compile(r"<\|im_end\|>|<\|im_start\|>|<end_of_turn>|<start_of_turn>|</s>|<\|eot_id\|>|"
                              r"<\|end\|>|<\|endoftext\|>|<\|end_of_text\|>|\[/INST\]")


#: A turn opening at the very start (``<|im_start|>assistant``), dropped before cutting.
_TEMPLATE_OPEN = re.compile(r"^\s*(?:<\|im_start\|>|<start_of_turn>)\s*(?:assistant|model)?\s*")


def clean_answer(text: str, allow_abstain: bool = False) -> str:
    """Reduce a raw completion to the answer string that gets scored.

    Steps, in order: drop a turn opening at the start (``<|im_start|>assistant``) and cut at the
    first chat-template marker (``<|im_end|>``, ``<end_of_turn>``,
    ``</s>``, ``<|eot_id|>``, ``<|end|>``, ``<|endoftext|>``, ``[/INST]``: a base model behind a
    chat endpoint writes them as text); keep the first non-empty line; drop a leading ``Answer:``-style prefix
    (``Answer:``, ``A:``, ``The answer is:``); strip surrounding quotes, markdown ``*`` and
    whitespace; drop a trailing period (but keep it after a one-letter abbreviation such as
    ``U.S.``); and, where ``allow_abstain`` is true (SQuAD v2), map an abstention
    (``unanswerable``, ``no answer``, ``unknown``, ``N/A``, ``none``, ``I don't know``) to
    ``""``, the official no-answer prediction. The answer must be the abstention itself,
    optionally followed by a sentence end or ``because ...``; a title that only starts with
    such a word (``Unknown Pleasures``) is kept.

    Args:
        text: raw completion text, any length.
        allow_abstain: map abstentions to the empty string.

    Returns:
        The cleaned answer (possibly ``""``).
    """
    text = _TEMPLATE_OPEN.sub("", text or "", count=1)  # a base model behind a chat endpoint
    text = _TEMPLATE_MARKER.split(text, maxsplit=1)[0]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    ans = lines[0] if lines else ""
    for _ in range(2):
        ans = _PREFIX.sub("", ans, count=1).strip()
        ans = ans.strip(_QUOTES).strip()
    if ans.endswith(".") and not re.search(r"(?:^|[\s.])\w\.$", ans):
        ans = ans[:-1].rstrip()
    ans = ans.strip(_QUOTES).strip()
    if allow_abstain and _ABSTAIN_RE.match(ans):
        return ""
    return ans
