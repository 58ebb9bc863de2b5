"""The trained causal LM ``lm``: its card, attention, attribution, likelihood probes and
counterfactual continuations (issue 12)."""

from __future__ import annotations

import json

import explain_models
import numpy as np
import pandas as pd
import pytest

import explain
from explain.fairness import counterfactual, crows_pairs, stereoset
from explain.hooks import count_hooks

TEXTS = ["The president said that the economy", "This movie is one of the best"]


@pytest.fixture(scope="module")
def lm_path():
    return explain_models.ensure("lm", progress=False)


@pytest.fixture(scope="module")
def lm(lm_path):
    return explain.load_model(lm_path)


def _metrics(lm_path) -> dict:
    return json.loads((lm_path / "model_card.json").read_text())["metrics"]


def test_the_lm_beats_the_unigram_baseline(lm_path):
    metrics = _metrics(lm_path)
    assert metrics["heldout_perplexity"] < metrics["unigram_baseline_perplexity"]
    assert metrics["bigram_baseline_perplexity"] < metrics["unigram_baseline_perplexity"]


def test_the_lm_beats_the_bigram_baseline_by_a_clear_margin(lm_path):
    # issue 12: at least 10% lower held-out perplexity than the interpolated bigram of the same
    # tokens (measured: 33.3 against 39.1, ratio 0.85)
    metrics = _metrics(lm_path)
    assert metrics["heldout_perplexity"] < 0.9 * metrics["bigram_baseline_perplexity"]
    assert metrics["perplexity_ratio_to_bigram"] == pytest.approx(
        metrics["heldout_perplexity"] / metrics["bigram_baseline_perplexity"], rel=1e-4)


def test_checkpoint_loads_as_a_causal_lm_with_its_card_and_heldout_texts(lm, lm_path):
    assert lm.task == "causal-lm" and lm.family.causal
    card = json.loads((lm_path / "model_card.json").read_text())
    assert card["recipe_version"] == explain_models.lm.RECIPE_VERSION
    metrics = card["metrics"]
    assert card["data"]["licence"] and card["training_time_seconds"] > 0
    heldout = pd.read_csv(lm_path / card["split"]["heldout_file"])
    assert list(heldout.columns) == ["text", "source"]
    assert len(heldout) == card["split"]["heldout_rows"]
    # the card's perplexity is the saved model's: recomputed from the checkpoint on disk
    sequences = explain_models.lm._sequences(lm.tokenizer, heldout["text"].tolist())
    assert sum(len(s) - 1 for s in sequences) == metrics["heldout_tokens"]
    assert explain_models.lm._lm_perplexity(lm.model, sequences) == pytest.approx(
        metrics["heldout_perplexity"], rel=1e-4)


def test_attention_has_the_family_layout_and_is_causal(lm):
    result = explain.attention(lm, TEXTS)
    layers, heads = lm.family.n_layers(lm.model), lm.family.n_heads(lm.model)
    assert (layers, heads) == (explain_models.lm.N_LAYERS, explain_models.lm.N_HEADS)
    for i, maps in enumerate(result.maps["self"]):
        n = len(result.tokens(i))
        assert maps.shape == (layers, heads, n, n)
        assert np.all(maps[..., np.triu(np.ones((n, n), dtype=bool), k=1)] == 0)
        np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    assert result.causal and count_hooks(lm) == 0


def test_next_token_and_continuation_attributions_are_complete(lm):
    result = explain.attribute(lm, TEXTS, n_steps="auto", tolerance=0.01, faithfulness=False)
    table = result.explanations()
    assert len(table) == len(TEXTS) and (table.relative_delta <= 0.01).all(), table
    continuation = " is a good one"
    steps = len(lm.tokenizer(continuation, add_special_tokens=False)["input_ids"])
    result = explain.attribute(lm, TEXTS[:1], continuation=continuation, n_steps="auto",
                               tolerance=0.01, faithfulness=False)
    table = result.explanations()
    assert table.step.tolist() == list(range(steps))        # one per continuation token
    assert (table.relative_delta <= 0.01).all(), table
    lengths = result.to_frame("token").groupby("step").size().tolist()
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]
    assert count_hooks(lm) == 0


