"""Attributions: equality with Captum, completeness, batch-size invariance, word folding,
models built to depend on one input, seeds, hooks, bad input."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import explain
from explain.attribution import METHODS, attribute, attribute_layer, rank_agreement
from explain.errors import ExplainWarning
from explain.hooks import count_hooks

TEXTS = ["the movie was good and the acting was great", "a boring, predictable mess of a film",
         "an utterly charming, funny and warm story", "she is a doctor"]
GRADIENT = ("integrated_gradients", "saliency", "input_x_gradient", "deeplift", "gradient_shap",
            "smoothgrad")
SAMPLING = ("gradient_shap", "smoothgrad", "shapley_sampling", "lime", "kernel_shap")


# ----------------------------------------------------------------- hand-built models


class OneWordText(nn.Module):
    """Bag of word embeddings where only the embedding of one token is non-zero:
    logit(pos) = 4 * sum_t relu(e_t . u)^2 - 2, logit(neg) = 0."""

    def __init__(self, vocab_size: int, token_id: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, 4)
        with torch.no_grad():
            self.embed.weight.zero_()
            self.embed.weight[token_id] = torch.tensor([1.0, 0.0, 0.0, 0.0])
        self.u = nn.Parameter(torch.tensor([1.0, 0.5, -0.5, 0.25]))

    def forward(self, input_ids, attention_mask=None):
        h = self.embed(input_ids)
        if attention_mask is not None:
            h = h * attention_mask[..., None]
        a = torch.relu(h @ self.u).pow(2).sum(1)
        return torch.stack([torch.zeros_like(a), 4 * a - 2], dim=1)


class OneFeature(nn.Module):
    """logit(yes) = 4 * relu(x[:, 2])^2 - 1, logit(no) = 0: only feature 2 matters."""

    def forward(self, x):
        a = torch.relu(x[:, 2]).pow(2)
        return torch.stack([torch.zeros_like(a), 4 * a - 1], dim=1)


@pytest.fixture(scope="module")
def one_word():
    from explain_models import tiny

    tokenizer = tiny.minilm_tokenizer()
    token = tokenizer.convert_tokens_to_ids("good")
    return explain.load_model(OneWordText(tokenizer.vocab_size, token), tokenizer=tokenizer,
                              task="sequence-classification", label_names=["neg", "pos"],
                              name="one-word")


@pytest.fixture(scope="module")
def one_feature():
    return explain.load_model(OneFeature(), feature_names=[f"x{i}" for i in range(5)],
                              label_names=["no", "yes"], name="one-feature")



def _atol(*values, ulps: int = 64) -> float:
    """An absolute tolerance for float32 results of the given size: float32 sums of different
    lengths or orders (batching, another CPU's kernels, threads) differ by a few ulps of the
    largest value, so near-zero scores need more than ``rtol`` alone."""
    scale = max(float(np.max(np.abs(np.asarray(v, dtype=float)))) for v in values)
    return ulps * float(torch.finfo(torch.float32).eps) * max(scale, 1e-3)

def _features(n=6, seed=0):
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(seed))
    x[:, 2] = 1.0
    return x


GOOD_TEXTS = ["the movie was good and the acting was great", "it was simply good, nothing else",
              "a good, warm and funny story", "not really good at all, sadly"]


# ------------------------------------------------------------- equality with Captum


def test_integrated_gradients_equals_direct_captum_call(tiny_bert):
    from captum.attr import LayerIntegratedGradients

    result = attribute(tiny_bert, TEXTS, target="pos", n_steps=20, faithfulness=False)
    batch = tiny_bert.encode_texts(TEXTS)
    model = tiny_bert.model
    special = torch.zeros_like(batch.input_ids, dtype=torch.bool)
    for i, flags in enumerate(batch.special):
        special[i, :len(flags)] = torch.tensor(flags)
    keep = special | (batch.attention_mask == 0)
    reference = torch.where(keep, batch.input_ids,
                            torch.full_like(batch.input_ids, tiny_bert.tokenizer.pad_token_id))

    def forward(ids, mask, types):
        logits = model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        return torch.softmax(logits, -1)[:, 1]

    lig = LayerIntegratedGradients(forward, model.bert.embeddings.word_embeddings)
    direct, delta = lig.attribute(batch.input_ids, baselines=reference,
                                  additional_forward_args=(batch.attention_mask,
                                                           batch.token_type_ids),
                                  n_steps=20, return_convergence_delta=True)
    frame = result.to_frame("token")
    for i in range(len(TEXTS)):
        ours = frame[frame.input_id == i].score.to_numpy()
        theirs = direct[i, :batch.lengths[i]].sum(-1).detach().double().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=_atol(theirs))
    np.testing.assert_allclose(result.explanations().convergence_delta,
                               delta.detach().double().numpy(), atol=_atol(frame.score))
    assert count_hooks(tiny_bert) == 0


def test_tabular_integrated_gradients_equals_captum(tiny_mlp):
    from captum.attr import IntegratedGradients

    x = torch.randn(5, 5, generator=torch.Generator().manual_seed(1))
    result = attribute(tiny_mlp, x, target="yes", n_steps=30, faithfulness=False)
    ig = IntegratedGradients(lambda v: torch.softmax(tiny_mlp.model(v), -1)[:, 1])
    direct = ig.attribute(x, baselines=torch.zeros_like(x), n_steps=30).double().numpy()
    ours = result.to_frame().score.to_numpy().reshape(5, 5)
    np.testing.assert_allclose(ours, direct, rtol=1e-5, atol=_atol(direct))


# --------------------------------------------------------------------- completeness


@pytest.mark.parametrize("fixture", ["one_word", "one_feature", "tiny_cnn"])
def test_completeness_within_tolerance(fixture, request):
    loaded = request.getfixturevalue(fixture)
    inputs = {"one_word": GOOD_TEXTS, "one_feature": _features(),
              "tiny_cnn": torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
              }[fixture]
    result = attribute(loaded, inputs, n_steps=50, faithfulness=False)
    frame = result.explanations()
    # sum of attributions = f(x) - f(baseline) up to the reported delta; with 50
    # Gauss-Legendre steps the error is below 1% of the output change or 1e-4 absolute
    # (the stated tolerance; ReLU kinks of the CNN make it converge slowest)
    gap = (frame.attribution_sum - frame.convergence_delta).abs()
    assert (frame.convergence_delta.abs() <= np.maximum(0.01 * gap, 1e-4)).all(), frame
    # and the reported delta is the true completeness error: compare with direct forwards
    if fixture == "one_feature":
        x = _features()
        p = torch.softmax(loaded.model(x), -1)
        p0 = torch.softmax(loaded.model(torch.zeros_like(x)), -1)
        predicted = p.argmax(1)
        rows = torch.arange(len(x))
        expected = (p[rows, predicted] - p0[rows, predicted]).double().numpy()
        np.testing.assert_allclose(frame.attribution_sum - frame.convergence_delta, expected,
                                   atol=1e-6)


def test_adaptive_steps_reach_tolerance_with_fewer_steps(tiny_cnn):
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    result = attribute(tiny_cnn, images, n_steps="auto", tolerance=0.01, faithfulness=False)
    frame = result.explanations()
    assert (frame.relative_delta <= 0.01).all()
    # n_steps: the gradients evaluated (trapezoid rules of 8, 16, ... intervals, nested)
    assert set(frame.n_steps) <= {9, 17, 33, 65, 129, 257, 513}
    # each input stops at its own rule: fewer gradients than all at the largest rule
    assert frame.n_steps.nunique() > 1
    assert frame.n_steps.sum() < frame.n_steps.max() * len(images)


def test_adaptive_steps_equal_the_trapezoid_rule_they_stop_at(tiny_cnn):
    """The nested rounds (ends, inner points, then midpoints) add up to the plain trapezoid
    rule of the last round, computed in one go by Captum. Captum's 'riemann_trapezoid' of s
    points weighs them 1/s (ends 1/2s) where the trapezoid rule's weights are 1/(s - 1):
    scaled by s/(s - 1) it is that rule."""
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    auto = attribute(tiny_cnn, images, n_steps="auto", tolerance=0.01, faithfulness=False)
    steps = auto.explanations().n_steps.tolist()
    for k, s in enumerate(steps):
        direct = attribute(tiny_cnn, images[k:k + 1], n_steps=s, faithfulness=False,
                           integration="riemann_trapezoid")
        np.testing.assert_allclose(auto.units(k)[1], direct.units(0)[1] * s / (s - 1),
                                   rtol=1e-5, atol=1e-7)


def test_adaptive_steps_refuse_an_integration_rule(tiny_cnn):
    images = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with pytest.raises(ValueError, match="integration='riemann_left' applies to a fixed"):
        attribute(tiny_cnn, images, n_steps="auto", integration="riemann_left")


# --------------------------------------------------------------- batch invariance


# few samples on purpose (speed): the not-estimable surrogate R^2 is warned about
@pytest.mark.filterwarnings("ignore:.*surrogate fit quality:explain.errors.ExplainWarning")
@pytest.mark.parametrize("method", ["integrated_gradients", "saliency", "deeplift",
                                    "smoothgrad", "lime"])
def test_batch_size_one_and_sixteen_agree(tiny_bert, method):
    texts = [*TEXTS, "good", "the plot was dull and the film was bad", "a", "warm"]
    kwargs = {"n_steps": 8, "faithfulness": False, "n_samples": 10} if method in SAMPLING \
        else {"n_steps": 8, "faithfulness": False}
    one = attribute(tiny_bert, texts, method=method, batch_size=1, **kwargs)
    sixteen = attribute(tiny_bert, texts, method=method, batch_size=16, **kwargs)
    a, b = one.to_frame("token"), sixteen.to_frame("token")
    assert a[["input_id", "position", "label"]].equals(b[["input_id", "position", "label"]])
    np.testing.assert_allclose(a.score, b.score, rtol=1e-4, atol=_atol(a.score))
    assert count_hooks(tiny_bert) == 0


def test_original_order_is_restored(tiny_bert):
    texts = ["short", "a much longer sentence than the others in this list", "mid length one"]
    result = attribute(tiny_bert, texts, method="saliency", faithfulness=False)
    frame = result.explanations()
    assert frame.input.tolist() == texts
    single = attribute(tiny_bert, texts[1], method="saliency", faithfulness=False)
    np.testing.assert_allclose(result.to_frame().query("input_id == 1").score.to_numpy(),
                               single.to_frame().score.to_numpy(), rtol=1e-5,
                               atol=_atol(single.to_frame().score))


# ------------------------------------------------------------------------- words


def test_word_folding_preserves_sums(tiny_bert):
    texts = ["unbelievably charming, heart-warming", "the acting was great"]
    result = attribute(tiny_bert, texts, n_steps=8, faithfulness=False)
    tokens = result.to_frame("token")
    words = result.to_frame("word")
    for i in range(len(texts)):
        t = tokens[(tokens.input_id == i) & (tokens.start >= 0)].score.sum()
        w = words[words.input_id == i].score.sum()
        assert t == pytest.approx(w, rel=1e-9, abs=1e-15)
        spans = words[words.input_id == i]
        assert all(texts[i][s:e] == label for s, e, label in
                   zip(spans.start, spans.end, spans.label, strict=True))
    assert len(words[words.input_id == 0]) < len(tokens[tokens.input_id == 0])


def test_text_pairs(tiny_bert):
    result = attribute(tiny_bert, ["the plot"], text_pairs=["was dull"], n_steps=8)
    words = result.to_frame()
    assert words.label.tolist() == ["the", "plot", "was", "dull"]
    assert words.segment.tolist() == [0, 0, 1, 1]


# ------------------------------------------------ models that depend on one input


@pytest.mark.parametrize("method", (*GRADIENT, "feature_ablation", "occlusion", "shapley_sampling", "kernel_shap", "lime"))
def test_one_word_model_ranks_the_word_first(one_word, method):
    result = attribute(one_word, GOOD_TEXTS, method=method, n_steps=16, n_samples=50) \
        if method in SAMPLING else attribute(one_word, GOOD_TEXTS, method=method, n_steps=16)
    frame = result.to_frame()
    for i in range(len(GOOD_TEXTS)):
        words = frame[frame.input_id == i]
        top = words.loc[words.score.abs().idxmax(), "label"]
        assert top == "good", (method, i, words)
    table = result.explanations()
    assert (table.predicted_label == "pos").all()
    # removing 'good' flips the model; a random ranking rarely removes it first
    assert table.comprehensiveness.mean() > 0.5
    assert table.comprehensiveness.mean() > table.random_comprehensiveness.mean() + 0.3
    assert count_hooks(one_word) == 0


@pytest.mark.parametrize("method", (*GRADIENT, "feature_ablation", "shapley_sampling", "kernel_shap", "lime"))
def test_one_feature_model_ranks_the_feature_first(one_feature, method):
    result = attribute(one_feature, _features(), method=method, n_steps=16)
    frame = result.to_frame()
    for i in range(6):
        rows = frame[frame.input_id == i]
        assert rows.loc[rows.score.abs().idxmax(), "label"] == "x2", (method, rows)
    table = result.explanations()
    assert table.comprehensiveness.mean() > 0.5
    assert table.comprehensiveness.mean() > table.random_comprehensiveness.mean() + 0.2


def test_one_hot_group_is_one_feature(one_feature):
    grouped = explain.load_model(OneFeature(), feature_names=["a", "b=x", "b=y", "c", "d"],
                                 label_names=["no", "yes"])
    grouped.feature_groups = {"b": [1, 2]}
    x = _features()
    for method in ("integrated_gradients", "feature_ablation"):
        result = attribute(grouped, x, method=method, n_steps=16, faithfulness=False)
        frame = result.to_frame()
        assert frame.label.unique().tolist() == ["a", "b", "c", "d"]
        rows = frame[frame.input_id == 0]
        assert rows.loc[rows.score.abs().idxmax(), "label"] == "b"
    # gradient methods: the group's score is the sum of its members' scores
    ungrouped = attribute(one_feature, x, n_steps=16, faithfulness=False).to_frame()
    grouped_ig = attribute(grouped, x, n_steps=16, faithfulness=False).to_frame()
    member_sum = ungrouped[ungrouped.label.isin(["x1", "x2"])].groupby("input_id").score.sum()
    np.testing.assert_allclose(grouped_ig[grouped_ig.label == "b"].score, member_sum,
                               rtol=1e-6, atol=_atol(member_sum))


# --------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("method", SAMPLING)
def test_same_seed_same_scores(tiny_mlp, method):
    x = 3 * torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    options = {"n_samples": 20, **({"alpha": 1e-6} if method == "lime" else {})}
    a = attribute(tiny_mlp, x, method=method, seed=3, **options).to_frame()
    b = attribute(tiny_mlp, x, method=method, seed=3, **options).to_frame()
    pd.testing.assert_frame_equal(a, b)
    c = attribute(tiny_mlp, x, method=method, seed=4, **options).to_frame()
    assert not np.array_equal(a.score.to_numpy(), c.score.to_numpy())


@pytest.mark.parametrize("method", ["lime", "gradient_shap"])
def test_seeding_leaves_global_rngs_alone(tiny_mlp, method):
    torch.manual_seed(0)
    np.random.seed(0)
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(0)
    np.random.seed(0)
    attribute(tiny_mlp, torch.randn(2, 5, generator=torch.Generator().manual_seed(0)),
              method=method, n_samples=10)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])  # GradientShap draws from numpy


# ------------------------------------------------------------------ every method


# few samples on purpose (speed): the not-estimable surrogate R^2 is warned about
@pytest.mark.filterwarnings("ignore:.*surrogate fit quality:explain.errors.ExplainWarning")
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_and_leaves_no_hooks(tiny_cnn, method):
    images = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = {k: v.clone() for k, v in tiny_cnn.model.state_dict().items()}
    flags = [p.requires_grad for p in tiny_cnn.model.parameters()]
    result = attribute(tiny_cnn, images, method=method, n_steps=8, n_samples=8) \
        if method in SAMPLING else attribute(tiny_cnn, images, method=method, n_steps=8)
    assert count_hooks(tiny_cnn) == 0
    assert [p.requires_grad for p in tiny_cnn.model.parameters()] == flags
    assert not tiny_cnn.model.training
    assert all(torch.equal(before[k], v) for k, v in tiny_cnn.model.state_dict().items())
    frame = result.to_frame()
    assert len(frame) > 0 and frame.score.notna().all()
    assert result.meta["method"] == method


def test_no_hooks_left_when_the_forward_raises(tiny_bert):
    calls = {"n": 0}
    original = tiny_bert.model.forward

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("boom inside forward")
        return original(*args, **kwargs)

    for method in ("integrated_gradients", "deeplift", "layer", "lime"):
        calls["n"] = 0
        tiny_bert.model.forward = failing
        try:
            options = {"n_samples": 5} if method == "lime" else {}
            with pytest.raises(RuntimeError, match="boom"):
                if method == "layer":
                    attribute_layer(tiny_bert, TEXTS[:2], n_steps=4)
                else:
                    attribute(tiny_bert, TEXTS[:2], method=method, n_steps=4, **options)
        finally:
            del tiny_bert.model.forward
        assert count_hooks(tiny_bert) == 0, method
        assert all(p.requires_grad for p in tiny_bert.model.parameters())


def test_out_of_memory_retries_with_smaller_batches(one_feature):
    class Picky(nn.Module):
        def forward(self, x):
            if x.shape[0] > 8:
                raise RuntimeError("CPU out of memory (fake)")
            return OneFeature()(x)

    loaded = explain.load_model(Picky(), feature_names=[f"x{i}" for i in range(5)],
                                label_names=["no", "yes"])
    with pytest.warns(ExplainWarning, match="out of memory"):
        result = attribute(loaded, _features(2), n_steps=16, faithfulness=False)
    expected = attribute(one_feature, _features(2), n_steps=16, faithfulness=False)
    np.testing.assert_allclose(result.to_frame().score, expected.to_frame().score, rtol=1e-6,
                               atol=_atol(expected.to_frame().score))


# --------------------------------------------------------------------- targets, LMs


def test_targets_label_name_and_contrast(tiny_bert):
    pos = attribute(tiny_bert, TEXTS[:2], target="pos", n_steps=8).to_frame()
    neg = attribute(tiny_bert, TEXTS[:2], target="neg", n_steps=8).to_frame()
    contrast = attribute(tiny_bert, TEXTS[:2], target="pos-neg", n_steps=8).to_frame()
    pair = attribute(tiny_bert, TEXTS[:2], target=("pos", "neg"), n_steps=8).to_frame()
    assert (contrast.target == "pos-neg").all()
    np.testing.assert_allclose(contrast.score, pos.score - neg.score, rtol=1e-4,
                               atol=_atol(pos.score, neg.score))
    np.testing.assert_allclose(contrast.score, pair.score, rtol=1e-6, atol=_atol(pair.score))


def test_masked_lm_target_token(tiny_mlm):
    result = attribute(tiny_mlm, ["the movie was [MASK] ."], target="good", n_steps=8)
    frame = result.to_frame()
    assert (frame.target == "good").all()
    assert "[MASK]" in frame.label.tolist()
    with pytest.raises(ValueError, match="no '\\[MASK\\]' token"):
        attribute(tiny_mlm, ["no mask here"], n_steps=4)


def test_causal_lm_continuation(tiny_gpt2):
    result = attribute(tiny_gpt2, ["the movie was"], continuation=" good and", n_steps=8,
                       output="log_probability")
    table = result.explanations()
    assert len(table) >= 2 and table.step.tolist() == list(range(len(table)))
    frame = result.to_frame("token")
    lengths = frame.groupby("step").size().tolist()
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]
    assert count_hooks(tiny_gpt2) == 0


def test_causal_lm_continuation_per_input_method(tiny_gpt2):
    # per-input methods seed each continuation token by its index within the input
    result = attribute(tiny_gpt2, ["the movie was"], continuation=" good and",
                       method="feature_ablation", faithfulness=False)
    assert result.explanations().step.tolist() == list(range(len(result)))


def test_rank_agreement_identical_methods(one_feature):
    x = _features()
    a = attribute(one_feature, x, method="integrated_gradients", n_steps=16)
    b = attribute(one_feature, x, method="feature_ablation")
    table = rank_agreement({"ig": a, "ig_again": a, "ablation": b})
    first = table[(table.method_a == "ig") & (table.method_b == "ig_again")].iloc[0]
    assert first.spearman == pytest.approx(1.0) and first.kendall == pytest.approx(1.0)


def test_global_importance_counts_and_intervals(one_word):
    texts = GOOD_TEXTS * 3
    result = attribute(one_word, texts, n_steps=8)
    table = result.global_importance()
    good = table[(table.label == "good") & (table.predicted_label == "pos")].iloc[0]
    assert good["count"] == 12
    assert good.ci_low <= good.mean_score <= good.ci_high
    assert table.iloc[0].label == "good"
    again = result.global_importance()
    pd.testing.assert_frame_equal(table, again)


def test_summary_sentence(one_word):
    result = attribute(one_word, ["the movie was good"], n_steps=16)
    sentence = result.sentence(0)
    assert sentence.startswith("Predicted pos (p = 0.88).")
    assert "Words pushing toward pos: 'good' (+" in sentence
    # the sentence names the measure it quotes and its definition
    assert ("Faithfulness, AOPC comprehensiveness (the top 10-50% of words replaced by "
            "[PAD]): p drops by") in sentence
    assert sentence == attribute(one_word, ["the movie was good"], n_steps=16).sentence(0)
    eraser = attribute(one_word, ["the movie was good"], n_steps=16, faithfulness="eraser")
    assert ("Faithfulness, ERASER comprehensiveness (the top 1-50% of tokens deleted; "
            "probability of the explained label): p drops by") in eraser.sentence(0)


def test_html_escapes_user_text(one_word):
    result = attribute(one_word, ["<script>alert('x')</script> good"], n_steps=4)
    page = result._repr_html_()
    assert "<script" not in page and "&lt;" in page and "script" in page


# ------------------------------------------------------------------------ bad input


def test_bad_inputs(tiny_bert, tiny_mlp, tiny_cnn):
    with pytest.raises(ValueError, match="no inputs given|non-empty"):
        attribute(tiny_bert, [])
    with pytest.raises(ValueError, match="unknown label 'great'"):
        attribute(tiny_bert, TEXTS[:1], target="great")
    with pytest.raises(ValueError, match="unknown target 'pos-great'"):
        attribute(tiny_bert, TEXTS[:1], target="pos-great")
    with pytest.raises(ValueError, match="unknown attribution method 'shap'.*integrated_"):
        attribute(tiny_bert, TEXTS[:1], method="shap")
    with pytest.raises(ValueError, match="'gradcam' does not apply.*methods that do: "):
        attribute(tiny_bert, TEXTS[:1], method="gradcam")
    with pytest.raises(ValueError, match="'occlusion' does not apply.*feature_ablation"):
        attribute(tiny_mlp, torch.zeros(1, 5), method="occlusion")
    bad = torch.zeros(2, 5)
    bad[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite.*'x3'"):
        attribute(tiny_mlp, bad)
    inf = np.zeros((1, 5))
    inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        attribute(tiny_mlp, inf)
    with pytest.raises(ValueError, match=r"shape \(n_rows, 5\)"):
        attribute(tiny_mlp, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\).*got \(2, 3, 8, 8\)"):
        attribute(tiny_cnn, torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="got \\(8, 8\\)"):
        attribute(tiny_cnn, torch.zeros(8, 8))
    with pytest.raises(ValueError, match="n_steps"):
        attribute(tiny_mlp, torch.zeros(1, 5), n_steps=0)
    with pytest.raises(ValueError, match="memory_budget"):
        attribute(tiny_mlp, torch.zeros(1, 5), memory_budget="lots")
    assert count_hooks(tiny_bert) == 0


def test_long_text_is_truncated_and_marked(tiny_bert):
    long = " ".join(["good"] * 40)
    with pytest.warns(ExplainWarning, match="truncated"):
        result = attribute(tiny_bert, [long, "short text"], max_length=16, n_steps=4)
    table = result.explanations()
    assert table.truncated.tolist() == [True, False]
    assert result.to_frame().query("input_id == 0").truncated.all()
    assert "truncated" in result.sentence(0)


def test_single_image_and_dataframe_inputs(tiny_cnn, tiny_mlp):
    result = attribute(tiny_cnn, torch.rand(1, 8, 8), faithfulness=False, n_steps=4)
    assert len(result) == 1
    frame = pd.DataFrame(np.zeros((2, 5)), columns=[f"x{i}" for i in range(5)])
    assert len(attribute(tiny_mlp, frame, n_steps=4)) == 2


def test_plots_render(tiny_bert, one_feature, tiny_cnn):
    from matplotlib.figure import Figure

    text = attribute(tiny_bert, TEXTS, n_steps=4)
    for kind in ("text", "bar", "waterfall", "global", "deletion"):
        assert isinstance(text.plot(kind), Figure)
    with pytest.raises(ValueError, match="does not apply"):
        text.plot("image")
    table = attribute(one_feature, _features(), n_steps=4)
    assert isinstance(table.plot(), Figure)
    image = attribute(tiny_cnn, torch.rand(2, 1, 8, 8), n_steps=4)
    assert isinstance(image.plot("image"), Figure)
    layer = attribute_layer(tiny_cnn, torch.rand(2, 1, 8, 8), n_steps=4)
    assert isinstance(layer.plot(), Figure)
    assert isinstance(layer.plot("layer", top_k=3), Figure)
    with pytest.raises(TypeError, match="unknown option.*'input'.*valid: ax, top_k"):
        layer.plot("layer", input=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "<img" in image._repr_html_()


def test_plain_torch_text_model(tiny_mha):
    # nets.MHATransformer: no token_type_ids, embeddings swapped in through the `embed` module
    result = attribute(tiny_mha, ["the movie was good", "a dull plot"], n_steps=16)
    table = result.explanations()
    assert (table.convergence_delta.abs() <= np.maximum(0.01 * (table.attribution_sum -
                                                                table.convergence_delta).abs(),
                                                        1e-6)).all()
    layer = attribute_layer(tiny_mha, ["the movie was good"], n_steps=8)
    assert layer.meta["parameters"]["layer"] == "layers.1"
    assert set(layer.to_frame().layer) == {"layers.1"}
    assert count_hooks(tiny_mha) == 0


# ------------------------------------------------- faithfulness definitions by hand


class MeanBag(nn.Module):
    """logit(pos) = mean over the attended tokens of a weight per token id, logit(neg) = 0.
    The mean is over the attention mask, so deleting a token (ERASER) and replacing it by
    [PAD] (AOPC) give different outputs."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, 1)
        with torch.no_grad():
            self.embed.weight.copy_(3 * torch.randn(vocab_size, 1,
                                                    generator=torch.Generator().manual_seed(0)))

    def forward(self, input_ids, attention_mask=None):
        h = self.embed(input_ids)[..., 0]
        mask = torch.ones_like(h) if attention_mask is None else attention_mask.to(h.dtype)
        score = (h * mask).sum(1) / mask.sum(1)
        return torch.stack([torch.zeros_like(score), score], dim=1)


LONG_TEXT = ("the film opens slowly but the acting is warm and the story grows into something "
             "funny, sad and quietly brilliant by the end")


@pytest.fixture(scope="module")
def mean_bag():
    from explain_models import tiny

    tokenizer = tiny.minilm_tokenizer()
    return explain.load_model(MeanBag(tokenizer.vocab_size), tokenizer=tokenizer,
                              task="sequence-classification", label_names=["neg", "pos"],
                              name="mean-bag")


def _p(model, ids: list[int], target: int) -> float:
    with torch.no_grad():
        logits = model(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids),
                                                                        dtype=torch.long))
    return float(torch.softmax(logits.double(), -1)[0, target])


