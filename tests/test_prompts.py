"""Prompt building per family/task, and the answer clean-up."""

import pytest

from cascade_router.prompts import ABSTAIN, TASKS, build_prompt, check_task, clean_answer

PASSAGE = "Paris is the capital and largest city of France."
QUESTION = "What is the capital of France?"


# --- build_prompt --------------------------------------------------------------------------------


def test_chat_prompt_layout():
    p = build_prompt(QUESTION, PASSAGE, "squad", "chat", max_tokens=17)
    assert p.text is None and p.max_tokens == 17 and p.stop == ["\n"]
    roles = [m["role"] for m in p.messages]
    # system instructions, two few-shot turns, then the question
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "shortest span" in p.messages[0]["content"]
    last = p.messages[-1]["content"]
    assert last == f"Passage:\n{PASSAGE}\n\nQuestion: {QUESTION}"
    assert p.messages[2]["content"] == "Clara Voss"


def test_chat_plain_style_has_no_example_turns():
    p = build_prompt(QUESTION, PASSAGE, "squad", "chat", style="plain")
    assert [m["role"] for m in p.messages] == ["system", "user"]


def test_base_prompt_layout():
    p = build_prompt(QUESTION, PASSAGE, "squad", "base")
    assert p.messages is None and p.stop == ["\n"]
    assert p.text.endswith(f"Passage:\n{PASSAGE}\n\nQuestion: {QUESTION}\nAnswer:")
    assert p.text.count("\nAnswer:") == 3  # two shots + the open one
    assert "Answer: Thursday\n" in p.text


def test_same_passage_shares_prefix_up_to_question():
    a = build_prompt(QUESTION, PASSAGE, "squad", "base").text
    b = build_prompt("Which is the largest city of France?", PASSAGE, "squad", "base").text
    shared = a[: a.index("Question: What")]
    assert b.startswith(shared) and shared.endswith(PASSAGE + "\n\n")
    ca = build_prompt(QUESTION, PASSAGE, "squad", "chat").messages
    cb = build_prompt("Which is the largest city of France?", PASSAGE, "squad", "chat").messages
    assert ca[:-1] == cb[:-1]
    assert ca[-1]["content"].split("Question:")[0] == cb[-1]["content"].split("Question:")[0]


def test_squad_v2_adds_abstain_shot_and_instruction():
    p = build_prompt(QUESTION, PASSAGE, "squad-v2", "base")
    assert f"Answer: {ABSTAIN}\n" in p.text
    assert f"reply {ABSTAIN}" in p.text


def test_hotpot_uses_paragraphs_label():
    p = build_prompt("Q?", "A: x\n\nB: y", "hotpotqa", "base")
    assert p.text.endswith("Paragraphs:\nA: x\n\nB: y\n\nQuestion: Q?\nAnswer:")


def test_reminded_variant_repeats_the_question_and_instruction_on_multihop_base_prompts():
    p = build_prompt("Q?", "A: x\n\nB: y", "hotpotqa", "base", variant="reminded")
    assert p.text.endswith("Question: Q?\n\nParagraphs:\nA: x\n\nB: y\n\nQuestion: Q?\n"
                           "Reply with a short span from the paragraphs (a few words), or yes or no.\nShort answer:")
    assert "\nShort answer: Ghent\n" in p.text and "\nAnswer:" not in p.text  # the examples too
    # other tasks and the chat family are the standard prompt
    for task, fam in (("squad", "base"), ("hotpotqa", "chat"), ("squad-v2", "base")):
        assert build_prompt("Q?", "P", task, fam, variant="reminded") == build_prompt("Q?", "P", task, fam)
    with pytest.raises(ValueError, match="unknown prompt variant 'loud'; valid: standard, reminded"):
        build_prompt("Q?", "P", "squad", "base", variant="loud")


def test_embedded_smollm2_is_reminded_on_hotpotqa_only():
    from cascade_router.models.registry import prompt_variant

    assert prompt_variant("smollm2-135m", "hotpotqa") == "reminded"
    assert prompt_variant("smollm2-135m", "squad") == "standard"
    assert prompt_variant("gemma3-270m", "hotpotqa") == "standard"
    assert prompt_variant("my-model.gguf", "hotpotqa") == "standard"


