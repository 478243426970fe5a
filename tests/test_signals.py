"""Confidence signals against hand computations on hand-built Generations."""

import math
import numpy as np

import pytest

from cascade_router.models.base import Generation, TokenTop
from cascade_router.signals import (
    DIRECTION,
    SIGNALS,
    compute_signals,
    context_support,
    first_token_margin,
    length_tokens,
    length_words,
    mean_entropy,
    mean_logprob,
    min_logprob,
    quantile_logprob_10,
    quantile_logprob_25,
)

LN = math.log


def tops(*probs):
    return [TokenTop(f"t{i}", LN(p)) for i, p in enumerate(probs)]


@pytest.fixture
def gen():
    """Three tokens with logprobs [-0.1, -0.5, -1.2] and hand-chosen top-k lists."""
    return Generation(
        text=" Clara Voss.",
        tokens=[" Clara", " Voss", "."],
        logprobs=[-0.1, -0.5, -1.2],
        top_logprobs=[
            tops(0.5, 0.25, 0.125),  # position 0
            tops(0.3, 0.3),  # position 1
            tops(0.2, 0.05),  # position 2
        ],
        completion_tokens=3,
    )


def test_mean_and_min_logprob(gen):
    # (-0.1 - 0.5 - 1.2) / 3 = -1.8 / 3 = -0.6
    assert mean_logprob(gen) == pytest.approx(-0.6)
    assert min_logprob(gen) == pytest.approx(-1.2)


def test_quantiles_numpy_linear_method(gen):
    # sorted: [-1.2, -0.5, -0.1]; linear method: position h = (n - 1) * q
    # q = 0.10: h = 0.2 -> -1.2 + 0.2 * (-0.5 - -1.2) = -1.2 + 0.14 = -1.06
    # q = 0.25: h = 0.5 -> -1.2 + 0.5 * 0.7 = -0.85
    assert quantile_logprob_10(gen) == pytest.approx(-1.06)
    assert quantile_logprob_25(gen) == pytest.approx(-0.85)


def test_mean_entropy_over_renormalised_top_k(gen):
    # position 0: p = (0.5, 0.25, 0.125) / 0.875 = (4/7, 2/7, 1/7)
    #   H0 = 4/7 ln(7/4) + 2/7 ln(7/2) + 1/7 ln 7
    #      = 0.5714286 * 0.5596158 + 0.2857143 * 1.2527630 + 0.1428571 * 1.9459101
    #      = 0.3197805 + 0.3579323 + 0.2779872 = 0.9557000
    # position 1: two equal alternatives -> (1/2, 1/2): H1 = ln 2 = 0.6931472
    # position 2: (0.2, 0.05) / 0.25 = (0.8, 0.2): H2 = 0.8 ln 1.25 + 0.2 ln 5
    #      = 0.8 * 0.2231436 + 0.2 * 1.6094379 = 0.1785148 + 0.3218876 = 0.5004024
    # mean = (0.9557000 + 0.6931472 + 0.5004024) / 3 = 2.1492496 / 3 = 0.7164165
    assert mean_entropy(gen) == pytest.approx(0.7164165, abs=1e-6)


def test_entropy_is_bounded_by_log_k():
    g = Generation(text="x", tokens=["x"], logprobs=[LN(0.2)], top_logprobs=[tops(*[0.2] * 5)])
    assert mean_entropy(g) == pytest.approx(LN(5))  # uniform over 5: the maximum, 1.609 nats


def test_first_token_margin(gen):
    # first position: p1 = 0.5, p2 = 0.25 -> 0.25
    assert first_token_margin(gen) == pytest.approx(0.25)


def test_first_token_margin_sorts_alternatives_and_handles_one():
    g = Generation(text="x", tokens=["x"], logprobs=[LN(0.6)], top_logprobs=[tops(0.1, 0.6, 0.3)])
    assert first_token_margin(g) == pytest.approx(0.6 - 0.3)
    g1 = Generation(text="x", tokens=["x"], logprobs=[LN(0.7)], top_logprobs=[tops(0.7)])
    assert first_token_margin(g1) == pytest.approx(0.7)


def test_lengths(gen):
    assert length_words(gen) == 2.0  # raw text " Clara Voss."
    assert length_words(gen, "Clara Voss") == 2.0
    assert length_words(gen, "the engineer Clara Voss") == 4.0  # the cleaned answer wins
    assert length_tokens(gen) == 3.0
    assert length_tokens(Generation(text="ab", tokens=["a", "b"])) == 2.0  # falls back to len(tokens)