def test_aopc_definition_by_hand(mean_bag):
    result = attribute(mean_bag, [LONG_TEXT], n_steps=32)
    row = result.explanations().iloc[0]
    assert row.faithfulness_definition == "aopc"
    tokens = result.to_frame("token")
    words = result.to_frame("word")
    ids = mean_bag.tokenizer(LONG_TEXT)["input_ids"]
    pad = mean_bag.tokenizer.pad_token_id
    target = mean_bag.label_names.index(row.target)
    # token t belongs to word w when its character span lies inside the word's span
    word_of = [next((w for w, (s, e) in enumerate(zip(words.start, words.end, strict=True))
                     if s <= ts and te <= e), -1) if ts >= 0 else -1
               for ts, te in zip(tokens.start, tokens.end, strict=True)]
    order = sorted(range(len(words)), key=lambda w: (-words.score[w], w))
    p_x = _p(mean_bag.model, ids, target)
    comp, suff = [], []
    for fraction in (0.1, 0.2, 0.3, 0.4, 0.5):
        top = set(order[:math.ceil(round(fraction * len(words), 9))])
        removed = [pad if word_of[t] in top else i for t, i in enumerate(ids)]
        kept = [i if word_of[t] in top or word_of[t] < 0 else pad for t, i in enumerate(ids)]
        comp.append(p_x - _p(mean_bag.model, removed, target))
        suff.append(p_x - _p(mean_bag.model, kept, target))
    tolerance = 16 * torch.finfo(torch.float32).eps  # probabilities in [0, 1], float32 forward
    assert row.comprehensiveness == pytest.approx(np.mean(comp), abs=tolerance)
    assert row.sufficiency == pytest.approx(np.mean(suff), abs=tolerance)
    assert row.beats_random == (row.comprehensiveness > row.random_comprehensiveness)
    assert row.comprehensiveness_gain == pytest.approx(row.comprehensiveness
                                                       - row.random_comprehensiveness)


