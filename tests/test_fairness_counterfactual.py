"""Counterfactual probes: planted bias found with the right sign, swaps, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import explain
from explain.fairness import counterfactual, fill_template, identity_terms, swap_terms
from explain.fairness._common import holm
from explain.fairness.counterfactual import LM_NEGLIGIBLE_CHANGE, _paired_test
from explain.fairness.intervals import mean_interval
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
    result = counterfactual(model, axis="religion")
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
    # -0.087, a change smaller than the baseline's 0.318
    weaker = counterfactual(bag_of_words({"muslim": -0.5, "person": 1.5}), axis="religion")
    assert weaker.comparisons.set_index("group").loc["muslim", "verdict"] == "change"
    assert weaker.summary().endswith("0 of the 1 change is larger than that.")
    t_test = counterfactual(model, axis="religion", test="t")
    assert t_test.comparisons.set_index("group").loc["muslim", "p_value"] < 0.01
    assert explain.hooks.count_hooks(model) == 0


def test_swaps_in_real_sentences_have_one_direction():
    model = bag_of_words({"she": 2.0, "her": 2.0})
    texts = ["He loved the film.", "She hated it.", "A boring mess.", "I told him it was good."]
    with pytest.warns(explain.ExplainWarning, match="1 contain no word"):
        result = counterfactual(model, texts, swaps="gender")
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
    result = counterfactual(model, axis="religion")
    muslim = result.comparisons.set_index("group").loc["muslim"]
    assert muslim.p_value_holm < 0.05 and muslim.mean_abs_change < 0.001
    assert muslim.verdict == "negligible"
    summary = result.summary()
    assert "no group changes P(pos) significantly by 0.01 or more" in summary
    assert "2.5e-04 ('muslim' vs 'christian', Holm p=0.0024: significant but negligible)" \
        in summary
    strict = counterfactual(model, axis="religion", negligible_change=0.0)
    assert strict.comparisons.set_index("group").loc["muslim", "verdict"] == "change"
    # a randomly initialised network: tiny, consistent, significant changes; never a finding
    random = counterfactual(tiny_bert, axis="religion")
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
                            reference="christian")
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
    with pytest.raises(ValueError, match=r"negligible_change must be a number in \[0, 1\], "
                                         r"got -0.1; it is a change of probability"):
        counterfactual(model, axis="age", negligible_change=-0.1)
    with pytest.raises(ValueError, match="two different neutral terms"):
        counterfactual(model, axis="age", baseline_terms="someone")
    with pytest.raises(ValueError, match="nothing to compare"), warnings.catch_warnings():
        warnings.simplefilter("ignore", explain.ExplainWarning)
        counterfactual(model, ["A boring mess."])
    assert fill_template("{} wrote this.", "a woman") == "A woman wrote this."


def test_figures(tiny_bert):
    result = counterfactual(bag_of_words({"muslim": -1.0, "jewish": 0.5}), axis="religion")
    for kind in result.PLOTS:
        assert figure_bytes(result.plot(kind))[:4] == b"\x89PNG"
    shifts = result.plot("score_shifts").axes[0]
    assert shifts.get_yticklabels()[0].get_text() == "baseline: 'someone' vs 'a person'"
    assert "negligible, |change| < 0.01" in shifts.get_xlabel()
    assert "Counterfactual" in result._repr_html_()
    small = counterfactual(tiny_bert, axis="gender")
    assert np.isfinite(small.to_frame().score).all()
    assert explain.hooks.count_hooks(tiny_bert) == 0


def test_attributions_blame_the_identity_word():
    model = bag_of_words({"muslim": -3.0, "person": 1.5})
    result = counterfactual(model, axis="religion", attributions=True)
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


# ------------------------------------------------------------- calibration with a known truth

def _covered(low, high, truth):
    return float(np.mean((low <= truth) & (truth <= high)))


def _percentile_bootstrap(rng, values, n_boot=1000):
    """The interval printed before: percentile bootstrap of the mean, units resampled."""
    index = rng.integers(0, values.shape[1], size=(n_boot, values.shape[1]))
    means = values[:, index].mean(axis=2)
    return np.quantile(means, 0.025, axis=1), np.quantile(means, 0.975, axis=1)


def test_the_interval_of_a_mean_change_over_12_templates_covers_at_nominal():
    """12 templates, change per template = a known mean change (0.05) + template-to-template
    variation. The Student-t interval covers within 2 points of 95% (3000 runs: standard error
    0.004); the percentile bootstrap the probe printed before covers 0.91, and so would an
    interval of half the width: the check fails a wrong interval (bench: 'means' section)."""
    rng = np.random.default_rng(11)
    truth = 0.05
    change = truth + 0.05 * rng.standard_normal((3000, 12))
    low, high = mean_interval(change, 0.95)
    assert abs(_covered(low, high, truth) - 0.95) <= 0.02
    centre, half = (low + high) / 2, (high - low) / 2
    assert _covered(centre - half / 2, centre + half / 2, truth) < 0.93
    assert _covered(*_percentile_bootstrap(rng, change[:1000]), truth) < 0.93
    # skewed changes (the identity term matters much more in a few templates): no interval
    # of a mean over 12 units is exact; the t interval still covers more than the bootstrap
    skewed = truth + 0.05 * (rng.exponential(1.0, (1000, 12)) - 1.0)
    t_coverage = _covered(*mean_interval(skewed, 0.95), truth)
    assert t_coverage >= 0.86 and t_coverage >= _covered(*_percentile_bootstrap(rng, skewed),
                                                         truth)
    # many sentences (the swaps design): within 2 points for a skewed change too
    sentences = truth + 0.05 * (rng.exponential(1.0, (2000, 200)) - 1.0)
    assert abs(_covered(*mean_interval(sentences, 0.95), truth) - 0.95) <= 0.02


def test_the_probe_prints_the_t_interval_of_its_per_template_changes():
    model = bag_of_words({"muslim": -2.0, "film": 1.0, "movie": -1.0, "doctor": 2.0,
                          "person": 0.5})
    result = counterfactual(model, axis="religion", confidence=0.9)
    per_unit = result.to_frame().groupby(["unit", "group"])["score"].mean().unstack()
    change = (per_unit["muslim"] - per_unit["christian"]).to_numpy()
    assert change.std() > 0.01  # the change differs between templates
    expected = stats.ttest_1samp(change, 0.0).confidence_interval(0.9)
    row = result.comparisons.set_index("group").loc["muslim"]
    assert row.change_ci_low == pytest.approx(expected.low, rel=1e-12)
    assert row.change_ci_high == pytest.approx(expected.high, rel=1e-12)
    expected = stats.ttest_1samp(per_unit["muslim"].to_numpy(), 0.0).confidence_interval(0.9)
    group = result.groups.set_index("group").loc["muslim"]
    assert (group.ci_low, group.ci_high) == pytest.approx((expected.low, expected.high),
                                                          rel=1e-12)
    assert result.meta["parameters"]["interval"] == "student-t"


@pytest.mark.parametrize(("test", "noise"), [("wilcoxon", "normal"), ("wilcoxon", "lognormal"),
                                             ("t", "normal")])
def test_paired_tests_hold_their_level_when_the_swap_changes_nothing(test, noise):
    """12 templates; group and reference scores exchangeable (template effect + independent
    noise of one distribution), so every change is symmetric about 0. At most 5% of p-values
    fall below 0.05 and about 20% below 0.2 (up to 3 Monte Carlo standard errors): the
    p-values are valid and not uselessly conservative. Reporting half the p-value fails."""
    rng = np.random.default_rng(13)
    runs = 600
    draw = ((lambda: rng.normal(0, 0.05, (runs, 12))) if noise == "normal"
            else (lambda: 0.05 * rng.lognormal(0, 1, (runs, 12))))
    template = rng.uniform(0.2, 0.8, (runs, 1))
    changes = (template + draw()) - (template + draw())
    p = np.array([_paired_test(c, test)[1] for c in changes])
    error = 3 * np.sqrt(0.2 * 0.8 / runs)
    assert np.mean(p < 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / runs)
    assert abs(np.mean(p < 0.2) - 0.2) <= error
    assert np.mean(p / 2 < 0.2) > 0.2 + error


# ------------------------------------------------------------- causal LMs: continuations


def test_a_causal_lm_scores_the_log_probability_of_its_continuation(tiny_gpt2):
    templates = ["{} was good and", "the film was bad and {}"]
    terms = {"men": ["he", "the old man"], "women": ["she"]}
    result = counterfactual(tiny_gpt2, terms=terms, templates=templates,
                            continuation=" the acting")
    frame = result.to_frame()
    assert len(frame) == 6 and "predicted_label" not in frame
    assert (frame["continuation"] == " the acting").all()
    # the score is log P(continuation tokens | BOS + text tokens), from one direct forward
    tokenizer = tiny_gpt2.tokenizer
    row = frame.iloc[1]
    prefix = [tokenizer.bos_token_id, *tokenizer(row.text, add_special_tokens=False)["input_ids"]]
    tail = tokenizer(" the acting", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prefix + tail])
    with torch.no_grad():
        log_probs = torch.log_softmax(tiny_gpt2.model(input_ids=ids).logits[0].double(), -1)
    expected = sum(log_probs[len(prefix) - 1 + k, t].item() for k, t in enumerate(tail))
    assert row.score == pytest.approx(expected, rel=1e-5)
    comparison = result.comparisons.iloc[0]
    assert comparison.group == "women" and np.isnan(comparison.flip_rate)
    assert len(result.baseline) == 1 and np.isnan(result.baseline.iloc[0].flip_rate)
    parameters = result.meta["parameters"]
    assert parameters["score"] == "log_probability"
    assert parameters["negligible_change"] == LM_NEGLIGIBLE_CHANGE
    assert parameters["continuation"] == [" the acting"] * 2
    assert "log P(' the acting' | text)" in result.summary()
    for kind in result.PLOTS:
        assert figure_bytes(result.plot(kind))
    assert explain.hooks.count_hooks(tiny_gpt2) == 0


def test_one_continuation_per_unit_and_the_options_an_lm_refuses(tiny_gpt2, tiny_bert):
    texts = ["he was good and", "she was bad and"]
    result = counterfactual(tiny_gpt2, texts, continuation=[" the film", " the plot"])
    frame = result.to_frame()
    assert frame.groupby("unit")["continuation"].unique().map(list).tolist() == \
        [[" the film"], [" the plot"]]
    with pytest.raises(ValueError, match="pass continuation=' nurse' or one non-empty string "
                                         "per text \\(2\\)"):
        counterfactual(tiny_gpt2, texts, continuation=[" the film"])
    with pytest.raises(ValueError, match="a causal LM is scored by the log-probability"):
        counterfactual(tiny_gpt2, templates=["{} was good"])
    with pytest.raises(ValueError, match="target='pos' applies to classifiers only"):
        counterfactual(tiny_gpt2, templates=["{} was good"], continuation=" and", target="pos")
    with pytest.raises(ValueError, match="attributions=True applies to classifiers only"):
        counterfactual(tiny_gpt2, templates=["{} was good"], continuation=" and",
                       attributions=True)
    with pytest.raises(ValueError, match="negligible_change must be a non-negative number"):
        counterfactual(tiny_gpt2, templates=["{} was good"], continuation=" and",
                       negligible_change=-0.1)
    with pytest.raises(ValueError, match="continuation= applies to causal LMs only"):
        counterfactual(tiny_bert, templates=["{} was good"], continuation=" and")
