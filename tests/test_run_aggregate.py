"""Dataset-level aggregates of runs (explain.run.aggregate), the report of a run and the
``--from`` commands: the streamed numbers equal the in-memory API on the same rows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import explain
from explain.attention import graph
from explain.attention.graph import HEAD_STATISTICS
from explain.fairness.intervals import mean_interval, wilson_interval
from explain.run import aggregate

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
#: Shard row ranges of the fake runs (uneven on purpose).
RANGES = [(0, 5), (5, 9), (9, 12)]


@pytest.fixture(scope="module")
def sentiment():
    import explain_models

    return explain.load_model(explain_models.ensure("sentiment"))


def fake_run(out: Path, analysis: str, tables: dict[str, pd.DataFrame], *,
             ranges=RANGES, status: str = "complete") -> Path:
    """A run directory as explain.run writes it (manifest + one Parquet file per table per
    shard), from whole tables with a ``row`` column."""
    shards = []
    for index, (start, end) in enumerate(ranges):
        files = {}
        for name, table in tables.items():
            part = table[(table["row"] >= start) & (table["row"] < end)].reset_index(drop=True)
            path = out / name / f"part-{index:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            part.to_parquet(path, index=False)
            files[name] = {"path": f"{name}/{path.name}", "rows": len(part),
                           "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        shards.append({"index": index, "rows": [start, end], "files": files, "seconds": 0.5,
                       "status": "done" if status == "complete" or index == 0 else "pending"})
    manifest = {"format": "explain-run", "format_version": 1, "analysis": analysis,
                "config": {"analysis": analysis}, "fingerprint": "0" * 64, "chunk_size": 5,
                "model": {"name": "sentiment", "sha256": "1" * 64, "source": "sentiment"},
                "data": {"path": "texts.csv", "format": "csv", "sha256": "2" * 64,
                         "n_rows": ranges[-1][1], "columns": ["text"]},
                "versions": {}, "engine": "local", "tables": dict.fromkeys(tables, "a table"),
                "shards": shards, "status": status, "created": "2026-12-01T00:00:00Z",
                "seconds": 1.5}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def _rows(frame: pd.DataFrame, column: str = "input_id") -> pd.DataFrame:
    """``input_id`` (or another id) replaced by ``row``, first."""
    frame = frame.rename(columns={column: "row"})
    return frame[["row", *[c for c in frame.columns if c != "row"]]]


def test_global_importance_equals_the_in_memory_result(sentiment, tmp_path):
    results = [explain.attribute(sentiment, TEXTS, method=m, faithfulness=False,
                                 progress=False) for m in ("saliency", "input_x_gradient")]
    units = pd.concat([_rows(r.to_frame()) for r in results], ignore_index=True)
    out = fake_run(tmp_path / "run", "attribute", {"units": units})
    for lowercase, min_count in ((True, 1), (False, 2)):
        table = aggregate.global_importance(out, lowercase=lowercase, min_count=min_count)
        for result in results:
            expected = result.global_importance(lowercase=lowercase, min_count=min_count)
            got = table[table["method"] == result.method].reset_index(drop=True)
            assert list(got["label"]) == list(expected["label"])
            assert list(got["predicted_label"]) == list(expected["predicted_label"])
            assert (got["count"] == expected["count"]).all()
            for column in ("mean_score", "mean_abs_score", "ci_low", "ci_high"):
                np.testing.assert_allclose(got[column], expected[column], rtol=1e-9, atol=1e-15)
    # with min_count=1 every occurrence of every row is counted, once
    table = aggregate.global_importance(out)
    for result in results:
        mine = table[table["method"] == result.method]
        assert mine["count"].sum() == len(result.to_frame())
        assert (mine["n_rows"] == len(TEXTS)).all()


def test_head_statistics_equal_the_in_memory_result(sentiment, tmp_path):
    result = explain.attention(sentiment, TEXTS)
    _, keys = result.sides("self")
    rows = []
    for row, maps in enumerate(result.maps["self"]):  # each text's statistics, as a run keeps
        statistics = graph.head_statistics(maps, keys.special[row])
        layer, head = np.meshgrid(result.layers, result.heads, indexing="ij")
        rows.append(pd.DataFrame({"row": row, "layer": layer.ravel(), "head": head.ravel(),
                                  **{k: v.ravel() for k, v in statistics.items()}}))
    heads = pd.concat(rows, ignore_index=True)
    out = fake_run(tmp_path / "run", "attention", {"heads": heads})
    table = aggregate.head_statistics(out)
    expected = result.head_statistics()
    for statistic in HEAD_STATISTICS:
        got = table[table["statistic"] == statistic].reset_index(drop=True)
        np.testing.assert_allclose(got["mean"], expected[statistic], rtol=1e-9)
        assert (got["count"] == len(TEXTS)).all()
        values = np.stack([heads[heads["row"] == r][statistic].to_numpy()
                           for r in range(len(TEXTS))], axis=1)
        low, high = mean_interval(values, 0.95)
        np.testing.assert_allclose(got["ci_low"], low, rtol=1e-9)
        np.testing.assert_allclose(got["ci_high"], high, rtol=1e-9)
    assert len(table) == len(expected) * len(HEAD_STATISTICS)


def test_flip_rates_equal_the_counterfactual_probe(sentiment, tmp_path):
    with pytest.warns(explain.ExplainWarning, match="no word of the swap list"):
        result = explain.counterfactual(sentiment, TEXTS, swaps="gender")
    frame = result.to_frame().drop(columns="row").rename(columns={"unit": "row"})
    out = fake_run(tmp_path / "run", "counterfactual", {"counterfactuals": frame})
    table = aggregate.flip_rates(out)
    overall = table[table["group"] == "all"].iloc[0]
    comparison = result.comparisons.iloc[0]
    assert overall["n_texts"] == comparison["n_pairs"]
    assert overall["flip_rate"] == pytest.approx(comparison["flip_rate"])
    groups = table[table["group"] != "all"]
    assert groups["n_texts"].sum() == overall["n_texts"]
    assert groups["n_flips"].sum() == overall["n_flips"]
    low, high = wilson_interval(table["n_flips"], table["n_texts"])
    np.testing.assert_allclose(table["ci_low"], low)
    np.testing.assert_allclose(table["ci_high"], high)
    assert (table["n_rows"] == len(TEXTS)).all()


def test_incomplete_runs_and_other_analyses_are_refused(sentiment, tmp_path):
    units = _rows(explain.attribute(sentiment, TEXTS[:3], method="saliency", progress=False,
                                    faithfulness=False).to_frame())
    ranges = [(0, 2), (2, 3)]
    pending = fake_run(tmp_path / "pending", "attribute", {"units": units}, ranges=ranges,
                       status="incomplete")
    with pytest.raises(ValueError, match=r"1 of 2 shards done; rerun the same command"):
        aggregate.global_importance(pending)
    done = fake_run(tmp_path / "done", "attribute", {"units": units}, ranges=ranges)
    for function in (aggregate.head_statistics, aggregate.flip_rates, aggregate.scored_rows):
        with pytest.raises(ValueError, match="is a run of 'attribute'"):
            function(done)
    with pytest.raises(FileNotFoundError, match="holds no manifest.json"):
        aggregate.global_importance(tmp_path)
    with pytest.raises(ValueError, match="has no column"):
        fake = fake_run(tmp_path / "score", "score", {"scores": units[["row", "score"]]},
                        ranges=ranges)
        aggregate.scored_rows(fake, ["race"])
