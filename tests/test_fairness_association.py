"""WEAT / SEAT: published signs, exact and sampled permutation p-values, missing words."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import explain
from explain.fairness import association_test, seat, weat
from explain.plotting import figure_bytes


def _brute_force_p(s, nx):
    total = s.sum()
    observed = s[:nx].sum() - s[nx:].sum()
    stats = [2 * s[list(c)].sum() - total for c in itertools.combinations(range(len(s)), nx)]
    return np.mean(np.asarray(stats) >= observed - 1e-12)


def _planted(rng, n=6, dim=20, strength=1.0):
    a_dir, b_dir = np.eye(dim)[0], np.eye(dim)[1]
    x = rng.normal(size=(n, dim)) * 0.5 + strength * a_dir
    y = rng.normal(size=(n, dim)) * 0.5 + strength * b_dir
    a = rng.normal(size=(n, dim)) * 0.5 + a_dir
    b = rng.normal(size=(n, dim)) * 0.5 + b_dir
    return x, y, a, b


def test_weat_signs_match_the_published_findings_on_word2vec():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", explain.ExplainWarning)
        result = weat(skip_empty=True, n_permutations=2000, n_bootstrap=200)
    table = result.to_frame()
    checked = table[table.published_effect_size.notna() & table.effect_size.notna()]
    assert len(checked) >= 7
    assert (np.sign(checked.effect_size) == np.sign(checked.published_effect_size)).all()
    # missing words are reported, never dropped silently
    assert len(result.missing) == table.n_missing.sum() > 0
    assert "caress" in set(result.missing.word)


def test_exact_p_value_equals_brute_force_and_planted_sign():
    rng = np.random.default_rng(0)
    x, y, a, b = _planted(rng)
    out = association_test(x, y, a, b, n_permutations=10_000, n_bootstrap=100)
    assert out["p_value_method"] == "exact" and out["n_partitions"] == 924
    assert out["p_value"] == pytest.approx(_brute_force_p(out["association"], 6))
    assert out["effect_size"] > 1.0 and out["p_value"] < 0.01
    swapped = association_test(y, x, a, b, n_permutations=10_000, n_bootstrap=0)
    assert swapped["effect_size"] == pytest.approx(-out["effect_size"])
    # no planted association: the same distribution for X and Y
    x0, y0, a0, b0 = _planted(rng, n=8, strength=0.0)
    null = association_test(x0, y0, a0, b0, n_permutations=20_000, n_bootstrap=0)
    assert null["p_value"] > 0.05


def test_sampled_p_values_repeat_with_a_seed():
    rng = np.random.default_rng(1)
    x, y, a, b = _planted(rng, n=20, strength=0.15)
    one = association_test(x, y, a, b, n_permutations=5000, seed=3)
    two = association_test(x, y, a, b, n_permutations=5000, seed=3)
    other = association_test(x, y, a, b, n_permutations=5000, seed=4)
    assert one["p_value_method"] == "sampled"
    assert one["p_value"] == two["p_value"]
    assert one["effect_size_ci_low"] == two["effect_size_ci_low"]
    assert (one["p_value"], one["effect_size_ci_low"]) != (other["p_value"],
                                                           other["effect_size_ci_low"])
    assert 0 < one["p_value"] <= 1


def test_user_defined_word_sets_and_bad_input():
    words = ("good", "bad", "happy", "sad", "he", "she", "car", "tree")
    vectors = (words, np.random.default_rng(0).normal(size=(8, 5)))
    test = {"first_target": ["he", "car"], "second_target": ["she", "tree"],
            "first_attribute": ["good", "happy"], "second_attribute": ["bad", "sad", "zzz"]}
    with pytest.warns(explain.ExplainWarning, match="zzz"):
        result = weat(vectors, tests={"mine": test}, n_permutations=100)
    assert result.to_frame().loc[0, "p_value_method"] == "exact"
    assert list(result.missing.word) == ["zzz"]
    empty = dict(test, second_target=["qqq", "rrr"])
    with pytest.raises(ValueError, match="qqq|second_target"), warnings.catch_warnings():
        warnings.simplefilter("ignore", explain.ExplainWarning)
        weat(vectors, tests={"mine": empty})
    with pytest.raises(ValueError, match="unknown association test 'weat11'"):
        weat(tests=["weat11"])
    with pytest.raises(ValueError, match="lacks"):
        weat(vectors, tests={"mine": {"first_target": ["he"]}})


def test_seat_on_a_tiny_encoder(tiny_bert):
    test = {"first_target": ["flower", "rose"], "second_target": ["insect", "spider"],
            "first_attribute": ["love", "peace"], "second_attribute": ["war", "death"]}
    result = seat(tiny_bert, tests={"flowers": test}, templates=["This is {}.", "{} is here."],
                  n_permutations=1000, n_bootstrap=50)
    row = result.to_frame().iloc[0]
    assert row.n_first_target == 4  # 2 words x 2 templates
    assert np.isfinite(row.effect_size) and 0 <= row.p_value <= 1
    assert explain.hooks.count_hooks(tiny_bert) == 0
    again = seat(tiny_bert, tests={"flowers": test}, templates=["This is {}.", "{} is here."],
                 n_permutations=1000, n_bootstrap=50)
    assert again.to_frame().iloc[0].effect_size == row.effect_size
    with pytest.raises(ValueError, match="placeholder"):
        seat(tiny_bert, tests={"flowers": test}, templates=["This is it."])
    assert figure_bytes(result.plot())[:4] == b"\x89PNG"
