"""``explain attention``: figures and the standalone view from the command line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import explain
from explain.cli import main


@pytest.fixture
def checkpoint(tiny_bert, tmp_path):
    return explain.save_model(tiny_bert, tmp_path / "tiny-bert")


def test_cli_writes_figures_and_view_and_marks_truncation(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    long = " ".join(["long"] * 20)
    with pytest.warns(explain.ExplainWarning, match="truncated"):
        code = main(["attention", str(checkpoint), "a charming film", long, "--layer", "0",
                     "--head", "3", "--max-length", "16", "--out", str(out),
                     "--format", "png,pdf"])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    expected = sorted([f"text{i}_{kind}.{fmt}" for i in range(2)
                       for kind in ("head", "grid", "rollout", "flow") for fmt in ("png", "pdf")]
                      + ["head_summary.png", "head_summary.pdf", "attention.html",
                         "attention.parquet", "head_statistics.parquet", ".explain-output.json"])
    assert names == expected
    # the weights as a table: one row per layer, head, query and key word
    weights = pd.read_parquet(out / "attention.parquet")
    assert {"layer", "head", "weight"} <= set(weights.columns) and len(weights) > 0
    assert (out / "text0_head.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "text0_head.pdf").read_bytes()[:5] == b"%PDF-"
    assert "a charming film" in (out / "attention.html").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    printed = capsys.readouterr().out
    assert "text 1 was truncated to 16 tokens" in printed
    assert "text 0 was truncated" not in printed
    assert "wrote 21 files" in printed


@pytest.mark.parametrize(("arguments", "message"), [
    (["--layer", "9"], "--layer 9 does not exist; tiny-bert has 2 layers (valid: 0..1)"),
    (["--head", "4"], "--head 4 does not exist; tiny-bert has 4 heads (valid: 0..3)"),
    (["--format", "png,gif"], "unknown figure format(s) 'gif'; valid: png, svg, pdf"),
    (["--level", "piece"], "unknown level 'piece'; valid: token, word"),
    (["--statistic", "beauty"], "unknown statistic 'beauty'"),
])
def test_cli_bad_options_fail_cleanly(checkpoint, tmp_path, capsys, arguments, message):
    out = tmp_path / "out"
    code = main(["attention", str(checkpoint), "a film", "--out", str(out), *arguments])
    assert code == 1
    assert message in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_missing_model(tmp_path, capsys):
    code = main(["attention", str(tmp_path / "nowhere"), "a film", "--out", str(tmp_path / "o")])
    assert code == 1
    assert "no such checkpoint directory" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_on_the_reference_sentiment_model(tmp_path, sentiment_model):
    out = tmp_path / "out"
    assert main(["attention", "sentiment", "An utterly charming, funny and warm story.",
                 "--out", str(out)]) == 0
    assert (out / "attention.html").exists() and (out / "text0_grid.png").exists()
    result = explain.attention(sentiment_model, ["An utterly charming, funny and warm story."])
    assert result.maps["self"][0].shape[:2] == (6, 12)
    np.testing.assert_allclose(result.maps["self"][0].sum(-1), 1.0, atol=1e-5)


def test_cli_skips_flow_over_the_length_limit(checkpoint, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys.modules["explain.attention.result"], "FLOW_MAX_TOKENS", 4)
    out = tmp_path / "out"
    assert main(["attention", str(checkpoint), "a film", "a much longer film", "--out",
                 str(out)]) == 0
    assert (out / "text0_flow.png").exists() and not (out / "text1_flow.png").exists()
    assert "text 1: 6 tokens, over the attention-flow limit of 4; no flow figure" in \
        capsys.readouterr().out