def test_eraser_definition_by_hand(mean_bag):
    result = attribute(mean_bag, [LONG_TEXT], n_steps=32, faithfulness="eraser")
    row = result.explanations().iloc[0]
    assert row.faithfulness_definition == "eraser"
    tokens = result.to_frame("token")
    ids = mean_bag.tokenizer(LONG_TEXT)["input_ids"]
    target = mean_bag.label_names.index(row.target)
    scores = tokens.score.to_numpy()
    content = [t for t in range(len(ids)) if tokens.start[t] >= 0]  # not [CLS], [SEP]
    n = len(content)
    assert n >= 20  # every bin from 5% on holds a token
    ranked = sorted(content, key=lambda t: (-scores[t], t))
    p_x = _p(mean_bag.model, ids, target)
    comp, suff, previous = [], [], None
    for percent in (1, 5, 10, 20, 50):
        k = int(percent * n / 100)
        rationale = {t for t in ranked[:k] if scores[t] > 0}
        if k == 0 or not rationale or rationale == previous:
            continue
        previous = rationale
        deleted = [i for t, i in enumerate(ids) if t not in rationale]
        only = [i for t, i in enumerate(ids) if t in rationale or t not in content]
        comp.append(p_x - _p(mean_bag.model, deleted, target))
        suff.append(p_x - _p(mean_bag.model, only, target))
    assert len(comp) >= 3
    tolerance = 16 * torch.finfo(torch.float32).eps
    assert row.comprehensiveness == pytest.approx(np.mean(comp), abs=tolerance)
    assert row.sufficiency == pytest.approx(np.mean(suff), abs=tolerance)
    # deletion is not replacement: the two definitions differ on this model
    aopc = attribute(mean_bag, [LONG_TEXT], n_steps=32).explanations().iloc[0]
    assert abs(aopc.comprehensiveness - row.comprehensiveness) > 100 * tolerance
    # the curves are the same whichever definition is chosen
    assert row.deletion_auc == pytest.approx(aopc.deletion_auc, abs=tolerance)


