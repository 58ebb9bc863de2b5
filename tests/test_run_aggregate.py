"""Dataset-level aggregates of runs (explain.run.aggregate), the report of runs and the
``--from`` commands: the streamed numbers equal the in-memory API on the same rows."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import explain
from explain.attention.graph import HEAD_STATISTICS
from explain.attribution.methods import method_title
from explain.attribution.result import importance_table
from explain.cli import main
from explain.fairness.intervals import mean_interval, wilson_interval
from explain.report import report_from_run
from explain.run import aggregate, read_table, run

TEXTS = [
    "He was brilliant in this film and his timing is perfect.",
    "She gives a dull, lifeless performance.",
    "A moving story; her best work yet.",
    "The plot is thin and the jokes fall flat.",
    "His brother steals every scene he is in.",
    "A beautiful, funny and sad film about a mother and her son.",
    "Boring.",
    "The actors do what they can with a weak script.",
    "He never convinces as a father.",
    "Her daughter is the heart of the movie, and she is wonderful.",
    "Funny, warm and smart.",
    "It drags, and the ending makes no sense.",
]
LABELS = [1, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1, 0]
METHODS = ("saliency", "input_x_gradient")
CHUNK = 8  # 2 uneven shards of 12 rows


@pytest.fixture(scope="module")
def sentiment():
    import explain_models

    return explain.load_model(explain_models.ensure("sentiment"))


@pytest.fixture(scope="module")
def runs(sentiment, tmp_path_factory):
    """One run of each analysis over the same 12 texts (+ a group column for the audit)."""
    root = tmp_path_factory.mktemp("runs")
    data = root / "texts.csv"
    pd.DataFrame({"text": TEXTS, "label": LABELS,
                  "group": ["a", "b", "c"] * 4}).to_csv(data, index=False)
    options = {"attribute": {"methods": METHODS, "faithfulness": False},
               "score": {"label": "label"}, "attention": {}, "counterfactual": {}}
    return {analysis: run(analysis, sentiment, data, root / analysis, chunk_size=CHUNK,
                          progress=False, **kw).out for analysis, kw in options.items()}


def _whole(out: Path, table: str) -> pd.DataFrame:
    return pd.concat(read_table(out, table), ignore_index=True)


def test_global_importance_equals_the_in_memory_api(sentiment, runs):
    out = runs["attribute"]
    units = _whole(out, "units")
    table = aggregate.global_importance(out)
    for method in METHODS:
        got = table[table["method"] == method].drop(columns=["method", "n_rows"])
        got = got.reset_index(drop=True)
        # the in-memory function on the run's own rows, to the last digits
        mine = units[units["method"] == method].assign(label=lambda f: f["label"].str.lower())
        expected = importance_table(mine)
        pd.testing.assert_frame_equal(got[["predicted_label", "label", "count"]],
                                      expected[["predicted_label", "label", "count"]])
        for column in ("mean_score", "mean_abs_score", "ci_low", "ci_high"):
            np.testing.assert_allclose(got[column], expected[column], rtol=1e-9, atol=1e-15)
        # every occurrence of every row is counted, once
        assert got["count"].sum() == len(mine)
        assert (table.loc[table["method"] == method, "n_rows"] == len(TEXTS)).all()
    assert len(_whole(out, "explanations")) == len(TEXTS) * len(METHODS)
    # the in-memory API on the same texts (other batches: float32 noise only)
    memory = explain.attribute(sentiment, TEXTS, method=METHODS[0], faithfulness=False,
                               progress=False).global_importance()
    got = table[table["method"] == METHODS[0]].reset_index(drop=True)
    assert list(got["label"]) == list(memory["label"])
    assert (got["count"] == memory["count"]).all()
    np.testing.assert_allclose(got["mean_score"], memory["mean_score"], rtol=1e-4, atol=1e-7)
    at_least = aggregate.global_importance(out, min_count=3, lowercase=False)
    assert (at_least["count"] >= 3).all() and len(at_least) < len(table)


@pytest.fixture(scope="module")
def faithful(sentiment, runs):
    """An attribute run with faithfulness (aopc) and integrated gradients' adaptive steps."""
    out = Path(runs["attribute"])
    return run("attribute", sentiment, out.parent / "texts.csv", out.parent / "faithful",
               chunk_size=CHUNK, progress=False, methods=("saliency", "integrated_gradients"),
               n_steps="auto").out


