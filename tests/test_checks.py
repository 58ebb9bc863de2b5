"""explain.checks: the one module of argument checks."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pandas as pd
import pytest

from explain.checks import check_columns, non_negative_float, one_of, positive_int, probability


def test_positive_int_returns_plain_ints():
    assert positive_int(3, "batch_size") == 3
    value = positive_int(np.int64(4), "batch_size")
    assert value == 4 and type(value) is int
    assert positive_int(2, "max_length", minimum=2) == 2
    assert positive_int(0, "n_permutations", minimum=0) == 0


@pytest.mark.parametrize("value", [0, -1, True, False, 2.0, "3", None, float("nan")])
def test_positive_int_refuses(value):
    with pytest.raises(ValueError) as caught:
        positive_int(value, "batch_size", fix="pass e.g. batch_size=32")
    message = str(caught.value)
    assert message.startswith("batch_size must be a positive int, got ")
    assert repr(value) in message and message.endswith("; pass e.g. batch_size=32")


def test_positive_int_minimum_is_in_the_message():
    with pytest.raises(ValueError, match=r"^max_length must be an int >= 2, got 1$"):
        positive_int(1, "max_length", minimum=2)


def test_non_negative_float():
    assert non_negative_float(0, "threshold") == 0.0
    assert type(non_negative_float(np.float32(0.5), "threshold")) is float
    for value in (-0.1, float("nan"), True, "1", None):
        with pytest.raises(ValueError, match=r"^alpha must be a non-negative number, got .*; "
                                             r"e\.g\. 0\.05$"):
            non_negative_float(value, "alpha", fix="e.g. 0.05")


def test_probability_open_and_closed():
    assert probability(0.95, "confidence") == 0.95
    assert probability(0, "share", open_interval=False) == 0.0
    assert probability(1, "share", open_interval=False) == 1.0
    for value in (0, 1, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match=r"^confidence must be a number in \(0, 1\), got "):
            probability(value, "confidence")
    with pytest.raises(ValueError, match=r"^share must be a number in \[0, 1\], got -0\.1; "
                                         r"a share of rows$"):
        probability(-0.1, "share", open_interval=False, fix="a share of rows")


def test_one_of_suggests_and_lists_every_choice():
    choices = MappingProxyType({"entropy": "", "max_weight": "", "distance": ""})
    assert one_of("entropy", choices, "statistic") == "entropy"
    with pytest.raises(ValueError) as caught:
        one_of("entropi", choices, "statistic")
    assert str(caught.value) == ("unknown statistic 'entropi'; did you mean 'entropy'? valid: "
                                 "entropy, max_weight, distance")
    with pytest.raises(ValueError, match=r"^unknown level 3; valid: token, word$"):
        one_of(3, ("token", "word"), "level")


def test_check_columns_sequence_and_mapping():
    frame = pd.DataFrame({"text": ["a"], "label": [1], "race": ["x"], "sex": ["f"]})
    assert check_columns(frame, ["label", "race"], where="the data") == ["label", "race"]
    roles = {"text": "text", "label": None, "sensitive": ["race", "sex"]}
    assert check_columns(frame, roles, where="the data") == ["text", "race", "sex"]


def test_check_columns_names_role_where_close_matches_and_columns():
    frame = pd.DataFrame({"text": ["a"], "label": [1], "race": ["x"]})
    with pytest.raises(KeyError) as caught:
        check_columns(frame, {"label": "lable", "sensitive": ["race", "gender"]},
                      where="'audit.csv'")
    message = caught.value.args[0]
    assert message == ("the label column 'lable' is not in 'audit.csv'; did you mean 'label'?; "
                       "the sensitive column 'gender' is not in 'audit.csv' "
                       "(columns: 'text', 'label', 'race')")
    with pytest.raises(KeyError, match="column 'txt' is not in the data; did you mean 'text'"):
        check_columns(frame, ["txt"], where="the data")


def test_check_columns_shows_at_most_twenty_columns():
    frame = pd.DataFrame({f"c{i}": [0] for i in range(25)})
    with pytest.raises(KeyError) as caught:
        check_columns(frame, ["zzz"], where="the data")
    message = caught.value.args[0]
    assert "'c19'" in message and "'c20'" not in message and "and 5 more" in message


def test_check_columns_refuses_what_is_not_a_frame_or_a_name():
    with pytest.raises(TypeError, match="data must be a pandas.DataFrame, got list"):
        check_columns([], ["a"], where="the data")
    with pytest.raises(TypeError, match="the label column is named by a str, got 3"):
        check_columns(pd.DataFrame({"a": [1]}), {"label": 3}, where="the data")


def test_as_names_splits_commas_and_refuses_none_or_repeats():
    from explain.checks import as_names

    assert as_names("race, sex", "sensitive") == ["race", "sex"]
    assert as_names(("race",), "sensitive") == ["race"]
    with pytest.raises(ValueError, match="^no sensitive given; pass a column name or a list"):
        as_names(" , ", "sensitive")
    with pytest.raises(ValueError, match=r"^layers lists a column twice: \['a', 'a'\]$"):
        as_names("a,a", "layers")
