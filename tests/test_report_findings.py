"""The summary's cards and findings: worded from their tables, never contradicting them.

Small constructed tables with a known answer; the demo's own cards and findings are checked
against its data/ in test_report_demo.py with the same checker (``summary_problems``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _report_demo import summary_problems

from explain.report import Report, build_report, findings, predict, read_texts

# ------------------------------------------------------------------------- text columns


def test_read_texts_names_the_column_the_rows_and_the_fix():
    data = pd.DataFrame({"text": ["a good film", np.nan, "dull", None, "  "]})
    with pytest.raises(ValueError, match=r"text column 'text' is empty or missing in 3 row\(s\) "
                                         r"\(positions counting from 0: 1, 3, 4\); drop those rows "
                                         r"\(data.dropna\(subset=\['text'\]\)\) or fill them"):
        read_texts(data, "text")
    assert read_texts(data, "text", [0, 2]) == ["a good film", "dull"]
    with pytest.raises(ValueError, match=r"positions counting from 0: 3\)"):
        read_texts(data, "text", [2, 3])
    with pytest.raises(TypeError, match=r"non-text values in 1 row\(s\) \(positions counting "
                                        r"from 0: 1; e.g. 5\).*astype\(str\)"):
        read_texts(pd.DataFrame({"text": ["fine", 5]}), "text")
    with pytest.raises(ValueError, match="text column 'txt' is not in the data"):
        read_texts(data, "txt")


def test_an_empty_text_cell_is_an_error_not_the_text_nan(tiny_bert):
    data = pd.DataFrame({"text": ["a good film", None, "dull"], "label": ["pos", "neg", "neg"]})
    with pytest.raises(ValueError, match=r"'text' is empty or missing in 1 row\(s\) \(positions "
                                         r"counting from 0: 1\)"):
        predict(tiny_bert, data, label="label")
    # the report checks the whole file before sampling, so the positions are the file's
    with pytest.raises(ValueError, match=r"positions counting from 0: 1\)"):
        build_report(tiny_bert, data, label="label", analyses=["predictions"], quiet=True,
                     max_rows=2)


def test_a_missing_sensitive_value_is_an_error_not_the_group_nan(tiny_mlp):
    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(40, 5)), columns=[f"x{i}" for i in range(5)])
    data["g"] = ["a", "b"] * 20
    data.loc[[3, 7], "g"] = None
    with pytest.raises(ValueError, match=r"sensitive column 'g' is missing in 2 row\(s\) "
                                         r"\(positions counting from 0: 3, 7\); drop those"):
        build_report(tiny_mlp, data, sensitive="g", analyses=["representation"], quiet=True)


# ------------------------------------------------------------------------- words


def test_whitespace_words_fold_contractions_and_drop_punctuation(tiny_bert):
    from explain.attribution import attribute

    texts = ["It doesn't work.", "(A good) film -- yes"]
    result = attribute(tiny_bert, texts, n_steps=4, faithfulness=False, progress=False)
    units = result.to_frame(level="word")
    assert {"doesn", "t", "'", "."} <= set(units["label"])  # what the tokenizer makes of it
    words = findings.whitespace_words(units, texts)
    assert list(words["word"]) == ["it", "doesn't", "work", "a", "good", "film", "yes"]
    # a word's score is the sum of its units; punctuation around it is left out
    first = units[units["input_id"] == 0].set_index("label")["score"]
    doesnt = words.set_index("word").loc["doesn't", "score"]
    assert doesnt == pytest.approx(first["doesn"] + first["'"] + first["t"], abs=0)
    assert words.set_index("word").loc["work", "score"] == first["work"]
    for row in words.itertuples():
        assert texts[row.input_id][row.start:row.end].lower() == row.word


def test_word_importance_agrees_with_global_importance_on_plain_words(tiny_bert):
    from explain.attribution import attribute

    rng = np.random.default_rng(0)
    vocabulary = ["good", "bad", "film", "plot", "dull", "warm"]
    texts = [" ".join(rng.choice(vocabulary, 5)) for _ in range(12)]
    result = attribute(tiny_bert, texts, n_steps=4, faithfulness=False, progress=False)
    words = findings.whitespace_words(result.to_frame(level="word"), texts)
    ours = findings.word_importance(words, min_count=3)
    reference = result.global_importance(min_count=3)
    pd.testing.assert_frame_equal(ours, reference)
    assert (ours["count"] >= 3).all()
    assert findings.word_importance(words, min_count=1000).empty


def test_importance_finding_states_the_minimum_count_and_an_interval_over_zero():
    table = pd.DataFrame({"predicted_label": ["fresh", "fresh", "rotten"],
                          "label": ["fine", "a", "dull"], "count": [12, 40, 15],
                          "mean_score": [0.2, 0.01, -0.05], "mean_abs_score": [0.2, 0.02, 0.05],
                          "ci_low": [0.1, 0.0, -0.08], "ci_high": [0.3, 0.02, 0.01]})
    text = findings.importance_finding("S", table, n_rows=120, unit="word",
                                       method="integrated_gradients")
    assert text == ("S: over 120 rows explained with integrated gradients, among words seen at "
                    f"least {findings.MIN_COUNT} times, the largest mean |attribution| is 'fine' "
                    "for predictions of 'fresh' (mean +0.200, 95% t-interval [+0.100, +0.300], 12 "
                    "occurrences); 'dull' for predictions of 'rotten' (mean -0.050, 95% t-interval "
                    "[-0.080, +0.010], 15 occurrences; the interval includes 0).")
    assert "there is none" in findings.importance_finding(
        "S", table.iloc[:0], n_rows=5, unit="word", method="saliency")


# ------------------------------------------------------------------------- faithfulness


def _scorecard_table():
    return pd.DataFrame({"method": ["integrated_gradients", "saliency", "input_x_gradient"],
                         "comprehensiveness": [0.2, -0.06, 0.05],
                         "random_comprehensiveness": [0.04, 0.04, 0.04],
                         "beats_random": [1.0, 2 / 3, 1 / 3], "n_inputs": [3, 3, 3]})


def test_scorecard_finding_says_which_methods_are_worse_than_random():
    text = findings.scorecard_finding("S", _scorecard_table())
    assert text == ("S: on the scorecard's 3 examples, mean comprehensiveness against a random "
                    "ranking's: better than random: integrated gradients 0.200 vs 0.040 (3 of 3 "
                    "explanations beat random); input × gradient 0.050 vs 0.040 (1 of 3 "
                    "explanations beat random). No better than a random ranking on average: "
                    "saliency -0.060 vs 0.040 (2 of 3 explanations beat random).")
    assert findings.scorecard_card(_scorecard_table()) == (
        "1 of 3", "scorecard methods no better than a random ranking on average (3 examples): "
                  "saliency")


def test_beats_random_card_names_method_and_count():
    table = pd.DataFrame({"comprehensiveness": [0.3, 0.1, np.nan, 0.0],
                          "random_comprehensiveness": [0.1, 0.2, 0.1, 0.0]})
    assert findings.beats_random_card(table, "integrated_gradients") == (
        "1 of 3", "integrated gradients explanations of the selected examples that beat a "
                  "random ranking on comprehensiveness")
    named = table.assign(faithfulness_definition="aopc")
    assert findings.beats_random_card(named, "saliency")[1].endswith(
        "on comprehensiveness (aopc definition)")


def _saved(tmp_path, card):
    """A report with an explanations table, a scorecard and the given card."""
    explained = pd.DataFrame({"input_id": [0, 1, 2], "row": [5, 7, 9],
                              "comprehensiveness": [0.3, 0.2, 0.25],
                              "random_comprehensiveness": [0.05, 0.04, 0.06]})
    per_input = pd.DataFrame({"method": ["integrated_gradients"] * 3 + ["saliency"] * 3,
                              "input_id": [0, 1, 2] * 2, "row": [5, 7, 9] * 2,
                              "comprehensiveness": [0.3, 0.2, 0.25, -0.1, 0.05, -0.1],
                              "random_comprehensiveness": [0.05, 0.04, 0.06] * 2})
    table = pd.DataFrame({"method": ["integrated_gradients", "saliency"],
                          "comprehensiveness": [0.25, -0.05],
                          "random_comprehensiveness": [0.05, 0.05],
                          "beats_random": [1.0, 1 / 3], "n_inputs": [3, 3]})
    report = Report(name="cards")
    report.add(explained, section="attributions", title="S: what each explanation says")
    card(report, report.last_id, explained)
    report.add(table, section="attributions", title="S: scorecard table")
    report.add_finding(findings.scorecard_finding("S", table), sources=report.last_id,
                       kind="scorecard")
    report.add(per_input, section="attributions", title="S: scorecard per explanation")
    return report.save(tmp_path)


def _consistent_card(report, source, explained):
    value, label = findings.beats_random_card(explained, "integrated_gradients")
    report.add_metric(f"S: {label}", value, sources=source, kind="beats_random")


def _old_card(report, source, explained):
    # the wording on main: a share of one method's explanations, named as if of all methods
    report.add_metric("S: attributions beating a random ranking", 1.0, percent=True,
                      note="share of explanations whose top units matter more than random ones")


def _contradicting_card(report, source, explained):
    report.add_metric("S: integrated gradients explanations of the selected examples that beat "
                      "a random ranking on comprehensiveness", "1 of 3", sources=source,
                      kind="beats_random")
    report.add_finding("S: every method beats a random ranking (0.999 vs 0.050).",
                       sources=source, kind="scorecard")


def test_the_checker_accepts_consistent_cards_and_rejects_the_old_wording(tmp_path):
    assert summary_problems(_saved(tmp_path / "a", _consistent_card)) == []
    old = summary_problems(_saved(tmp_path / "b", _old_card))
    assert any("names no source table" in p and "attributions beating" in p for p in old)
    wrong = summary_problems(_saved(tmp_path / "c", _contradicting_card))
    assert any("reads '1 of 3'; its table gives 3 of 3" in p for p in wrong)
    assert any("quotes 0.999" in p for p in wrong)  # not a number of its table
    assert any("not a scorecard" in p for p in wrong)


def test_the_checker_catches_a_scorecard_that_disagrees_with_the_explanations(tmp_path):
    path = _saved(tmp_path, _consistent_card)
    table = path / "data" / "attributions-s-scorecard-per-explanation.csv"
    frame = pd.read_csv(table)
    frame.loc[0, "comprehensiveness"] = 0.0  # integrated gradients loses to random on row 5
    frame.to_csv(table, index=False)
    assert summary_problems(path) == ["row 5: the explanations table and the scorecard "
                                      "disagree on whether integrated gradients beats random"]


def test_the_checker_catches_a_method_worse_than_random_called_better(tmp_path):
    path = _saved(tmp_path, _consistent_card)
    manifest = path / "manifest.json"
    data = json.loads(manifest.read_text())
    finding = next(f for f in data["findings"] if f["kind"] == "scorecard")
    finding["text"] = finding["text"].replace(". No better than a random ranking on average:",
                                              "; and")
    manifest.write_text(json.dumps(data))
    assert any("saliency is no better than random in the scorecard" in p
               for p in summary_problems(path))


# ------------------------------------------------------------------------- fairness


def _comparisons(change, low, high, p, verdict, n=12):
    return pd.DataFrame({"group": ["female", "nonbinary"], "reference": ["male", "male"],
                         "n_pairs": [n, n], "mean_change": [0.001, change],
                         "change_ci_low": [-0.001, low], "change_ci_high": [0.003, high],
                         "mean_abs_change": [0.001, abs(change)], "flip_rate": [0.0, 1 / 12],
                         "test": ["wilcoxon", "wilcoxon"], "p_value": [0.5, p],
                         "p_value_holm": [0.5, min(1.0, 2 * p)],
                         "verdict": ["not significant", verdict]})


def test_counterfactual_finding_calls_a_significant_tiny_change_negligible():
    options = {"target": "fresh", "alpha": 0.05, "negligible": 0.01}
    baseline = pd.DataFrame({"term": ["someone"], "reference_term": ["a person"],
                             "mean_change": [0.002], "change_ci_low": [-0.001],
                             "change_ci_high": [0.005]})
    text = findings.counterfactual_finding(
        "S", "gender", _comparisons(0.004, 0.002, 0.006, 0.0005, "negligible"),
        baseline=baseline, **options)
    assert text == ("S: swapping gender terms in template sentences changes the probability of "
                    "'fresh' for 0 of 2 groups against 'male' (Holm-adjusted p < 0.05 and mean "
                    "|change| at least 0.01). The largest mean change is for 'nonbinary': "
                    "+0.004 (95% CI [+0.002, +0.006], wilcoxon test over 12 pairs, Holm-adjusted "
                    "p = 0.001): significant but negligible (mean |change| under 0.01); the "
                    "predicted class flips for 8.3% of those pairs. A neutral swap ('a person' "
                    "to 'someone') changes it by +0.002 (95% CI [-0.001, +0.005]).")
    large = findings.counterfactual_finding(
        "S", "gender", _comparisons(-0.12, -0.15, -0.09, 0.0005, "change"), **options)
    assert "for 1 of 2 groups" in large and "p = 0.001): a change;" in large
    # a neutral swap as large as the identity swap: the change is no evidence of an identity
    # effect, and the finding says so
    neutral = baseline.assign(mean_change=-0.2, change_ci_low=-0.3, change_ci_high=-0.1)
    assert findings.counterfactual_finding(
        "S", "gender", _comparisons(-0.12, -0.15, -0.09, 0.0005, "change"), baseline=neutral,
        **options).endswith("changes it by -0.200 (95% CI [-0.300, -0.100]): 0 of the 1 changes "
                            "are larger than that; the others are no larger than swapping "
                            "neutral words.")
    assert findings.counterfactual_finding(
        "S", "gender", _comparisons(-0.12, -0.15, -0.09, 0.0005, "change"), baseline=baseline,
        **options).endswith(": 1 of the 1 changes is larger than that.")
    none = findings.counterfactual_finding(
        "S", "gender", _comparisons(-0.12, -0.3, 0.05, 0.2, "not significant"), **options)
    assert ": not significant;" in none and "for 0 of 2 groups" in none
    few = findings.counterfactual_finding(
        "S", "gender", _comparisons(-0.12, -0.15, -0.09, 0.0005, "change", n=4), **options)
    assert f"on too few pairs (fewer than {findings.MIN_COUNT}) to conclude" in few


def test_seat_finding_counts_holm_adjusted_tests():
    table = pd.DataFrame({"p_value": [0.001, 0.001, 0.04, np.nan],
                          "p_value_holm": [0.003, 0.003, 0.04, np.nan],
                          "effect_size": [0.9, 0.1, 0.8, np.nan]})
    assert findings.seat_finding("S", table) == (
        "S: 2 of 3 SEAT tests on the model's encoder show a medium or larger association "
        "(|d| >= 0.5, Holm-adjusted p < 0.05); 1 more are significant but negligible "
        "(|d| < 0.2); 1 could not be computed.")


def _probe(accuracy, low, high, *, is_input, input_accuracy=0.6, input_high=0.65):
    return pd.DataFrame({"layer": ["hidden.0"], "accuracy": [accuracy],
                         "accuracy_ci_low": [low], "accuracy_ci_high": [high],
                         "control_accuracy": [0.52], "majority_baseline": [0.5],
                         "input_accuracy": [input_accuracy], "input_ci_low": [0.55],
                         "input_ci_high": [input_high], "is_model_input": [is_input]})


def test_probe_verdict_claims_encoding_only_above_the_raw_inputs():
    trivial = findings.probe_verdict("sex", _probe(1.0, 0.99, 1.0, is_input=True))
    assert trivial.startswith("'sex' is an input of the model, so reading it out of the layers "
                              "is trivial")
    chance = findings.probe_verdict("race", _probe(0.53, 0.49, 0.57, is_input=False))
    assert chance.startswith("no layer reads 'race' clearly above chance")
    same = findings.probe_verdict("race", _probe(0.62, 0.58, 0.66, is_input=False))
    assert "not clearly better than from the raw inputs" in same and "encodes" not in same
    above = findings.probe_verdict("race", _probe(0.8, 0.76, 0.84, is_input=False))
    assert above.startswith("layer hidden.0 (accuracy 0.800, 95% CI [0.760, 0.840]; raw-input "
                            "probe 0.600") and "encodes 'race' beyond" in above


def test_audit_finding_quotes_test_holm_p_interval_and_negligible():
    disparities = pd.DataFrame({
        "sensitive_feature": ["race"] * 3, "class_label": ["recid"] * 3,
        "measure": ["demographic_parity", "accuracy_parity", "equal_opportunity"],
        "difference": [0.35, 0.012, 0.05], "high_group": ["B", "A", "B"],
        "low_group": ["A", "B", "A"], "p_value": [0.0001, 0.001, 0.2],
        "p_value_holm": [0.0003, 0.002, 0.2], "conclusion": ["disparity", "negligible",
                                                             "not significant"],
        "n_groups": [3, 3, 3], "small_groups": ["C (4)"] * 3})
    # C, a group of 4 rows, has the largest contrast; the finding quotes B's
    contrasts = pd.DataFrame({"sensitive_feature": ["race"] * 2, "class_label": ["recid"] * 2,
                              "metric": ["selection_rate"] * 2, "group": ["B", "C"],
                              "reference_group": ["A"] * 2, "difference": [0.35, -0.5],
                              "ci_low": [0.3, -0.9], "ci_high": [0.4, 0.1],
                              "small_group": [False, True]})
    [text] = findings.audit_findings("M", disparities, contrasts, alpha=0.05, negligible=0.02,
                                     confidence=0.95)
    assert text == (
        "M, by race (3 groups; under the minimum size: C (4) rows): a disparity in 1 of 3 "
        "measures (permutation test, Holm-adjusted p < 0.05, difference at least 0.02): "
        "demographic parity 0.350 (B vs A, p = 0.0003; B minus A selection rate +0.350, 95% CI "
        "[+0.300, +0.400]). Significant but negligible (under 0.02): accuracy parity 0.012 "
        "(p = 0.002). No evidence of a disparity: equal opportunity 0.050 (p = 0.2).")


def test_summary_groups_cards_and_findings_by_part_and_links_their_tables():
    report = Report(name="parts")
    report.add(pd.DataFrame({"x": [1, 2]}), section="predictions", title="A table")
    source = report.last_id
    report.add_metric("Sentiment: accuracy", 0.805, percent=True, sources=source,
                      kind="accuracy", part="Sentiment")
    report.add_finding("Sentiment: the model is right on 80.5% of 2 rows.", sources=source,
                       kind="predictions", part="Sentiment")
    report.add_finding("COMPAS model, by sex: nothing.", part="COMPAS")
    page = report.to_html()
    assert page.index("<h3 class=part id='summary-sentiment'>Sentiment</h3>") \
        < page.index(">80.5%<") < page.index("<h3 class=part id='summary-compas'>COMPAS</h3>") \
        < page.index("COMPAS model, by sex")
    assert "<li data-kind='predictions'>The model is right on 80.5% of 2 rows." in page
    assert f"(<a href='#{source}' data-source='data/{source}.csv'>table</a>)" in page
    with pytest.raises(ValueError, match="unknown source item.*'nowhere'"):
        report.add_finding("x", sources="nowhere")
    manifest = report.manifest()
    assert manifest["findings"][0] == {"text": "Sentiment: the model is right on 80.5% of 2 "
                                               "rows.", "kind": "predictions",
                                       "part": "Sentiment", "sources": [source]}
