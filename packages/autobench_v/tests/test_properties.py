"""Property tests: random and non-finite inputs to the public functions give an error with a message
naming the argument, or a finite result."""

import math

import pytest
from autobench_v.backends import ProceduralGenerator
from autobench_v.core import MCQ, extract_choice
from autobench_v.examinees import BiasedExaminee, ReaderSpec
from autobench_v.examiner import ProceduralExaminer
from autobench_v.pipeline import RunConfig, wilson
from autobench_v.questions import numeric_options
from autobench_v.world import parse_description
from hypothesis import given, settings
from hypothesis import strategies as st

FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 2.0])
SETTINGS = settings(max_examples=40, deadline=None)


def _rejects_or_in_unit(fn, name, x):
    try:
        fn(x)
    except ValueError as e:
        assert name in str(e)
    else:
        assert 0 <= x <= 1


@SETTINGS
@given(FLOATS)
def test_probabilities_reject_non_finite_and_out_of_range(x):
    _rejects_or_in_unit(lambda v: RunConfig(validation_threshold=v), "validation_threshold", x)
    _rejects_or_in_unit(lambda v: ProceduralGenerator(fault_rate=v), "fault_rate", x)
    _rejects_or_in_unit(lambda v: ProceduralExaminer(a_preference=v), "a_preference", x)
    _rejects_or_in_unit(lambda v: BiasedExaminee(ProceduralExaminer(), p_a=v, name="b"), "p_a", x)


@SETTINGS
@given(st.integers(-5, 50), st.integers(-5, 50))
def test_wilson_is_an_interval_or_an_error(k, n):
    try:
        lo, hi = wilson(k, n)
    except ValueError as e:
        assert "k" in str(e) or "n" in str(e)
        return
    assert n == 0 or (0 <= lo <= k / n <= hi <= 1)


@SETTINGS
@given(st.integers(-3, 40), st.integers(-2, 6))
def test_numeric_options_hold_the_answer_at_its_rank(answer, rank):
    try:
        opts = numeric_options(answer, rank)
    except ValueError as e:
        assert "answer" in str(e) or "rank" in str(e)
        return
    values = [int(o) for o in opts]
    assert len(set(values)) == 4 and min(values) >= 0 and str(answer) in opts
    assert values.index(answer) == min(rank, answer)


@SETTINGS
@given(st.text(max_size=200))
def test_text_inputs_parse_or_fail_clearly(text):
    assert extract_choice(text) in (None, "A", "B", "C", "D")
    try:
        parse_description(text)
    except ValueError as e:
        assert "describ" in str(e) or "object" in str(e)


@SETTINGS
@given(st.integers(-3, 5), FLOATS)
def test_reader_spec_and_run_config_reject_bad_values(n, lr):
    if n < 1:
        with pytest.raises(ValueError, match="n_per_aspect"):
            RunConfig(n_per_aspect=n)
        with pytest.raises(ValueError, match="width"):
            ReaderSpec(width=n)
    if not (math.isfinite(lr) and lr > 0):
        with pytest.raises(ValueError, match="lr"):
            ReaderSpec(lr=lr)


def test_mcq_letter_is_checked():
    q = MCQ("i", "c", "easy", "a", "Q?", {"A": "w", "B": "x", "C": "y", "D": "z"}, "A")
    with pytest.raises(ValueError, match="letter"):
        q.with_answer_at("E")
