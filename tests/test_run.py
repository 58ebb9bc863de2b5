"""``explain.run``: each built-in analysis writes, row for row, what the in-memory API gives on
the same rows; the rows do not depend on the chunk size or the input format; bad input is
refused before any work, naming the value and the fix; progress is a bar or one line per shard."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

import explain
from explain.cli import main
from explain.run import RUN_ANALYSES, RunAnalysis, read_table, register_run_analysis
from explain.run.specs import _ANALYSES

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def sentiment():
    import explain_models

    return explain.load_model(explain_models.ensure("sentiment"))


@pytest.fixture(scope="module")
def compas():
    import explain_models

    return explain.load_model(explain_models.ensure("compas"))


@pytest.fixture(scope="module")
def reviews(sentiment, tmp_path_factory):
    """12 short held-out reviews, shortest first (fast), as CSV; the frame too."""
    frame = pd.read_csv(sentiment.provenance["source"] + "/heldout.csv")
    frame = frame[frame["text"].str.len() < 90].head(12)
    frame = frame.sort_values("text", key=lambda t: t.str.len(), kind="stable")
    frame = frame.reset_index(drop=True)
    path = tmp_path_factory.mktemp("reviews") / "reviews.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _same(found: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    """Equal columns and rows (sorted by ``keys``); numbers within ``TOLERANCE`` (absolute and
    relative: float32 sums of differently padded batches)."""
    assert list(found.columns) == list(expected.columns)
    found = found.sort_values(keys, kind="stable").reset_index(drop=True)
    expected = expected.sort_values(keys, kind="stable").reset_index(drop=True)
    assert len(found) == len(expected)
    for column in found.columns:
        a, b = found[column], expected[column]
        if pd.api.types.is_float_dtype(a) and pd.api.types.is_float_dtype(b):
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), atol=TOLERANCE,
                                       rtol=TOLERANCE, equal_nan=True, err_msg=column)
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), column


def _with_rows(frame: pd.DataFrame, rows: np.ndarray, column: str = "input_id") -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "row", rows[frame.pop(column).to_numpy(int)].astype(np.int64))
    return frame


# ----------------------------------------------------------------- the API's own results


def test_predict_and_score_equal_the_report_predictions(sentiment, reviews, tmp_path):
    from explain.report.predictions import predict

    path, frame = reviews
    expected = predict(sentiment, frame, text_column="text")
    result = explain.run("predict", sentiment, path, tmp_path / "p", chunk_size=5,
                         label="label", progress=False)
    table = result.table("predictions")
    assert list(table.columns) == ["row", "predicted_label", "predicted_index",
                                   "predicted_score", "label"]
    assert table["row"].tolist() == list(range(len(frame)))
    np.testing.assert_allclose(table["predicted_score"], expected.confidence, atol=TOLERANCE)
    assert table["predicted_index"].tolist() == expected.predicted.tolist()
    assert table["label"].tolist() == frame["label"].astype(str).tolist()
    scores = explain.run("score", sentiment, path, tmp_path / "s", chunk_size=5,
                         progress=False).table("scores")
    names = sentiment.label_names
    assert list(scores.columns) == ["row", "predicted_label", "predicted_index",
                                    *[f"score_{n}" for n in names], "label", "label_name",
                                    "movie_name"]   # default keep: every non-text column
    np.testing.assert_allclose(scores[[f"score_{n}" for n in names]].to_numpy(),
                               expected.probabilities, atol=TOLERANCE)


def test_attribute_equals_explain_attribute(sentiment, reviews, tmp_path):
    _, frame = reviews
    texts = frame["text"].head(2).tolist()
    head = tmp_path / "head.csv"
    frame.head(2).to_csv(head, index=False)
    result = explain.run("attribute", sentiment, head, tmp_path / "a", chunk_size=1,
                         methods="saliency", progress=False)
    explanations = result.table("explanations")
    assert "comprehensiveness" in explanations   # faithfulness on by default, as in attribute
    expected = explain.attribute(sentiment, texts, method="saliency")
    _same(result.table("units"), _with_rows(expected.to_frame(), np.arange(2)),
          ["row", "position"])
    _same(explanations, _with_rows(expected.explanations(), np.arange(2)), ["row"])


def test_tabular_attribute_and_score_keep_the_sensitive_columns(compas, tmp_path):
    frame = pd.read_csv(compas.provenance["source"] + "/heldout.csv").head(9)
    path = tmp_path / "people.parquet"
    frame.to_parquet(path, index=False)
    result = explain.run("attribute", compas, path, tmp_path / "a", chunk_size=4,
                         methods="feature_ablation", faithfulness=False, progress=False)
    expected = explain.attribute(compas, frame, method="feature_ablation", faithfulness=False)
    _same(result.table("units"), _with_rows(expected.to_frame(), np.arange(9)),
          ["row", "position"])
    scores = explain.run("score", compas, path, tmp_path / "s", chunk_size=4,
                         label="two_year_recid", progress=False).table("scores")
    assert {"race", "sex", "age"} <= set(scores.columns)
    assert "two_year_recid" not in scores and scores["label"].tolist() == \
        frame["two_year_recid"].astype(str).tolist()


def test_attention_equals_head_statistics_and_rollout(sentiment, reviews, tmp_path):
    path, frame = reviews
    result = explain.run("attention", sentiment, path, tmp_path / "t", chunk_size=5,
                         progress=False)
    heads, rollout = result.table("heads"), result.table("rollout")
    texts = frame["text"].tolist()
    statistics = ["entropy", "mean_distance", "special_share", "previous_share", "self_share"]
    overall = explain.attention(sentiment, texts).head_statistics()
    mean = heads.groupby(["layer", "head"], as_index=False)[statistics].mean()
    _same(mean, overall[["layer", "head", *statistics]], ["layer", "head"])
    one = explain.attention(sentiment, [texts[7]])
    mine = heads[heads["row"] == 7].drop(columns="row").reset_index(drop=True)
    _same(mine, one.head_statistics()[["layer", "head", *statistics]], ["layer", "head"])
    seven = rollout[rollout["row"] == 7]
    assert seven["token"].tolist() == list(one.tokens(0))
    np.testing.assert_allclose(seven["weight"], one.rollout(0, level="token"), atol=TOLERANCE)
    assert np.allclose(rollout.groupby("row")["weight"].sum(), 1.0)


def test_counterfactual_equals_explain_counterfactual(sentiment, tmp_path):
    texts = ["He is a fine actor.", "She gave the best performance of her life.",
             "A dull film.", "The actress and her brother were wonderful.",
             "His direction is weak."]
    path = tmp_path / "texts.csv"
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    result = explain.run("counterfactual", sentiment, path, tmp_path / "c", chunk_size=2,
                         progress=False)
    table = result.table("counterfactuals")
    with pytest.warns(explain.ExplainWarning, match="contain no word of the swap list"):
        expected = explain.counterfactual(sentiment, texts).to_frame()
    expected = _with_rows(expected.drop(columns="row"), np.arange(len(texts)), "unit")
    _same(table, expected[table.columns], ["row", "is_original"])
    assert 2 not in set(table["row"])   # no identity word, no rows


# ----------------------------------------------------------------- invariance


def test_rows_do_not_depend_on_the_chunk_size(sentiment, reviews, tmp_path):
    _, frame = reviews
    head = tmp_path / "head.csv"
    frame.head(4).to_csv(head, index=False)
    methods = ["saliency", "input_x_gradient"]
    tables = [explain.run("attribute", sentiment, head, tmp_path / f"c{size}", chunk_size=size,
                          methods=methods, faithfulness=False, progress=False)
              for size in (1, 3, 4)]
    assert [len(t.manifest["shards"]) for t in tables] == [4, 2, 1]
    assert tables[0].table("units")["method"].unique().tolist() == methods
    for name, keys in (("units", ["method", "row", "position"]),
                       ("explanations", ["method", "row"])):
        for other in tables[1:]:
            _same(other.table(name), tables[0].table(name), keys)


def test_csv_parquet_and_a_parquet_directory_give_the_same_rows(sentiment, reviews, tmp_path):
    path, frame = reviews
    single = tmp_path / "reviews.parquet"
    frame.to_parquet(single, index=False, row_group_size=4)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, (start, end) in enumerate([(0, 4), (4, 9), (9, 12)]):
        frame.iloc[start:end].to_parquet(folder / f"part-{i}.parquet", index=False)
    found = [explain.run("predict", sentiment, source, tmp_path / f"o{i}", chunk_size=5,
                         keep=["movie_name"], progress=False)
             for i, source in enumerate((path, single, folder))]
    assert [r.manifest["data"]["format"] for r in found] == ["csv", "parquet",
                                                            "parquet-directory"]
    for other in found[1:]:
        _same(other.table("predictions"), found[0].table("predictions"), ["row"])


# ----------------------------------------------------------------- errors and progress


def test_bad_input_is_refused_naming_the_value(sentiment, reviews, tmp_path):
    path, _ = reviews
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="no such data file or directory: .*missing.csv"):
        explain.run("predict", sentiment, tmp_path / "missing.csv", out)
    with pytest.raises(KeyError, match="review"):
        explain.run("predict", sentiment, path, out, text_column="review")
    with pytest.raises(ValueError, match="unknown run analysis 'explian'.*valid: predict, score"):
        explain.run("explian", sentiment, path, out)
    with pytest.raises(ValueError, match="unknown attribution method .*'salency'.*saliency"):
        explain.run("attribute", sentiment, path, out, methods="salency")
    with pytest.raises(ValueError, match="chunk_size must be a positive int, got 0"):
        explain.run("predict", sentiment, path, out, chunk_size=0)
    with pytest.raises(TypeError, match="takes no option n_steps; its options: seed, batch_size"):
        explain.run("predict", sentiment, path, out, n_steps=8)
    with pytest.raises(ValueError, match="apply to the analyses whose tables copy input "
                                         "columns \\(predict, score\\)"):
        explain.run("attention", sentiment, path, out, keep=["movie_name"])
    with pytest.raises(ValueError, match=r"the keep columns \['predicted_label'\]"):
        pd.read_csv(path).assign(predicted_label="x").to_csv(tmp_path / "odd.csv", index=False)
        explain.run("score", sentiment, tmp_path / "odd.csv", out)
    with pytest.raises(ValueError, match="unknown data format '.txt'"):
        (tmp_path / "texts.txt").write_text("a\n")
        explain.run("predict", sentiment, tmp_path / "texts.txt", out)
    assert not out.exists()   # nothing was started


def test_the_quiet_rate_forgets_a_pause_like_the_bar():
    from explain.run.local import SMOOTHING, ShardRate

    rate = ShardRate(began=0.0)
    assert rate.update(100, 10.0) == pytest.approx(10.0)        # the first shard: its own rate
    assert rate.update(100, 1010.0) == pytest.approx(100 / (0.3 * 1000 + 0.7 * 10))  # a pause
    now, last = 1010.0, None
    for _ in range(20):                                          # then 10 s per shard again
        now += 10.0
        last = rate.update(100, now)
    assert SMOOTHING == 0.3 and last == pytest.approx(10.0, rel=0.05)
    # the cumulative rate it replaced would still say 2,200 rows in 1,210 s: 1.8 rows/s
    assert 2200 / now < 2


def test_progress_bar_and_one_line_per_shard(sentiment, reviews, tmp_path, capsys):
    path, _ = reviews
    explain.run("predict", sentiment, path, tmp_path / "bar", chunk_size=5, progress=True)
    assert re.search(r"explain run predict: 100%.*12/12 \[", capsys.readouterr().err)
    explain.run("predict", sentiment, path, tmp_path / "quiet", chunk_size=5, progress=False)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"explain run: shard 2/3 \(rows 5-9\) in \d+\.\d s; \d+\.\d rows/s; "
                        r"ETA \d+ s", lines[1])
    again = explain.run("predict", sentiment, path, tmp_path / "quiet", chunk_size=5,
                        progress=False)
    assert (again.computed, again.skipped, capsys.readouterr().err) == (0, 3, "")


def test_the_command_line(reviews, tmp_path, capsys):
    path, frame = reviews
    out = tmp_path / "cli"
    assert main(["run", "predict", "sentiment", "--data", str(path), "--out", str(out),
                 "--chunk-size", "5", "--quiet"]) == 0
    assert "explain run predict: 12 rows in 3 shards (3 computed" in capsys.readouterr().out
    assert sum(len(t) for t in read_table(out, "predictions")) == len(frame)
    assert main(["run", "predict", "sentiment", "--data", str(path), "--out", str(out),
                 "--chunk-size", "6", "--quiet"]) == 1
    assert "pass --chunk-size 5 to resume" in capsys.readouterr().err
    assert main(["run", "attention", "sentiment", "--data", str(path), "--out",
                 str(tmp_path / "x"), "--n-steps", "8"]) == 1
    assert "explain run attention takes no option n_steps" in capsys.readouterr().err


def test_an_incomplete_run_is_not_read_and_an_analysis_can_be_added(sentiment, reviews,
                                                                     tmp_path):
    path, _ = reviews

    def lengths(loaded, frame, config):
        return {"lengths": pd.DataFrame({"row": frame["row"],
                                         "length": frame[config.text_column].str.len()})}

    spec = RunAnalysis("length", "characters per text", {"lengths": "one row per text"},
                       ("text",), lengths)
    register_run_analysis(spec)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_run_analysis(spec)
        result = explain.run("length", sentiment, path, tmp_path / "l", chunk_size=5,
                             progress=False)
        assert result.table("lengths")["length"].tolist() == \
            pd.read_csv(path)["text"].str.len().tolist()
    finally:
        _ANALYSES.pop("length")
    assert "length" not in RUN_ANALYSES
    manifest = tmp_path / "l" / "manifest.json"
    values = json.loads(manifest.read_text())
    values["shards"][1]["status"], values["status"] = "pending", "incomplete"
    manifest.write_text(json.dumps(values))
    with pytest.raises(ValueError, match="incomplete: 2 of 3 shards done; rerun the same"):
        next(read_table(tmp_path / "l", "lengths"))