def test_eraser_rationale_rules():
    from explain.attribution.trust import eraser_rationales

    scores = np.zeros(22)
    scores[[3, 7, 12]] = [0.5, 0.9, 0.2]
    scores[[4, 5]] = -1.0
    candidates = np.arange(1, 21)  # 20 tokens; 0 and 21 are special
    kept = eraser_rationales(scores, candidates)
    # 1%: 0 tokens (skipped); 5%: 1; 10%: 2; 20%: 4 of which 3 positive; 50%: the same 3
    # positive ones again (skipped)
    assert [r.tolist() for r in kept] == [[7], [3, 7], [3, 7, 12]]
    assert eraser_rationales(-np.ones(22), candidates) == []


def test_eraser_needs_text(one_feature):
    with pytest.raises(ValueError, match="faithfulness='eraser' deletes tokens.*tabular"):
        attribute(one_feature, _features(), faithfulness="eraser")
    with pytest.raises(ValueError, match="unknown faithfulness definition 'erasr'.*aopc"):
        attribute(one_feature, _features(), faithfulness="erasr")


def test_eraser_ranks_the_one_word_model(one_word):
    table = attribute(one_word, GOOD_TEXTS, n_steps=16, faithfulness="eraser").explanations()
    assert (table.faithfulness_definition == "eraser").all()
    # deleting 'good' flips the model; keeping only 'good' keeps the prediction
    assert (table.comprehensiveness > 0.5).all() and (table.sufficiency < 0.05).all()
    assert table.beats_random.all()


