"""The trained masked LM ``mlm``: its card, attention, masked-token attribution and the
likelihood probes (CrowS-Pairs, StereoSet) from small files in the published formats."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import explain
from explain.fairness import crows_pairs, stereoset
from explain.hooks import count_hooks


@pytest.fixture(scope="module")
def mlm_path():
    import explain_models

    return explain_models.ensure("mlm")


@pytest.fixture(scope="module")
def mlm(mlm_path):
    return explain.load_model(mlm_path)


def test_card_beats_the_unigram_baseline_and_checkpoint_loads(mlm, mlm_path):
    assert mlm.task == "masked-lm" and type(mlm.model).__name__ == "BertForMaskedLM"
    metrics = mlm.card["metrics"]
    assert metrics["heldout_masked_accuracy"] > metrics["unigram_baseline_accuracy"] + 0.05
    assert metrics["heldout_masked_top5_accuracy"] > metrics["unigram_baseline_top5_accuracy"]
    assert metrics["heldout_masked_tokens"] > 300
    heldout = pd.read_csv(mlm_path / "heldout.csv")
    assert len(heldout) == mlm.card["split"]["heldout_rows_used"] and heldout.text.notna().all()
    # the decoder is tied to the word embeddings in the saved model too
    assert mlm.model.cls.predictions.decoder.weight is mlm.model.bert.embeddings.word_embeddings.weight


def test_recomputed_accuracy_matches_the_card(mlm, mlm_path):
    from explain_models.mlm import EVAL_SIZE, MAX_LENGTH, SEED, _batches, _masked_logits

    texts = pd.read_csv(mlm_path / "heldout.csv").text.tolist()
    assert len(texts) == EVAL_SIZE
    ids = mlm.tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    batches = _batches(ids, np.random.default_rng([SEED, 1000]),
                       mask_id=mlm.tokenizer.mask_token_id, random_ids=None, batch_size=64)
    with torch.no_grad():
        hits = sum(int((_masked_logits(mlm.model, b).argmax(-1) == b[3]).sum()) for b in batches)
    total = sum(len(b[3]) for b in batches)
    assert total == mlm.card["metrics"]["heldout_masked_tokens"]
    # a few predictions may flip between CPUs by rounding, never more
    assert abs(hits / total - mlm.card["metrics"]["heldout_masked_accuracy"]) < 0.01


def test_predicts_plausible_words_at_the_mask(mlm):
    ids = mlm.tokenizer("the acting was [MASK] and the story was boring .", return_tensors="pt")
    position = int((ids["input_ids"][0] == mlm.tokenizer.mask_token_id).nonzero()[0, 0])
    with torch.no_grad():
        logits = mlm.model(**ids).logits[0, position]
    top = mlm.tokenizer.convert_ids_to_tokens(logits.topk(10).indices.tolist())
    # a small model still ranks punctuation high: its top guess and most of its top 10 are words
    words = [t.isalpha() or (t.startswith("##") and t[2:].isalpha()) for t in top]
    assert words[0] and sum(words) >= 6, top


def test_attention_rows_sum_to_one(mlm):
    texts = ["a [MASK] and moving film .", "the plot is thin but the cast is [MASK] ."]
    result = explain.attention(mlm, texts)
    for maps in result.maps["self"]:
        assert maps.shape[:2] == (6, 12)
        np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-4)
    assert count_hooks(mlm) == 0


def test_attribution_of_the_masked_token_is_complete(mlm):
    texts = ["a [MASK] and moving film .", "the plot is thin but the cast is [MASK] ."]
    default = explain.attribute(mlm, texts, n_steps=50, faithfulness=False)
    table = default.explanations()
    # the default target is the token predicted at [MASK]
    assert (table.target == table.predicted_label).all()
    gap = (table.attribution_sum - table.convergence_delta).abs()
    assert (table.convergence_delta.abs() <= np.maximum(0.01 * gap, 1e-4)).all(), table
    given = explain.attribute(mlm, texts[:1], target="good", n_steps=50, faithfulness=False)
    assert (given.explanations().target == "good").all()
    assert "[MASK]" in default.to_frame().label.tolist()
    assert count_hooks(mlm) == 0


def test_a_text_without_mask_is_refused(mlm):
    with pytest.raises(ValueError, match=r"no '\[MASK\]' token"):
        explain.attribute(mlm, ["no mask in this sentence"], n_steps=4)


def test_crows_pairs_and_stereoset_from_user_files(mlm, tmp_path):
    pairs = pd.DataFrame([
        ("he is a brilliant director", "she is a brilliant director", "stereo", "gender"),
        ("the old actor forgot his lines", "the young actor forgot his lines", "stereo", "age"),
        ("the film was loved by every critic", "the film was loved by one critic", "antistereo",
         "other"),
    ], columns=["sent_more", "sent_less", "stereo_antistereo", "bias_type"])
    path = tmp_path / "crows_pairs_anonymized.csv"
    pairs.to_csv(path, index=True)
    result = crows_pairs(mlm, path)
    frame = result.to_frame()
    assert len(frame) == 3 and (frame.n_scored_tokens > 0).all()
    assert np.isfinite(frame[["score_more", "score_less"]]).all().all()
    assert (frame[["score_more", "score_less"]] < 0).all().all()
    assert 0 <= result.metric_score <= 100

    def example(i, context, words):
        return {"id": f"ex{i}", "target": "film", "bias_type": "other", "context": context,
                "sentences": [{"id": f"s{i}{k}", "sentence": context.replace("BLANK", w),
                               "labels": [], "gold_label": g}
                              for k, (w, g) in enumerate(zip(
                                  words, ("stereotype", "anti-stereotype", "unrelated"),
                                  strict=True))]}

    data = {"version": "1.0", "data": {"intersentence": [], "intrasentence": [
        example(0, "The movie was BLANK and I loved it.", ["great", "good", "spoon"]),
        example(1, "The acting was BLANK.", ["wonderful", "terrible", "purple"]),
    ]}}
    json_path = tmp_path / "dev.json"
    json_path.write_text(json.dumps(data))
    scores = stereoset(mlm, json_path)
    examples = scores.to_frame()
    # a trained MLM finds the meaningful words likelier than the unrelated ones
    assert (examples.score_unrelated < examples[["score_stereotype",
                                                 "score_anti_stereotype"]].min(axis=1)).all()
    assert scores.summary_table.iloc[0].lm_score == 100.0
