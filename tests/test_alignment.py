"""Alignment error rate of cross attention: hand examples, planted alignments, the exact random
baseline against a simulation, errors, figures; on the trained seq2seq reference model: the best
head and the attributions beat the random baseline."""

import math

import numpy as np
import pytest

import explain
from explain.attention.alignment import (
    KINDS,
    AlignmentResult,
    alignment_error_rate,
    alignment_scores,
    hard_alignment,
    parse_alignment,
    random_baseline,
)
from explain.attention.result import AttentionResult, Side

SOURCES = ["march third", "the fifth of may", "june"]
TARGETS = ["three march", "may five", "june"]
GOLD = ["1-0 0-1", "3-0 1-1", "0-0"]


@pytest.fixture(scope="module")
def tiny_bart():
    from explain_models import tiny

    return tiny.bart_seq2seq()


@pytest.fixture(scope="module")
def captured(tiny_bart):
    return explain.attention(tiny_bart, SOURCES, targets=TARGETS)


def _planted(result, alignments, *, layer=1, head=0):
    """A copy of ``result`` whose cross attention of (layer, head) puts all of each target
    word's predicting row on its gold source word (other rows uniform over the source)."""
    target_side, source_side = result.sides("cross")
    cross = []
    for k, maps in enumerate(result.maps["cross"]):
        maps = np.full(maps.shape, 1.0 / maps.shape[-1], dtype=np.float32)
        src_first = _first_tokens(source_side, k)
        tgt_first = _first_tokens(target_side, k)
        for pair in alignments[k].split():
            i, j = map(int, pair.split("-"))
            row = tgt_first[j] - 1
            maps[layer, head, row] = 0.0
            maps[layer, head, row, src_first[i]] = 1.0
        cross.append(maps)
    return AttentionResult(maps={**result.maps, "cross": tuple(cross)}, layers=result.layers,
                           heads=result.heads, source=source_side, target=target_side,
                           causal=False, n_layers=result.n_layers, n_heads=result.n_heads,
                           meta=dict(result.meta))


def _first_tokens(side, k):
    """Token position of the first token of each non-special word of text ``k``."""
    firsts, seen = [], set()
    for t, unit in enumerate(side.unit_index[k]):
        if not side.unit_special[k][unit] and unit not in seen:
            seen.add(unit)
            firsts.append(t)
    return firsts


# ----------------------------------------------------------------------------- pure functions


def test_aer_of_perfect_disjoint_and_hand_examples():
    gold = parse_alignment("0-0 1-2 2-1", n_source=3, n_target=3)
    assert alignment_error_rate(gold, gold) == 0.0
    assert alignment_error_rate(frozenset({(0, 1), (1, 0)}), gold) == 1.0
    # |A| = 2, |S| = 3, |A & S| = 1: 1 - 2 / 5
    assert alignment_error_rate(frozenset({(0, 0), (2, 2)}), gold) == pytest.approx(0.6)
    # corpus level: counts summed, not AERs averaged (1 - 2 * (1 + 1) / (2 + 3 + 1 + 1))
    corpus = alignment_error_rate([frozenset({(0, 0), (2, 2)}), frozenset({(0, 0)})],
                                  [gold, frozenset({(0, 0)})])
    assert corpus == pytest.approx(1 - 4 / 7)
    assert math.isnan(alignment_error_rate(frozenset(), frozenset()))


def test_hard_alignment_is_the_argmax_source_word_per_target_word():
    matrix = np.array([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0], [0.0, 0.1, 0.9]])
    assert hard_alignment(matrix) == {(1, 0), (0, 1), (2, 2)}
    assert hard_alignment(matrix, target_words=[2]) == {(2, 2)}


def test_random_baseline_is_exact_against_a_seeded_simulation():
    gold = [frozenset({(0, 0), (1, 1), (2, 1)}), frozenset({(3, 0)}), frozenset({(0, 0), (0, 1)})]
    n_sources, words = [3, 5, 2], [[0, 1], [0], [0, 1]]
    mean, std = random_baseline(gold, n_sources, words)
    rng = np.random.default_rng(0)
    simulated = []
    for _ in range(20000):
        predicted = [frozenset((int(rng.integers(n)), j) for j in w)
                     for n, w in zip(n_sources, words, strict=True)]
        simulated.append(alignment_error_rate(predicted, gold))
    assert np.mean(simulated) == pytest.approx(mean, abs=0.005)
    assert np.std(simulated) == pytest.approx(std, rel=0.03)
    # hand value: E hits = 1/3 + 2/3 + 1/5 + 1/2 + 1/2, |A| + |S| = 5 + 6
    assert mean == pytest.approx(1 - 2 * (1 / 3 + 2 / 3 + 1 / 5 + 1) / 11)


