"""How often the first tier answers nothing on HotpotQA, under prompt variants, on a dev slice.

SmolLM2-135M's first token after the ten-paragraph few-shot prompt (revision 1) was often the
newline the answer stops on, giving an empty answer (49.6% of the 500-question run). This
prints, for each variant of the base-family (few-shot completion) prompt, F1, EM, the number of
empty answers and the mean completion length on the HotpotQA **dev slice**: the 40 questions
listed in ``src/cascade_router/data/hotpotqa-prompt-dev-ids.txt`` (``sample(hotpotqa, 40,
seed=123)``), which the committed rebuilt HotpotQA run leaves out (``eval --exclude-ids``), so the
chosen prompt is not tuned on its evaluation sample. ``question-first+repeat+short-label`` is
the ``reminded`` variant of :mod:`cascade_router.prompts`.

    python benchmarks/hotpot_empty_answers.py --threads 2
    python benchmarks/hotpot_empty_answers.py --model gemma3-270m --variants used,question-first+repeat+short-label
    python benchmarks/hotpot_empty_answers.py --chat --threads 2     # the chat template instead
"""

from __future__ import annotations

import argparse
import statistics
import time
from importlib import resources

from cascade_router.datasets import load_dataset
from cascade_router.metrics import score_example
from cascade_router.models.base import Prompt
from cascade_router.models.registry import load_model
from cascade_router.prompts import _INSTRUCTIONS, _SHOTS_MULTIHOP, Shot, build_prompt, clean_answer

REMINDER = "Reply with a short span from the paragraphs (a few words), or yes or no."


#: A third, longer worked example (five titled paragraphs, three of them distractors), written
#: for the project, for the ``long-shot`` variants.
LONG_SHOT = Shot(
    "Orla Venn: Orla Venn (born 1964) is an Irish painter known for large harbour scenes. She studied in "
    "Dublin and later taught in Galway.\n\n"
    "The Salt Road (film): The Salt Road is a 1998 documentary film directed by Piet Marsh about fishing "
    "towns on the Baltic coast.\n\n"
    "Piet Marsh: Piet Marsh (1950-2011) was a Dutch film director born in Utrecht. He made documentaries "
    "for public television for thirty years.\n\n"
    "Kestrel Bay: Kestrel Bay is a small bay on the west coast of Scotland, popular with sea kayakers.\n\n"
    "Utrecht Film Days: The Utrecht Film Days is an annual festival of Dutch cinema first held in 1981.",
    "In which city was the director of The Salt Road born?",
    "Utrecht",
)


def _block(context: str, question: str, parts: set[str]) -> str:
    paras = f"Paragraphs:\n{context}\n\n"
    head = f"Question: {question}\n\n" if "question-first" in parts else ""
    tail = f"\n{REMINDER}" if "repeat" in parts else ""
    return f"{head}{paras}Question: {question}{tail}"


def prompt_text(context: str, question: str, variant: str) -> str:
    """The base-family (few-shot completion) prompt of ``variant``, ``+``-joined parts (``used``:
    none, revision 1): ``repeat`` (the instruction again after every question),
    ``question-first`` (the question also before the paragraphs), ``short-label`` (``Short
    answer:`` for ``Answer:``), ``long-shot`` (a third, five-paragraph example)."""
    parts = set(variant.split("+")) - {"used"}
    unknown = parts - {"repeat", "question-first", "short-label", "long-shot"}
    if unknown:
        raise ValueError(f"unknown variant part(s) {sorted(unknown)}")
    label = "Short answer:" if "short-label" in parts else "Answer:"
    shots = (*_SHOTS_MULTIHOP, LONG_SHOT) if "long-shot" in parts else _SHOTS_MULTIHOP
    out = [_INSTRUCTIONS["hotpotqa"], ""]
    for shot in shots:
        out.append(_block(shot.context, shot.question, parts) + f"\n{label} {shot.answer}\n")
    out.append(_block(context, question, parts) + f"\n{label}")
    return "\n".join(out)


VARIANTS = ("used", "repeat", "question-first", "question-first+repeat", "question-first+repeat+short-label",
            "question-first+repeat+long-shot")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chat", action="store_true",
                    help="instead: the chat-family prompt (chat template, few-shot turns) of revision 1")
    a = ap.parse_args()
    ids = [ln.strip() for ln in resources.files("cascade_router.data").joinpath("hotpotqa-prompt-dev-ids.txt")
           .read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    by_id = {ex.id: ex for ex in load_dataset("hotpotqa")}
    exs = [by_id[i] for i in ids]
    m = load_model(a.model, threads=a.threads)
    print(f"{a.model}, HotpotQA dev slice: {len(exs)} questions (not in the committed run)")
    for variant in ["chat template + few-shot turns"] if a.chat else a.variants.split(","):
        f1s, ems, empty, toks, t0 = [], [], 0, 0, time.perf_counter()
        for ex in exs:
            if a.chat:
                p = build_prompt(ex.question, ex.context, "hotpotqa", "chat")
            else:
                p = Prompt(text=prompt_text(ex.context, ex.question, variant), stop=["\n"], max_tokens=24)
            g = m.generate(p)
            ans = clean_answer(g.text)
            empty += ans == ""
            toks += g.completion_tokens
            em, f1 = score_example(ex, ans)
            ems.append(em)
            f1s.append(f1)
        print(f"  {variant:24s} F1 {100 * statistics.mean(f1s):5.1f}  EM {100 * statistics.mean(ems):5.1f}  "
              f"empty {empty}/{len(exs)}  completion tokens {toks / len(exs):.1f}  "
              f"wall {time.perf_counter() - t0:.0f} s", flush=True)
    m.close()


if __name__ == "__main__":
    main()
