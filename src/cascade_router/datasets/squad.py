"""Checking an official SQuAD v1.1 / v2.0 file and turning it into `QAExample`s.

Format (rajpurkar.github.io/SQuAD-explorer): ``{"version": ..., "data": [{"title": str,
"paragraphs": [{"context": str, "qas": [{"id": str, "question": str, "answers": [{"text": str,
"answer_start": int}, ...], "is_impossible": bool (v2.0), "plausible_answers": [...] (v2.0)}]}]}]}``
(the two v2.0 keys are optional).
"""

from __future__ import annotations

from .types import DatasetError, QAExample

# `version` values that identify the *other* SQuAD release: a file carrying one is refused.
_FOREIGN_VERSIONS = {"squad-v1.1": {"v2.0", "2.0"}, "squad-v2.0": {"1.1", "v1.1"}}


def _fail(source: str, where: str, problem: str) -> DatasetError:
    return DatasetError(f"{source}: {where}: {problem}")


def _check_answers(
    source: str, where: str, answers: object, key: str, context: str
) -> tuple[list[str], list[int]]:
    """Validate one answer list; return its texts and offsets.

    Only offsets outside the passage (``< 0`` or ``> len(context)``) are errors: the official
    scorers never read ``answer_start``, and a text that does not match exactly at its offset is
    tolerated (none occurs in the bundled files).
    """
    if not isinstance(answers, list):
        raise _fail(source, where, f"'{key}' must be a list, got {type(answers).__name__}")
    texts: list[str] = []
    starts: list[int] = []
    for k, ans in enumerate(answers):
        if not isinstance(ans, dict):
            raise _fail(source, where, f"{key}[{k}] must be an object")
        text, start = ans.get("text"), ans.get("answer_start")
        if not isinstance(text, str):
            raise _fail(source, where, f"{key}[{k}] has no string 'text'")
        if not isinstance(start, int) or isinstance(start, bool):
            raise _fail(source, where, f"{key}[{k}] has no integer 'answer_start'")
        if not 0 <= start <= len(context):
            raise _fail(
                source,
                where,
                f"{key}[{k}] answer_start {start} is outside its passage "
                f"(0..{len(context)})",
            )
        texts.append(text)
        starts.append(start)
    return texts, starts


def parse_squad(doc: object, name: str, source: str) -> tuple[list, list[QAExample]]:
    """Validate a parsed SQuAD file and convert it.

    Args:
        doc: the parsed JSON (the whole file).
        name: ``"squad-v1.1"`` or ``"squad-v2.0"``.
        source: file name used in error messages.

    Returns:
        ``(data, examples)``: the file's ``"data"`` list, unchanged, and one `QAExample` per
        question in file order.

    Raises:
        DatasetError: wrong structure, a question without an id, a duplicate id, an offset outside
            its passage, a v1.1 question without answers, a v2.0 ``is_impossible`` that contradicts
            the answers, or a ``version`` naming the other SQuAD release.
    """
    if isinstance(doc, list):
        raise DatasetError(
            f"{source}: expected a JSON object with a 'data' list (SQuAD format), "
            "got a JSON list (a HotpotQA file?)"
        )
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DatasetError(f"{source}: expected a JSON object with a 'data' list (SQuAD format)")
    version = doc.get("version")
    if isinstance(version, str) and version in _FOREIGN_VERSIONS[name]:
        raise DatasetError(f"{source}: file has version {version!r}, not a {name} file")
    v2 = name == "squad-v2.0"
    examples: list[QAExample] = []
    seen: set[str] = set()
    for i, article in enumerate(doc["data"]):
        where = f"article {i}"
        if not isinstance(article, dict):
            raise _fail(source, where, "must be an object")
        title = article.get("title")
        if not isinstance(title, str):
            raise _fail(source, where, "has no string 'title'")
        if not isinstance(article.get("paragraphs"), list):
            raise _fail(source, f"article {i} ({title!r})", "has no 'paragraphs' list")
        for j, para in enumerate(article["paragraphs"]):
            where = f"article {i} ({title!r}) paragraph {j}"
            if not isinstance(para, dict):
                raise _fail(source, where, "must be an object")
            context = para.get("context")
            if not isinstance(context, str):
                raise _fail(source, where, "has no string 'context'")
            if not isinstance(para.get("qas"), list):
                raise _fail(source, where, "has no 'qas' list")
            for k, qa in enumerate(para["qas"]):
                examples.append(
                    _parse_qa(source, f"{where} question {k}", qa, context, title, j, v2, seen)
                )
    return doc["data"], examples


def _parse_qa(
    source: str,
    where: str,
    qa: object,
    context: str,
    title: str,
    paragraph_index: int,
    v2: bool,
    seen: set[str],
) -> QAExample:
    if not isinstance(qa, dict):
        raise _fail(source, where, "must be an object")
    qid = qa.get("id")
    if not isinstance(qid, str) or not qid:
        raise _fail(source, where, "question without an id")
    where = f"question {qid!r}"
    if qid in seen:
        raise _fail(source, where, "duplicate question id")
    seen.add(qid)
    question = qa.get("question")
    if not isinstance(question, str):
        raise _fail(source, where, "has no string 'question'")
    texts, starts = _check_answers(source, where, qa.get("answers"), "answers", context)
    extra: dict = {"title": title, "paragraph_index": paragraph_index, "answer_starts": starts}
    if not v2 and not texts:
        raise _fail(source, where, "has no answers (every SQuAD v1.1 question needs one)")
    if v2:
        impossible = qa.get("is_impossible")
        if impossible is not None:
            if not isinstance(impossible, bool):
                raise _fail(source, where, "'is_impossible' must be true or false")
            if impossible == bool(texts):
                raise _fail(
                    source, where, f"is_impossible is {str(impossible).lower()} but "
                    f"{'answers are given' if texts else 'there are no answers'}"
                )
            extra["is_impossible"] = impossible
        if "plausible_answers" in qa:
            p_texts, p_starts = _check_answers(
                source, where, qa["plausible_answers"], "plausible_answers", context
            )
            extra["plausible_answers"] = p_texts
            extra["plausible_answer_starts"] = p_starts
    return QAExample(
        id=qid,
        question=question,
        context=context,
        answers=texts,
        answerable=bool(texts),
        dataset="squad-v2.0" if v2 else "squad-v1.1",
        passage_id=f"{title}#{paragraph_index}",
        extra=extra,
    )