# ------------------------------------------------------------------ seeds by content


def _tolerance(*frames) -> float:
    scale = max(1.0, *(float(np.abs(f.score).max()) for f in frames))
    return 4 * torch.finfo(torch.float32).eps * scale


@pytest.mark.parametrize("method", SAMPLING)
def test_sampled_explanation_does_not_depend_on_the_other_inputs(tiny_mlp, method):
    x = 3 * torch.randn(3, 5, generator=torch.Generator().manual_seed(4))
    options = {"n_samples": 20}
    alone = attribute(tiny_mlp, x[1:2], method=method, seed=5, **options)
    listed = attribute(tiny_mlp, x, method=method, seed=5, **options)
    backwards = attribute(tiny_mlp, x.flip(0), method=method, seed=5, **options)
    a = alone.to_frame()
    b = listed.to_frame().query("input_id == 1")
    c = backwards.to_frame().query("input_id == 1")
    tolerance = _tolerance(a, b, c)
    np.testing.assert_allclose(b.score, a.score, rtol=0, atol=tolerance)
    np.testing.assert_allclose(c.score, a.score, rtol=0, atol=tolerance)
    # the random ranking of faithfulness is seeded by content too
    rand = [r.explanations().set_index("input_id").random_comprehensiveness
            for r in (alone, listed, backwards)]
    assert rand[0][0] == pytest.approx(rand[1][1], abs=tolerance)
    assert rand[0][0] == pytest.approx(rand[2][1], abs=tolerance)