def test_open_task_has_no_passage_block():
    for ctx in (None, ""):
        p = build_prompt(QUESTION, ctx, "open", "base")
        assert "Passage:" not in p.text
        assert p.text.endswith(f"Question: {QUESTION}\nAnswer:")


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"task": "trivia", "family": "chat"}, "squad, squad-v2, hotpotqa, open"),
        ({"task": "squad", "family": "instruct"}, "chat, base"),
        ({"task": "squad", "family": "chat", "style": "long"}, "short, plain"),
    ],
)
def test_bad_arguments_list_valid_values(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        build_prompt(QUESTION, PASSAGE, **kwargs)


def test_check_task():
    assert [check_task(t) for t in TASKS] == list(TASKS)
    with pytest.raises(ValueError, match="valid tasks"):
        check_task("SQuAD")


# --- clean_answer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Paris", "Paris"),
        ("  Paris  ", "Paris"),
        ("Answer: Paris", "Paris"),
        ("answer - Paris", "Paris"),
        ("A: Paris", "Paris"),
        ("The answer is: Paris", "Paris"),
        ("Final answer: Paris", "Paris"),
        ("Answer: Answer: Paris", "Paris"),
        ("Paris\nThe capital of France is Paris.", "Paris"),
        ("\n\n  \nParis\nx", "Paris"),
        ('"Paris"', "Paris"),
        ("'Paris'", "Paris"),
        ("“Paris”", "Paris"),
        ('"Paris."', "Paris"),
        ("Paris.", "Paris"),
        ("Answer: Paris.", "Paris"),
        ("in 1911.", "in 1911"),
        ("U.S.", "U.S."),
        ("the U.S.", "the U.S."),
        ("Washington, D.C.", "Washington, D.C."),
        ("Answer: U.S.", "U.S."),
        ("", ""),
        ("   \n  ", ""),
        ("The answer is Paris", "The answer is Paris"),  # no colon: not a prefix
        ("Paris. It is large.", "Paris. It is large"),  # only the one trailing period goes
    ],
)
def test_clean_answer(raw, expected):
    assert clean_answer(raw) == expected


@pytest.mark.parametrize("raw", ["unanswerable", "Unanswerable.", "Answer: unanswerable", "No answer",
                                 "N/A", "n/a", "none", "Unknown", '"unanswerable"',
                                 "Unanswerable. The passage does not say", "No answer because the passage is silent",
                                 "**unanswerable**", "*Unanswerable*", "I don't know", "Unknown!",
                                 "I don’t know", "Unanswerable: the passage does not say",
                                 "Unanswerable - the passage does not mention it", "Unanswerable (not stated)",
                                 "UNANSWERABLE!!", "unanswerable?", "**Unanswerable**: not in the passage",
                                 "Unknown. It is not stated", "None because it is not given"])
def test_abstention_maps_to_empty_only_when_allowed(raw):
    assert clean_answer(raw, allow_abstain=True) == ""
    assert clean_answer(raw) != ""


@pytest.mark.parametrize("raw", ["Paris", "Nonesuch Records", "Nantes", "Unanswered Prayers",
                                 "Unknown Pleasures", "None but the Brave", "NA Division", "NA", "Na (sodium)",
                                 "None (Seinfeld episode)", "Unknown (1988 film)", "Unknown: the movie",
                                 "None, Inc", "Unknown Soldier", "None since 1990",
                                 "No Answer (album)"])
def test_non_abstentions_are_kept_with_allow_abstain(raw):
    assert clean_answer(raw, allow_abstain=True) == raw


@pytest.mark.parametrize("raw", ["A-levels", "The A-Team"])
def test_hyphenated_a_is_not_a_prefix(raw):
    assert clean_answer(raw) == raw


@pytest.mark.parametrize("raw", ["Paris<|im_end|>", "Paris <end_of_turn>\nmore text", "Paris</s>",
                                 "Paris<|eot_id|><|start_header_id|>user", "Paris[/INST]", "Paris<|endoftext|>",
                                 "<|im_start|>assistant\nParis<|im_end|>", "<start_of_turn>model\nParis<end_of_turn>"])
def test_chat_template_markers_never_reach_the_answer(raw):
    """A base model behind a chat endpoint writes the template's markers as text (issue 11)."""
    assert clean_answer(raw) == "Paris"


def test_angle_brackets_that_are_not_markers_stay():
    assert clean_answer("x < y and y > z") == "x < y and y > z"