def test_faithfulness_equals_the_explanations_of_every_row(faithful, runs):
    table = aggregate.faithfulness(faithful)
    whole = _whole(faithful, "explanations")
    for method in ("saliency", "integrated_gradients"):
        mine = whole[whole["method"] == method]
        got = table[table["method"] == method].set_index("measure")
        for measure in ("comprehensiveness", "random_comprehensiveness",
                        "comprehensiveness_gain", "sufficiency", "random_sufficiency"):
            low, high = mean_interval(mine[measure].to_numpy(float), 0.95)
            np.testing.assert_allclose(
                got.loc[measure, ["mean", "ci_low", "ci_high"]].to_numpy(float),
                [mine[measure].mean(), low, high], rtol=1e-9)
            assert got.loc[measure, "count"] == len(TEXTS)
        beats = int((mine["comprehensiveness"] > mine["random_comprehensiveness"]).sum())
        low, high = wilson_interval(beats, len(TEXTS), 0.95)
        np.testing.assert_allclose(
            got.loc["beats_random", ["mean", "ci_low", "ci_high"]].to_numpy(float),
            [beats / len(TEXTS), low, high], rtol=1e-12)
        assert got.loc["beats_random", "interval"] == "Wilson"
        assert set(got["definition"]) == {"aopc"}
    ig = table[table["method"] == "integrated_gradients"].set_index("measure")
    steps = whole.loc[whole["method"] == "integrated_gradients", "n_steps"]
    assert ig.loc["n_steps", "mean"] == pytest.approx(steps.mean())
    assert set(steps) <= {9, 17, 33, 65, 129, 257, 513}
    saliency = set(table.loc[table["method"] == "saliency", "measure"])
    assert not saliency & {"n_steps", "relative_delta"}  # no steps, no completeness error
    # a run without faithfulness has none of its rows
    assert not set(aggregate.faithfulness(runs["attribute"])["measure"]) & {
        "comprehensiveness", "beats_random"}


def test_auto_steps_need_an_integrating_method(sentiment, runs, tmp_path):
    data = Path(runs["attribute"]).parent / "texts.csv"
    with pytest.raises(ValueError, match="applies to the integrating methods"):
        run("attribute", sentiment, data, tmp_path / "out", methods=("saliency",),
            n_steps="auto", progress=False)
    assert not (tmp_path / "out").exists()