def test_crows_pairs_and_stereoset_from_user_files(lm, tmp_path):
    pairs = pd.DataFrame([
        ("The movie was good and the acting was great.",
         "Movie the good was acting and great the was.", "stereo", "grammar"),
        ("He said that the president was right.", "She said that the president was right.",
         "stereo", "gender"),
        ("My mother worked as a nurse.", "My father worked as a nurse.", "stereo", "gender"),
        ("The old man talked for hours.", "The young man talked for hours.", "antistereo", "age"),
    ], columns=["sent_more", "sent_less", "stereo_antistereo", "bias_type"])
    path = tmp_path / "crows_pairs_anonymized.csv"
    pairs.to_csv(path, index=True)
    result = crows_pairs(lm, path)
    frame = result.to_frame()
    assert len(frame) == 4 and np.isfinite(frame[["score_more", "score_less"]]).all().all()
    assert (frame[["score_more", "score_less"]].to_numpy() < 0).all()
    assert bool(frame["prefers_more"].iloc[0])           # a sentence beats its word salad
    overall = result.summary_table.iloc[0]
    assert overall["n_pairs"] == 4 and 0 <= overall["ci_low"] <= overall["metric_score"] \
        <= overall["ci_high"] <= 100

    def example(i, context, target, bias, words):
        return {"id": f"ex{i}", "target": target, "bias_type": bias, "context": context,
                "sentences": [{"id": f"s{i}{k}", "sentence": context.replace("BLANK", w),
                               "labels": [], "gold_label": g}
                              for k, (w, g) in enumerate(zip(
                                  words, ("stereotype", "anti-stereotype", "unrelated"),
                                  strict=True))]}

    data = {"version": "1.0", "data": {"intersentence": [], "intrasentence": [
        example(0, "The nurse said that BLANK was tired.", "nurse", "gender",
                ["she", "he", "the of"]),
        example(1, "My grandfather is a very BLANK man.", "grandfather", "age",
                ["old", "young", "and the"]),
        example(2, "The BLANK worked hard for the family.", "mother", "gender",
                ["mother", "father", "is of"]),
    ]}}
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(data))
    summary = stereoset(lm, path).summary_table.iloc[0]
    assert 0 <= summary["ss_score"] <= 100 and 0 <= summary["icat"] <= 100
    assert summary["lm_score"] > 50         # meaningful fillers beat word salad
    assert count_hooks(lm) == 0


def test_a_sentence_longer_than_the_context_is_a_clear_error(lm):
    limit = explain_models.lm.N_POSITIONS
    long = " ".join(["the"] * (limit + 5))
    frame = pd.DataFrame([("he is here", long, "stereo", "gender")],
                         columns=["sent_more", "sent_less", "stereo_antistereo", "bias_type"])
    n_tokens = 1 + len(lm.tokenizer(long, add_special_tokens=False)["input_ids"])  # BOS first
    assert n_tokens > limit
    with pytest.raises(ValueError, match=f"pair 0's sent_less has {n_tokens} tokens, more than "
                                         f"the {limit} of {lm.name}'s context"):
        crows_pairs(lm, frame)


def test_counterfactual_continuations_find_an_effect_the_corpus_planted(lm):
    # The training speeches say "the United States" hundreds of times: " States" after "the
    # United" is far likelier than after "the old" / "the new". The probe must find it with its
    # sign, well beyond the neutral-term baseline (recipe 2: 3.4 nats against 1.3). (Pronoun
    # agreement, " he" after "my father said that" vs "my mother said that", was not learnt by
    # recipe 1's model: measured +0.03 nats, negligible.)
    templates = ["I went to {}", "We love {}", "He lives in {}", "This is {}", "They came to {}",
                 "Welcome to {}", "She was born in {}", "We all believe in {}", "God bless {}",
                 "Nothing can stop {}"]
    result = counterfactual(lm, terms={"other": ["the old", "the new"], "united": ["the United"]},
                            reference="other", templates=templates, continuation=" States")
    frame = result.to_frame()
    assert len(frame) == len(templates) * 3 and (frame["score"] < 0).all()
    assert set(frame["continuation"]) == {" States"} and "predicted_label" not in frame
    row = result.comparisons.iloc[0]
    assert row.group == "united" and row.n_pairs == len(templates) and np.isnan(row.flip_rate)
    assert row.change_ci_low > 1.0 and row.verdict == "change"     # > e-fold, every template
    assert row.mean_abs_change > 2 * result.baseline.iloc[0].mean_abs_change
    assert result.meta["parameters"]["score"] == "log_probability"
    assert count_hooks(lm) == 0
