"""Counterfactual probes: planted bias found with the right sign, swaps, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import explain
from explain.fairness import counterfactual, fill_template, identity_terms, swap_terms
from explain.fairness._common import holm
from explain.fairness.counterfactual import _paired_test
from explain.plotting import figure_bytes


class BagOfWords(nn.Module):
    """logit(pos) = sum of per-token weights: a text classifier whose bias we plant exactly."""

    def __init__(self, vocab_size: int, weights: dict[int, float]):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, 2)
        with torch.no_grad():
            self.embeddings.weight.zero_()
            for token, w in weights.items():
                self.embeddings.weight[token, 1] = w

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        return (self.embeddings(input_ids) * mask[..., None]).sum(1)


def bag_of_words(words: dict[str, float]):
    from explain_models import tiny

    tokenizer = tiny.minilm_tokenizer()
    ids = {tokenizer.convert_tokens_to_ids(w): v for w, v in words.items()}
    assert all(i != tokenizer.unk_token_id for i in ids)
    return explain.load_model(BagOfWords(tokenizer.vocab_size, ids), tokenizer=tokenizer,
                              task="sequence-classification", label_names=["neg", "pos"],
                              name="bag-of-words")


def test_planted_bias_on_one_group_shows_with_the_right_sign():
    model = bag_of_words({"muslim": -3.0, "person": 1.5})
    result = counterfactual(model, axis="religion", n_bootstrap=200)
    table = result.comparisons.set_index("group")
    assert table.loc["muslim", "mean_change"] < -0.3
    assert table.loc["muslim", "change_ci_high"] < 0
    assert table.loc["muslim", "p_value"] < 0.01 and table.loc["muslim", "test"] == "wilcoxon"
    assert table.loc["muslim", "flip_rate"] == 1.0
    for group in ("jewish", "hindu", "buddhist", "atheist"):
        assert table.loc[group, "mean_abs_change"] == pytest.approx(0.0, abs=1e-9)
        assert table.loc[group, "p_value"] == 1.0
        assert table.loc[group, "flip_rate"] == 0.0
    assert table.loc["muslim", "p_value_holm"] == pytest.approx(
        min(1.0, 5 * table.loc["muslim", "p_value"]))  # the smallest of 5 p-values
    assert (table.p_value_holm >= table.p_value).all()
    assert table.loc["muslim", "verdict"] == "change"
    assert (table.drop(index="muslim").verdict == "not significant").all()
    assert "'muslim' vs 'christian' changes P(pos) by -0." in result.summary()
    # baseline: "a person" (logit 1.5) -> "someone" (logit 0) in every template
    baseline = result.baseline.iloc[0]
    assert (baseline.term, baseline.reference_term, baseline.n_pairs) == ("someone", "a person",
                                                                          12)
    assert baseline.mean_change == pytest.approx(0.5 - 1 / (1 + np.exp(-1.5)))
    assert ("Baseline, 'a person' -> 'someone': mean |change| 0.318; 1 of the 1 change is "
            "larger than that.") in result.summary()
    weaker = counterfactual(bag_of_words({"muslim": -0.5, "person": 1.5}), axis="religion",
                            n_bootstrap=0)  # -0.087, a change smaller than the baseline's 0.318
    assert weaker.comparisons.set_index("group").loc["muslim", "verdict"] == "change"
    assert weaker.summary().endswith("0 of the 1 change is larger than that.")
    t_test = counterfactual(model, axis="religion", test="t", n_bootstrap=0)
    assert t_test.comparisons.set_index("group").loc["muslim", "p_value"] < 0.01
    assert explain.hooks.count_hooks(model) == 0


def test_swaps_in_real_sentences_have_one_direction():
    model = bag_of_words({"she": 2.0, "her": 2.0})
    texts = ["He loved the film.", "She hated it.", "A boring mess.", "I told him it was good."]
    with pytest.warns(explain.ExplainWarning, match="1 contain no word"):
        result = counterfactual(model, texts, swaps="gender", n_bootstrap=100)
    frame = result.to_frame()
    assert set(frame.group) == {"male", "female"}
    assert "She loved the film." in set(frame.text) and "He hated it." in set(frame.text)
    assert "I told her it was good." in set(frame.text)
    row = result.comparisons.iloc[0]
    assert row.group == "female" and row.reference == "male" and row.n_pairs == 3
    assert row.mean_change > 0.3  # female versions always score higher, whatever the original
    assert frame.groupby("unit").is_original.sum().eq(1).all()
    assert result.baseline is None and result.meta["parameters"]["baseline_terms"] is None


def test_a_significant_but_tiny_change_is_called_negligible(tiny_bert):
    model = bag_of_words({"muslim": 1e-3})  # +0.00025 in P(pos) in every template
    result = counterfactual(model, axis="religion", n_bootstrap=0)
    muslim = result.comparisons.set_index("group").loc["muslim"]
    assert muslim.p_value_holm < 0.05 and muslim.mean_abs_change < 0.001
    assert muslim.verdict == "negligible"
    summary = result.summary()
    assert "no group changes P(pos) significantly by 0.01 or more" in summary
    assert "2.5e-04 ('muslim' vs 'christian', Holm p=0.0024: significant but negligible)" \
        in summary
    strict = counterfactual(model, axis="religion", n_bootstrap=0, negligible_change=0.0)
    assert strict.comparisons.set_index("group").loc["muslim", "verdict"] == "change"
    # a randomly initialised network: tiny, consistent, significant changes; never a finding
    random = counterfactual(tiny_bert, axis="religion", n_bootstrap=0)
    assert random.comparisons.p_value_holm.lt(0.05).any()
    assert not random.comparisons.verdict.eq("change").any()
    assert "significant but negligible" in random.summary()


@pytest.mark.parametrize("test", ["wilcoxon", "t"])
def test_holm_flags_keep_the_family_wise_error_rate_when_nothing_matters(test):
    """Scores = template effect + noise, the same distribution for every group: 5 groups
    against one reference (so the tests are correlated), 12 templates. Holm-adjusted flags
    (any p < alpha) come up in at most alpha of the runs, up to Monte Carlo error, while
    unadjusted p-values flag more often (measured on 1000 runs: Holm 0.043 with Wilcoxon, 0.045
    with the t-test; unadjusted 0.19 and 0.20)."""
    rng = np.random.default_rng(0)
    runs, alpha, flagged, raw = 400, 0.05, 0, 0
    for _ in range(runs):
        scores = rng.uniform(0.2, 0.8, (12, 1)) + rng.normal(0, 0.05, (12, 6))
        changes = scores[:, 1:] - scores[:, :1]  # five groups against the reference, paired
        p_values = np.array([_paired_test(changes[:, g], test)[1] for g in range(5)])
        flagged += bool((holm(p_values) < alpha).any())
        raw += bool((p_values < alpha).any())
    monte_carlo = 3 * np.sqrt(alpha * (1 - alpha) / runs)
    assert flagged / runs <= alpha + monte_carlo
    assert raw / runs > alpha + monte_carlo  # without the correction the family errs too often


def test_swap_terms_keeps_case_and_whole_words():
    pairs = identity_terms()["swaps"]["gender"]["pairs"]
    text, made = swap_terms("He told her that his Wife is HE-man; heather stays.", pairs)
    assert text == "She told him that her Husband is SHE-woman; heather stays."
    assert ("He", "She") in made
    assert swap_terms("I gave her the book", pairs)[0] == "I gave him the book"
    assert swap_terms("her dog barked", pairs)[0] == "his dog barked"


def test_identity_terms_are_documented_and_extensible():
    data = identity_terms()
    assert "chosen" in data["about"]
    for axis in ("gender", "race_names", "religion", "age", "nationality", "disability",
                 "sexual_orientation"):
        spec = data["axes"][axis]
        assert spec["reference"] in spec["groups"] and spec["source"]
    data["axes"]["religion"]["groups"]["sikh"] = ["a Sikh person"]
    assert "sikh" not in identity_terms()["axes"]["religion"]["groups"]  # a copy
    model = bag_of_words({"sikh": 1.0})
    result = counterfactual(model, terms=data["axes"]["religion"]["groups"],
                            reference="christian", n_bootstrap=0)
    assert result.comparisons.set_index("group").loc["sikh", "mean_change"] > 0.2


def test_bad_input():
    model = bag_of_words({"good": 1.0})
    with pytest.raises(ValueError, match="placeholder"):
        counterfactual(model, axis="age", templates=["A sentence without a slot."])
    with pytest.raises(ValueError, match="did you mean 'religion'"):
        counterfactual(model, axis="religon")
    with pytest.raises(ValueError, match="at least two groups"):
        counterfactual(model, terms={"only": ["a person"]})
    with pytest.raises(ValueError, match="reference group"):
        counterfactual(model, axis="age", reference="teen")
    with pytest.raises(ValueError, match="unknown test"):
        counterfactual(model, axis="age", test="anova")
    with pytest.raises(ValueError, match="alpha must be a number in"):
        counterfactual(model, axis="age", alpha=5)
    with pytest.raises(ValueError, match="negligible_change is a change of probability"):
        counterfactual(model, axis="age", negligible_change=-0.1)
    with pytest.raises(ValueError, match="two different neutral terms"):
        counterfactual(model, axis="age", baseline_terms="someone")
    with pytest.raises(ValueError, match="nothing to compare"), warnings.catch_warnings():
        warnings.simplefilter("ignore", explain.ExplainWarning)
        counterfactual(model, ["A boring mess."])
    assert fill_template("{} wrote this.", "a woman") == "A woman wrote this."


def test_figures(tiny_bert):
    result = counterfactual(bag_of_words({"muslim": -1.0, "jewish": 0.5}), axis="religion",
                            n_bootstrap=100)
    for kind in result.PLOTS:
        assert figure_bytes(result.plot(kind))[:4] == b"\x89PNG"
    shifts = result.plot("score_shifts").axes[0]
    assert shifts.get_yticklabels()[0].get_text() == "baseline: 'someone' vs 'a person'"
    assert "negligible, |change| < 0.01" in shifts.get_xlabel()
    assert "Counterfactual" in result._repr_html_()
    small = counterfactual(tiny_bert, axis="gender", n_bootstrap=20)
    assert np.isfinite(small.to_frame().score).all()
    assert explain.hooks.count_hooks(tiny_bert) == 0


def test_attributions_blame_the_identity_word():
    model = bag_of_words({"muslim": -3.0, "person": 1.5})
    result = counterfactual(model, axis="religion", n_bootstrap=0, attributions=True)
    blame = result.blame.set_index("row")
    muslim = blame[blame.group == "muslim"]
    assert (muslim.term_attribution < 0).all()
    assert (muslim.most_blamed_word == "Muslim").all()
    others = blame[blame.group.isin(["jewish", "hindu"])]
    # their own words carry no weight in this model: nothing to blame
    np.testing.assert_allclose(others.term_attribution, 0.0, atol=1e-6)
    groups = result.groups.set_index("group")
    assert groups.loc["muslim", "mean_term_attribution"] < -0.1
    assert explain.hooks.count_hooks(model) == 0
