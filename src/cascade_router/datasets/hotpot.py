"""Checking an official HotpotQA file (distractor setting) and turning it into `QAExample`s.

Format (hotpotqa.github.io): a JSON list of ``{"_id": str, "question": str, "answer": str,
"context": [[title, [sentence, ...]], ...], "supporting_facts": [[title, sentence_index], ...],
"type": str, "level": str}``.
"""

from __future__ import annotations

from .types import DatasetError, QAExample


def _fail(source: str, where: str, problem: str) -> DatasetError:
    return DatasetError(f"{source}: {where}: {problem}")


def render_paragraphs(paragraphs: list) -> str:
    """Render ``[[title, [sentences]], ...]`` as ``"Title: s0 s1 ..."`` blocks, joined by a blank
    line (``"\\n\\n"``).

    Each sentence is stripped (HotpotQA sentences after the first usually carry a leading space)
    and empty sentences are dropped; the sentences of one paragraph are joined by one space.
    """
    blocks = []
    for title, sentences in paragraphs:
        body = " ".join(s.strip() for s in sentences if s.strip())
        blocks.append(f"{title}: {body}" if body else f"{title}:")
    return "\n\n".join(blocks)


def _is_pair(value: object, second: type) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], second)
        and not isinstance(value[1], bool)
    )


def parse_hotpot(doc: object, source: str) -> tuple[list, list[QAExample]]:
    """Validate a parsed HotpotQA file and convert it.

    Args:
        doc: the parsed JSON (the whole file).
        source: file name used in error messages.

    Returns:
        ``(records, examples)``: the record list, unchanged, and one `QAExample` per record in file
        order (``answers=[answer]``, ``answerable=True``, ``passage_id=_id``).

    Raises:
        DatasetError: not a list of records, a record without ``_id``, a duplicate ``_id``, or a
            malformed question / answer / context / supporting_facts / type / level field.
            Supporting facts are not required to resolve to a sentence.
    """
    if isinstance(doc, dict) and "data" in doc:
        raise DatasetError(
            f"{source}: expected a JSON list of HotpotQA records, "
            "got an object with 'data' (a SQuAD file?)"
        )
    if not isinstance(doc, list):
        raise DatasetError(f"{source}: expected a JSON list of HotpotQA records")
    examples: list[QAExample] = []
    seen: set[str] = set()
    for i, rec in enumerate(doc):
        where = f"record {i}"
        if not isinstance(rec, dict):
            raise _fail(source, where, "must be an object")
        qid = rec.get("_id")
        if not isinstance(qid, str) or not qid:
            raise _fail(source, where, "question without an '_id'")
        where = f"record {i} ({qid!r})"
        if qid in seen:
            raise _fail(source, where, "duplicate _id")
        seen.add(qid)
        for key in ("question", "answer"):
            if not isinstance(rec.get(key), str):
                raise _fail(source, where, f"has no string '{key}'")
        context = rec.get("context")
        if not isinstance(context, list) or not all(
            _is_pair(p, list) and all(isinstance(s, str) for s in p[1]) for p in context
        ):
            raise _fail(source, where, "'context' must be a list of [title, [sentences]]")
        facts = rec.get("supporting_facts", [])
        if not isinstance(facts, list) or not all(_is_pair(f, int) for f in facts):
            raise _fail(source, where, "'supporting_facts' must be a list of [title, int]")
        for key in ("type", "level"):
            if rec.get(key) is not None and not isinstance(rec[key], str):
                raise _fail(source, where, f"'{key}' must be a string")
        examples.append(
            QAExample(
                id=qid,
                question=rec["question"],
                context=render_paragraphs(context),
                answers=[rec["answer"]],
                answerable=True,
                dataset="hotpotqa",
                passage_id=qid,
                extra={
                    "type": rec.get("type"),
                    "level": rec.get("level"),
                    "paragraphs": context,
                    "supporting_facts": facts,
                },
            )
        )
    return doc, examples