def test_empty_answer_is_defined():
    # the model emitted only its end-of-turn token
    empty = Generation(text="", tokens=[], logprobs=[], top_logprobs=[], completion_tokens=0)
    s = compute_signals(empty, "")
    assert set(s) == set(SIGNALS)
    assert s["length_words"] == 0.0 and s["length_tokens"] == 0.0
    for name in ("mean_logprob", "min_logprob", "mean_entropy", "first_token_margin",
                 "quantile_logprob_10", "quantile_logprob_25"):
        assert math.isnan(s[name]), name


def test_missing_logprobs_is_defined():
    g = Generation(text="Clara Voss", tokens=[], logprobs=None, top_logprobs=None, completion_tokens=3)
    assert not g.has_logprobs
    s = compute_signals(g, "Clara Voss")
    assert s["length_words"] == 2.0 and s["length_tokens"] == 3.0
    assert all(math.isnan(s[n]) for n in s if n not in ("length_words", "length_tokens"))


def test_logprobs_without_top_k():
    g = Generation(text="a b", tokens=["a", " b"], logprobs=[-0.2, -0.4], top_logprobs=None, completion_tokens=2)
    s = compute_signals(g)
    assert s["mean_logprob"] == pytest.approx(-0.3)
    assert math.isnan(s["mean_entropy"]) and math.isnan(s["first_token_margin"])


def test_positions_with_empty_top_lists_are_skipped():
    g = Generation(text="ab", tokens=["a", "b"], logprobs=[-0.1, -0.1], top_logprobs=[[], tops(0.5, 0.5)])
    assert mean_entropy(g) == pytest.approx(LN(2))
    assert math.isnan(first_token_margin(g))


def test_compute_signals_matches_individual_functions(gen):
    passage = "Clara Voss, an engineer, built the bridge."
    s = compute_signals(gen, "Clara Voss", passage)
    assert list(s) == list(SIGNALS)
    for name, f in SIGNALS.items():
        assert s[name] == f(gen, "Clara Voss", passage)
    assert set(DIRECTION) == set(SIGNALS)
    assert all(DIRECTION[n] == (1 if n.startswith("length") or n == "mean_entropy" else -1) for n in SIGNALS)
    assert math.isnan(compute_signals(gen, "Clara Voss")["context_support"])  # no passage


PASSAGE = "The Eiffel Tower, built by Gustave Eiffel's company in 1887–1889, is 330 metres tall."


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Gustave Eiffel", 1.0),  # copied from the passage
        ("gustave EIFFEL.", 1.0),  # official normalisation: case and punctuation
        ("The Eiffel Tower", 1.0),  # the article is dropped on both sides
        ("330 metres", 1.0),
        ("330 feet", 0.5),  # 'feet' is not in the passage
        ("Alexandre Gustave Eiffel", 2 / 3),
        ("Paris", 0.0),
        ("Eiffel Eiffel Paris", 2 / 3),  # tokens counted with repeats
        ("", 0.0),  # an empty answer (or abstention) has no support
        ("the", 0.0),  # normalises to nothing
    ],
)
def test_context_support_by_hand(answer, expected):
    g = Generation(text="raw text ignored when the answer is given")
    assert context_support(g, answer, PASSAGE) == pytest.approx(expected)


def test_context_support_of_an_abstention_is_nan():
    """SQuAD v2: 'unanswerable' cleaned to "" is a deliberate no-answer, not an ungrounded one;
    on a task without abstention the same text stays an answer and is not in the passage."""
    g = Generation(text=" Unanswerable.")
    assert math.isnan(context_support(g, "", PASSAGE))
    assert context_support(g, "Unanswerable", PASSAGE) == 0.0
    assert context_support(Generation(text=" The answer is:"), "", PASSAGE) == 0.0  # said nothing


def test_context_support_without_passage_is_nan():
    g = Generation(text="Paris")
    for ctx in (None, "", "  \n"):
        assert math.isnan(context_support(g, "Paris", ctx))
    assert context_support(g, None, "Paris is big.") == 1.0  # raw text when no cleaned answer


def test_self_consistency_by_hand():
    from cascade_router.signals import self_consistency

    # "the Paris" and "paris." normalise to "paris": 3 of 4 samples agree; "Lyon" has F1 0
    sc = self_consistency("Paris", ["Paris", "paris.", "Lyon", "the Paris"])
    assert sc["sc_agreement"] == pytest.approx(0.75) and sc["sc_f1"] == pytest.approx(0.75)
    p = np.array([4, 1]) / 5  # answers: paris x4 (greedy + 3), lyon x1
    assert sc["sc_entropy"] == pytest.approx(float(-(p * np.log(p)).sum()))
    # partial overlap: "New York City" vs greedy "New York": P 2/3, R 1, F1 0.8
    assert self_consistency("New York", ["New York City"])["sc_f1"] == pytest.approx(0.8)
    assert all(math.isnan(v) for v in self_consistency("x", []).values())