def test_report_from_a_faithful_run_states_its_aggregate(faithful, tmp_path):
    path = report_from_run(faithful, name="faithful").save(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    said = [f for f in manifest["findings"] if f["kind"] == "faithfulness"]
    assert len(said) == 2  # one per method
    table = aggregate.faithfulness(faithful)
    for finding, method in zip(said, ("saliency", "integrated_gradients"), strict=True):
        rows = table[table["method"] == method].set_index("measure")
        text = finding["text"]
        assert f"over {len(TEXTS)} explanations ({method_title(method)}, aopc" in text
        assert f"by {rows.loc['comprehensiveness', 'mean']:.3f} on average" in text
        gain = rows.loc["comprehensiveness_gain"]
        assert f"a gain of {gain['mean']:+.3f} ([{gain['ci_low']:+.3f}" in text
        verdict = ("better than" if gain["ci_low"] > 0 else "worse than"
                   if gain["ci_high"] < 0 else "not distinguishable from")
        assert f"{verdict} a random ranking" in text
        assert f"{100 * rows.loc['beats_random', 'mean']:.1f}% of the explanations" in text
        assert ("gradients per explanation" in text) == (method == "integrated_gradients")
        shown = pd.read_csv(path / "data" / f"{finding['sources'][0]}.csv")
        assert list(shown["measure"]) == list(rows.index)


def test_head_statistics_equal_the_in_memory_api(sentiment, runs):
    out = runs["attention"]
    heads = _whole(out, "heads")
    table = aggregate.head_statistics(out)
    memory = explain.attention(sentiment, TEXTS).head_statistics()
    assert len(table) == len(memory) * len(HEAD_STATISTICS)
    for statistic in HEAD_STATISTICS:
        got = table[table["statistic"] == statistic].reset_index(drop=True)
        assert (got["count"] == len(TEXTS)).all()
        np.testing.assert_allclose(got["mean"], memory[statistic], rtol=1e-5, atol=1e-8)
        values = heads.pivot(index=["layer", "head"], columns="row", values=statistic)
        low, high = mean_interval(values.to_numpy(), 0.95)
        np.testing.assert_allclose(got["mean"], values.mean(axis=1), rtol=1e-9)
        np.testing.assert_allclose(got["ci_low"], low, rtol=1e-9)
        np.testing.assert_allclose(got["ci_high"], high, rtol=1e-9)


def test_flip_rates_equal_the_counterfactual_probe(sentiment, runs):
    table = aggregate.flip_rates(runs["counterfactual"])
    with pytest.warns(explain.ExplainWarning, match="no word of the swap list"):
        probe = explain.counterfactual(sentiment, TEXTS, swaps="gender")
    overall = table[table["group"] == "all"].iloc[0]
    comparison = probe.comparisons.iloc[0]
    assert overall["n_texts"] == comparison["n_pairs"] == 7
    assert overall["flip_rate"] == pytest.approx(comparison["flip_rate"])
    groups = table[table["group"] != "all"]
    assert set(groups["group"]) <= {"male", "female"}
    assert groups["n_texts"].sum() == overall["n_texts"]
    assert groups["n_flips"].sum() == overall["n_flips"]
    low, high = wilson_interval(table["n_flips"], table["n_texts"])
    np.testing.assert_allclose(table["ci_low"], low)
    np.testing.assert_allclose(table["ci_high"], high)
    assert (table["n_rows"] == len(TEXTS)).all()


def test_audit_from_a_run_equals_the_audit_of_its_scored_rows(sentiment, runs, tmp_path):
    out = runs["score"]
    options = {"n_permutations": 199, "min_group_size": 2, "seed": 3}
    result = aggregate.audit_run(out, sensitive_features="group", label="label", **options)
    frame = aggregate.scored_rows(out, ["group", "label", "score_fresh"])
    assert list(frame["row"]) == list(range(len(TEXTS)))
    expected = explain.audit(None, frame.assign(label=frame["label"].map({"0": "rotten",
                                                                          "1": "fresh"})),
                             sensitive_features="group", label="label", score="score_fresh",
                             positive_label="fresh", **options)
    for name, table in expected.tables().items():
        pd.testing.assert_frame_equal(result.tables()[name], table)
    # the model's own audit of the same rows: the same decisions
    data = pd.DataFrame({"text": TEXTS, "label": LABELS, "group": ["a", "b", "c"] * 4})
    model = explain.audit(sentiment, data, sensitive_features="group", label="label",
                          text="text", **options)
    pd.testing.assert_frame_equal(result.by_group, model.by_group, rtol=1e-6)
    code = main(["audit", "--from", str(out), "--sensitive", "group", "--label", "label",
                 "--n-permutations", "199", "--min-group-size", "2", "--seed", "3",
                 "--out", str(tmp_path / "audit")])
    assert code == 0
    written = pd.read_csv(tmp_path / "audit" / "disparities.csv")
    np.testing.assert_allclose(written["difference"], expected.disparities["difference"])
    np.testing.assert_allclose(written["p_value_holm"], expected.disparities["p_value_holm"])


def test_report_from_runs_covers_every_row_and_cites_them(runs, tmp_path):
    directories = [runs["attribute"], runs["score"], runs["attention"], runs["counterfactual"]]
    report = report_from_run(directories, name="from-runs", sensitive="group",
                             min_count=2, audit_options={"n_permutations": 199,
                                                         "min_group_size": 2})
    path = report.save(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    cited = manifest["config"]["runs"]
    assert [c["directory"] for c in cited] == [str(d.resolve()) for d in directories]
    for entry, directory in zip(cited, directories, strict=True):
        assert entry["manifest_sha256"] == hashlib.sha256(
            (directory / "manifest.json").read_bytes()).hexdigest()
        assert entry["n_rows"] == len(TEXTS)
    cards = {m["name"]: m["value"] for m in manifest["metrics"]}
    for method in METHODS:
        covered = cards[f"sentiment: rows covered by the global importance "
                        f"({method_title(method)})"]
        assert covered == f"{len(TEXTS)} of {len(TEXTS)}"
    kinds = {f["kind"] for f in manifest["findings"]}
    assert {"predictions", "importance", "heads", "counterfactual", "audit"} <= kinds
    for finding in manifest["findings"]:  # each sentence cites tables the report wrote
        assert finding["sources"]
        for source in finding["sources"]:
            assert (path / "data" / f"{source}.csv").is_file()
    accuracy = next(f for f in manifest["findings"] if f["kind"] == "predictions")["text"]
    counts = aggregate.prediction_counts(runs["score"])
    right = int(counts.loc[counts["label"] == counts["predicted_index"].astype(str),
                           "count"].sum())
    assert f"{100 * right / len(TEXTS):.1f}% of {len(TEXTS)} labelled rows" in accuracy
    figures = sorted(p.name for p in (path / "figures").glob("*.png"))
    assert sum(name.startswith("attributions-") for name in figures) == len(METHODS)
    assert sum(name.startswith("attention-") for name in figures) == 2  # the two heatmaps
    assert (path / "index.html").is_file()


def test_report_cli_from_runs_and_its_errors(runs, tmp_path, capsys):
    code = main(["report", "--from", str(runs["attribute"]), "--from", str(runs["score"]),
                 "--out", str(tmp_path / "cli"), "--quiet"])
    assert code == 0
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert [c["analysis"] for c in manifest["config"]["runs"]] == ["attribute", "score"]
    capsys.readouterr()
    assert main(["report", "--from", str(runs["score"]), "--model", "sentiment",
                 "--out", str(tmp_path / "mixed")]) == 1
    assert "reports on finished runs; --model do not apply" in capsys.readouterr().err
    assert main(["audit", "--from", str(runs["attribute"]), "--sensitive", "group",
                 "--out", str(tmp_path / "audit")]) == 1
    error = capsys.readouterr().err
    assert f"{str(runs['attribute'])!r} is a run of 'attribute'; an audit needs a run of " \
           f"'score'" in error
    with pytest.raises(ValueError, match="needs a score run"):
        report_from_run(runs["attribute"], sensitive="group")
    # a run killed half-way: its manifest says which shards are missing
    broken = tmp_path / "broken"
    shutil.copytree(runs["attribute"], broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["status"] = "incomplete"
    manifest["shards"][1]["status"] = "pending"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    for call in (lambda: aggregate.global_importance(broken),
                 lambda: report_from_run(broken)):
        with pytest.raises(ValueError, match=r"'.*broken' is incomplete: 1 of 2 shards done; "
                                             r"rerun the same command"):
            call()
    for function in (aggregate.head_statistics, aggregate.flip_rates, aggregate.scored_rows):
        with pytest.raises(ValueError, match="is a run of 'attribute'"):
            function(runs["attribute"])
    with pytest.raises(ValueError, match="has no column.*'race'"):
        aggregate.scored_rows(runs["score"], ["race"])
    with pytest.raises(FileNotFoundError, match="holds no manifest.json"):
        aggregate.global_importance(tmp_path)


def test_audit_of_a_multiclass_run_is_one_class_against_the_rest(tmp_path):
    import torch

    from explain import nets

    torch.manual_seed(0)
    loaded = explain.load_model(nets.MLP(3, 3, hidden=(8,)), feature_names=["x0", "x1", "x2"],
                                label_names=["a", "b", "c"], name="tiny-3")
    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(90, 3)), columns=["x0", "x1", "x2"])
    data["label"] = rng.integers(0, 3, len(data))
    data["group"] = rng.choice(["p", "q"], len(data))
    data.to_csv(tmp_path / "rows.csv", index=False)
    out = run("score", loaded, tmp_path / "rows.csv", tmp_path / "run", chunk_size=40,
              label="label", progress=False).out
    options = {"n_permutations": 399, "seed": 1}
    result = aggregate.audit_run(out, sensitive_features="group", label="label", **options)
    model = explain.audit(loaded, data, sensitive_features="group", label="label", **options)
    assert sorted(set(result.by_group["class_label"])) == ["a", "b", "c"]
    pd.testing.assert_frame_equal(result.by_group, model.by_group)
    pd.testing.assert_frame_equal(result.disparities, model.disparities)
    with pytest.raises(ValueError, match="scores 3 classes; auditing them one against the rest "
                                         "needs label="):
        aggregate.audit_run(out, sensitive_features="group")