@pytest.mark.parametrize("method", ["lime", "gradient_shap"])
def test_sampled_text_explanation_does_not_depend_on_the_other_inputs(tiny_bert, method):
    texts = ["a warm and funny story", TEXTS[0], "the plot was dull"]
    alone = attribute(tiny_bert, texts[1], method=method, n_samples=30, faithfulness=False)
    listed = attribute(tiny_bert, texts, method=method, n_samples=30, faithfulness=False)
    backwards = attribute(tiny_bert, texts[::-1], method=method, n_samples=30,
                          faithfulness=False)
    a = alone.to_frame("token")
    b = listed.to_frame("token").query("input_id == 1")
    c = backwards.to_frame("token").query("input_id == 1")
    np.testing.assert_allclose(b.score, a.score, rtol=0, atol=_tolerance(a, b, c))
    np.testing.assert_allclose(c.score, a.score, rtol=0, atol=_tolerance(a, b, c))


# ----------------------------------------------------------- bad options, early


class Counting(nn.Module):
    """OneFeature that counts its forward passes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return OneFeature()(x)


@pytest.mark.parametrize("value", [-5, 0, 2.5, True, "10"])
def test_count_options_are_checked_before_any_work(value):
    net = Counting()
    loaded = explain.load_model(net, feature_names=[f"x{i}" for i in range(5)],
                                label_names=["no", "yes"])
    for method in SAMPLING:
        with pytest.raises(ValueError, match=f"n_samples must be a positive int, got "
                                             f"{re.escape(repr(value))}.*n_samples="):
            attribute(loaded, _features(), method=method, n_samples=value)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got .*batch_size=8"):
        attribute(loaded, _features(), batch_size=value)
    if not isinstance(value, str):
        with pytest.raises(ValueError, match="n_steps must be a positive int, got .*n_steps=50"):
            attribute(loaded, _features(), n_steps=value)
    assert net.calls == 0


def test_options_of_another_method_or_modality_are_refused(tiny_bert, tiny_mlp):
    x = torch.zeros(1, 5)
    with pytest.raises(ValueError, match="option 'n_samples' does not apply to method "
                                         "'integrated_gradients'.*gradient_shap"):
        attribute(tiny_mlp, x, n_samples=10)
    with pytest.raises(ValueError, match="option 'nt_samples' does not apply"):
        attribute(tiny_mlp, x, method="smoothgrad", nt_samples=10)
    with pytest.raises(ValueError, match="stdevs must be a finite number >= 0, got -1"):
        attribute(tiny_mlp, x, method="smoothgrad", stdevs=-1)
    with pytest.raises(ValueError, match="patch_size=.*applies to image models; this is a text "
                                         "model.*remove patch_size="):
        attribute(tiny_bert, TEXTS[:1], method="occlusion", patch_size=4)
    with pytest.raises(ValueError, match="max_length=.*applies to text models; this is a "
                                         "tabular model"):
        attribute(tiny_mlp, x, max_length=8)
    with pytest.raises(ValueError, match="min_count must be a positive int, got 0.*min_count=1"):
        attribute(tiny_mlp, x, n_steps=4).global_importance(min_count=0)


def test_surrogate_fit_quality_needs_more_samples_than_features(one_feature):
    with pytest.warns(ExplainWarning, match="not estimable for 6 of 6 explanations: "
                                            "n_samples=4 perturbations for up to 5 features"
                                            ".*n_samples=60"):
        few = attribute(one_feature, _features(), method="kernel_shap", n_samples=4)
    assert few.explanations().surrogate_r2.isna().all()
    assert "R^2" not in few.sentence(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExplainWarning)
        many = attribute(one_feature, _features(), method="kernel_shap", n_samples=200)
    # the model is additive over its binary features (only x2 matters): an exact linear fit
    assert (many.explanations().surrogate_r2 > 0.999).all()


class And(nn.Module):
    """logit(yes) = 10 x0 x1 - 5: with every feature at 1, yes iff both x0 and x1 are kept."""

    def forward(self, x):
        score = 10 * x[:, 0] * x[:, 1] - 5
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_kernel_shap_fit_quality_leaves_out_its_constraints():
    # KernelSHAP weights the full and the empty coalition 1e6 so that the fit passes through
    # them; counted as samples they make any fit look perfect (R^2 = 0.9999 here). An AND of
    # two features is far from additive over the sampled coalitions.
    loaded = explain.load_model(And(), feature_names=[f"x{i}" for i in range(5)],
                                label_names=["no", "yes"])
    result = attribute(loaded, torch.ones(2, 5), method="kernel_shap", n_samples=200)
    r2 = result.explanations().surrogate_r2
    assert r2.notna().all() and (r2 < 0.5).all()


def test_eraser_on_language_models(tiny_mlm, tiny_gpt2):
    # the masked LM's mask is never deleted; the causal LM explains the token after the
    # shortened prefix
    masked = attribute(tiny_mlm, ["the movie was [MASK] and the acting was great ."],
                       n_steps=8, faithfulness="eraser").explanations()
    causal = attribute(tiny_gpt2, ["the movie was good and the acting was"],
                       continuation=" great", n_steps=8, output="log_probability",
                       faithfulness="eraser").explanations()
    for table in (masked, causal):
        values = table[["comprehensiveness", "sufficiency", "random_comprehensiveness",
                        "random_sufficiency"]].to_numpy()
        assert np.isfinite(values).all() and (np.abs(values) <= 1).all()
    assert count_hooks(tiny_mlm) == 0 and count_hooks(tiny_gpt2) == 0


# ------------------------------------------------------------------- layer attribution


def test_layer_attribution_is_a_tidy_table_with_completeness(tiny_cnn):
    images = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    result = attribute_layer(tiny_cnn, images, n_steps=32)
    frame = result.to_frame()
    n_neurons = result.scores().shape[1]
    assert len(frame) == 3 * n_neurons
    assert list(frame.columns) == ["input_id", "step", "layer", "neuron", "label", "score",
                                   "target", "predicted_label", "predicted_score",
                                   "target_score", "convergence_delta", "n_steps", "truncated"]
    assert frame.groupby("input_id").neuron.apply(list).tolist() == [list(range(n_neurons))] * 3
    # the neurons' scores sum to f(x) - f(baseline) up to the completeness error
    assert (result.relative_deltas() < 0.05).all()
    assert count_hooks(tiny_cnn) == 0


def test_layer_is_not_a_method_of_attribute(tiny_cnn):
    with pytest.raises(ValueError, match="'layer' is not a method of attribute.*attribute_layer"):
        attribute(tiny_cnn, torch.rand(1, 1, 8, 8), method="layer")
    with pytest.raises(ValueError, match="layer= applies to .*gradcam.*not 'saliency'"):
        attribute(tiny_cnn, torch.rand(1, 1, 8, 8), method="saliency", layer="conv")


def test_results_are_immutable_and_plot_options_are_checked(one_feature, tiny_cnn):
    from matplotlib.figure import Figure

    from explain.plotting import new_figure

    result = attribute(one_feature, _features(), n_steps=4)
    with pytest.raises(AttributeError, match="immutable"):
        result.method = "saliency"
    with pytest.raises(TypeError, match="read-only"):
        result.meta["method"] = "saliency"
    with pytest.raises(TypeError, match="unknown option.*'max_inputs'.*valid: ax, input, top_k"):
        result.plot("bar", max_inputs=2)
    assert result.applicable_plots() == ("waterfall", "bar", "global", "deletion")
    assert set(result.tables()) == {"scores", "explanations", "global_importance"}
    quiet = attribute(one_feature, _features(), n_steps=4, faithfulness=False)
    assert "deletion" not in quiet.applicable_plots()
    images = attribute(tiny_cnn, torch.rand(2, 1, 8, 8), n_steps=4, faithfulness=False)
    _, ax = new_figure()
    with pytest.raises(ValueError, match="max_inputs=1"):
        images.plot("image", ax=ax)
    assert isinstance(images.plot("image", ax=ax, max_inputs=1), Figure)