@pytest.mark.parametrize(("text", "message"), [
    ("0-1 3-0", r"alignment of row 4: link '3-0' names source word 3, but the source has 3 "
                r"words \(0\.\.2\)"),
    ("0-2", r"alignment of row 4: link '0-2' names target word 2, but the target has 2 words"),
    ("0-1 1?0", r"'1\?0' is not a sure link 'i-j'"),
    ("0-a", r"'0-a' is not a sure link"),
])
def test_pharaoh_errors_name_the_row_and_value(text, message):
    with pytest.raises(ValueError, match=message):
        parse_alignment(text, n_source=3, n_target=2, row=4)
    with pytest.raises(TypeError, match=r"alignment of row 1 must be a Pharaoh string"):
        parse_alignment(float("nan"), n_source=3, n_target=2, row=1)
    assert parse_alignment("", n_source=3, n_target=2) == frozenset()


# ----------------------------------------------------------------------------- on attention maps


def test_planted_head_is_found_with_aer_zero(captured):
    planted = _planted(captured, GOLD, layer=1, head=0)
    scores = alignment_scores(planted, GOLD)
    assert isinstance(scores, AlignmentResult)
    frame = scores.to_frame()
    assert set(frame["kind"]) == set(KINDS) - {"attribution"}
    assert scores.best_head == (1, 0, 0.0)
    row = frame[(frame["kind"] == "head") & (frame["layer"] == 1) & (frame["head"] == 0)]
    assert row["precision"].iloc[0] == 1.0 and row["recall"].iloc[0] == 1.0
    # uniform heads are argmax-ed to the first source word: AER from the counts
    assert len(frame[frame["kind"] == "head"]) == 4
    # the baseline: 2 + 2 + 1 scored target words over 2, 4, 1 source words, 5 gold links
    assert frame["baseline_aer"].iloc[0] == pytest.approx(1 - 2 * (2 / 2 + 2 / 4 + 1) / 10)
    assert np.allclose(frame["improvement"], frame["baseline_aer"] - frame["aer"])


def test_disjoint_prediction_has_aer_one(captured):
    disjoint = ["0-0 1-1", "0-0 0-1", "0-0"]
    planted = _planted(captured, disjoint, layer=0, head=1)
    frame = alignment_scores(planted, ["1-0 0-1", "3-0 1-1", "0-0"]).to_frame()
    head = frame[(frame["kind"] == "head") & (frame["layer"] == 0) & (frame["head"] == 1)]
    # only "june" (one source word) can be right
    assert head["aer"].iloc[0] == pytest.approx(1 - 2 * 1 / 10)


def test_attribution_matrices_are_aligned_by_their_largest_magnitude(captured):
    planted = _planted(captured, GOLD)
    attributions = [np.array([[0.0, -2.0], [1.0, 0.0]]), np.array([[0, 0, 0, 3.0], [0, 1, 0, 0]]),
                    np.array([[1.0]])]
    scores = alignment_scores(planted, GOLD, attributions=attributions)
    frame = scores.to_frame()
    assert frame.loc[frame["kind"] == "attribution", "aer"].iloc[0] == 0.0
    with pytest.raises(ValueError, match=r"attribution matrix of row 1 has shape \(2, 3\); "
                                         r"expected \(2, 4\)"):
        alignment_scores(planted, GOLD, attributions=[attributions[0], np.zeros((2, 3)),
                                                      attributions[2]])


def test_input_errors(captured, tiny_bart):
    with pytest.raises(ValueError, match=r"got 2 alignments for 3 examples"):
        alignment_scores(captured, GOLD[:2])
    with pytest.raises(ValueError, match=r"alignment of row 2: link '1-0' names source word 1"):
        alignment_scores(captured, [GOLD[0], GOLD[1], "1-0"])
    # a decoder input without a start token: no position predicts the first word
    side = Side(texts=("a b",), tokens=(("a", "b"),), special=((False, False),),
                unit_index=((0, 1),), unit_labels=(("a", "b"),), unit_special=((False, False),),
                truncated=(False,))
    uniform = (np.full((1, 1, 2, 2), 0.5, dtype=np.float32),)
    bare = AttentionResult(maps={"self": uniform, "cross": uniform}, layers=(0,), heads=(0,),
                           source=side, target=side, causal=False, n_layers=1, n_heads=1, meta={})
    with pytest.raises(ValueError, match=r"row 0: target word 0 is the decoder's first token"):
        alignment_scores(bare, ["0-0"])
    with pytest.raises(TypeError, match=r"takes the AttentionResult of an encoder-decoder"):
        alignment_scores(GOLD, GOLD)


def test_attention_reads_the_decoder_start_token_then_the_target(tiny_bart):
    """explain.attention feeds the decoder what it was trained on: decoder_start_token_id, then
    the target's tokens without special tokens (the maps of that exact forward)."""
    import torch

    attention = explain.attention(tiny_bart, SOURCES, targets=TARGETS, batch_size=2)
    start = tiny_bart.tokenizer.convert_ids_to_tokens(tiny_bart.model.config.decoder_start_token_id)
    assert attention.tokens(1, side="target") == (start, "may", "five")
    assert attention.words(1, side="target") == (start, "may", "five")
    tok = tiny_bart.tokenizer
    ids = [tiny_bart.model.config.decoder_start_token_id,
           *tok("may five", add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        out = tiny_bart.model(**tok(["the fifth of may"], return_tensors="pt"),
                              decoder_input_ids=torch.tensor([ids]), output_attentions=True)
    for layer in range(2):
        assert np.allclose(attention.maps["cross"][1][layer], out.cross_attentions[layer][0],
                           atol=1e-6)
        assert np.allclose(attention.maps["decoder"][1][layer], out.decoder_attentions[layer][0],
                           atol=1e-6)
    assert np.allclose(attention.maps["cross"][2].sum(-1), 1.0, atol=1e-5)
    scores = alignment_scores(attention, GOLD)
    assert len(scores.to_frame()) == 4 + 2 + 1 + 1


def test_figures(captured, tmp_path):
    scores = alignment_scores(_planted(captured, GOLD), GOLD,
                              attributions=[np.eye(2), np.ones((2, 4)), np.ones((1, 1))])
    for kind in scores.applicable_plots():
        fig = scores.plot(kind)
        fig.savefig(tmp_path / f"{kind}.png")
        assert fig.axes
    assert "random alignment" in scores.plot("heads").axes[0].get_title()
    with pytest.raises(IndexError, match=r"example 7 is out of range"):
        scores.plot("best_head", example=7)
    path = scores.export(tmp_path / "export")
    assert (path / "results.csv").exists() and (path / "heads.png").exists()


# ----------------------------------------------------------------------------- the trained model


@pytest.fixture(scope="module")
def seq2seq():
    import pandas as pd
    from explain_models import ensure

    path = ensure("seq2seq")
    return explain.load_model(path), pd.read_csv(path / "heldout.csv").head(48)


def test_trained_seq2seq_best_head_beats_the_random_baseline(seq2seq):
    model, data = seq2seq
    attention = explain.attention(model, data["source"].tolist(), targets=data["target"].tolist())
    scores = alignment_scores(attention, data["alignment"].tolist())
    frame = scores.to_frame()
    layer, _, aer = scores.best_head
    baseline, std = frame["baseline_aer"].iloc[0], frame["baseline_std"].iloc[0]
    # measured on 64 held-out rows: best head (1, 0) AER 0.27, random 0.81 +- 0.02 (precision
    # 0.995: one argmax link per target word cannot reach the ~1.7 gold links of each)
    assert aer < baseline - 0.3 and aer < baseline - 10 * std
    assert layer == 1   # the first layer's best head: AER 0.50
    # the teacher-forcing stand-in that attention(targets=) replaced measured the same maps:
    # best head (1, 0) AER 0.276 on these 48 rows (a decoder reading the tokenizer-encoded
    # target, '<s> 1990 03 21 </s>', gave about 0.51)
    assert 0.2 < aer < 0.35
    assert frame.loc[frame["kind"] == "head", "precision"].max() > 0.9


def test_report_analysis_scores_the_seq2seq_and_says_why_it_does_not_apply(seq2seq, tmp_path):
    from explain.report import analyses, build_report, register_analysis, sections
    from explain.report.alignment import ALIGNMENT

    model, data = seq2seq
    saved = (dict(analyses._analyses), dict(sections._sections), dict(sections._content))
    register_analysis(ALIGNMENT)
    try:
        report = build_report(model, data.head(16), text_column="source", name="dates",
                              quiet=True, analyses=("alignment",))
        manifest = report.manifest()
        metric = next(m for m in manifest["metrics"] if m["kind"] == "alignment")
        scores = alignment_scores(explain.attention(
            model, data["source"].head(16).tolist(), targets=data["target"].head(16).tolist()),
            data["alignment"].head(16).tolist())
        assert metric["value"] == pytest.approx(scores.best_head[2])
        assert report.sections["alignment"] == 2
        html = report.to_html()
        assert "Alignment with the known word alignment" in html
        without = build_report(model, data.head(4).drop(columns="alignment"),
                               text_column="source", name="dates", quiet=True,
                               analyses=("alignment",)).to_html()
        assert "the data lacks alignment" in without
    finally:
        for live, before in zip((analyses._analyses, sections._sections, sections._content),
                                saved, strict=True):
            live.clear()
            live.update(before)


def test_trained_seq2seq_attributions_beat_the_random_baseline(seq2seq):
    model, data = seq2seq
    data = data.head(24)
    sources, targets = data["source"].tolist(), data["target"].tolist()
    attributions = explain.attribute(model, sources, continuation=targets, n_steps=16,
                                     faithfulness=False, progress=False)
    scores = alignment_scores(explain.attention(model, sources, targets=targets),
                              data["alignment"].tolist(), attributions=attributions)
    row = scores.to_frame().query("kind == 'attribution'").iloc[0]
    # measured on 48 rows (50 steps): AER 0.27 with precision 1.0, random 0.81 +- 0.03
    assert row["aer"] < row["baseline_aer"] - 0.3 and row["precision"] > 0.9
    assert scores.matrices["attribution"][0].shape == (3, len(sources[0].split()))
    assert "attribution" in scores.applicable_plots()
