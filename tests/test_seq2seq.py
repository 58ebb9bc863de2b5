"""The trained encoder-decoder ``seq2seq`` (spelled-out dates -> "YYYY MM DD"): its recipe and
card, loading as ``seq2seq-lm``, attention, and attribution of every target token to the source
words, scored against the alignment known by construction."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import explain
from explain import hooks

N_ALIGNED = 40  # held-out dates scored against their gold alignment


@pytest.fixture(scope="module")
def checkpoint():
    import explain_models

    return explain_models.ensure("seq2seq", progress=False)


@pytest.fixture(scope="module")
def seq2seq(checkpoint):
    return explain.load_model(checkpoint)


@pytest.fixture(scope="module")
def heldout(checkpoint):
    return pd.read_csv(checkpoint / "heldout.csv")


def _tiny_t5():
    """A random T5 (its encoder and decoder share one embedding matrix) with the word-level
    date tokenizer."""
    from explain_models.seq2seq import build_tokenizer
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = build_tokenizer()
    config = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=2,
                      num_decoder_layers=2, num_heads=2, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id, attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = T5ForConditionalGeneration(config)
    return explain.load_model(module, tokenizer=tokenizer)


# ----------------------------------------------------------------------------- the recipe


def test_card_meets_the_recipe_metric(checkpoint):
    from explain_models import seq2seq

    card = json.loads((checkpoint / "model_card.json").read_text())
    metrics = card["metrics"]
    assert metrics["heldout_exact_match"] >= 0.95
    assert metrics["heldout_exact_match"] > metrics["constant_baseline_exact_match"] + 0.9
    assert card["recipe_version"] == seq2seq.RECIPE_VERSION
    assert card["split"]["heldout_rows"] == seq2seq.HELDOUT_SIZE
    assert card["training_time_seconds"] > 0
    assert card["tokenizer"]["vocabulary_size"] == len(seq2seq.build_tokenizer())


def test_heldout_file_holds_disjoint_dates_with_their_alignment(checkpoint, heldout):
    from explain_models.seq2seq import alignment_pairs, spell_date

    assert list(heldout.columns) == ["source", "target", "alignment", "order"]
    assert heldout["target"].is_unique
    for row in heldout.head(100).itertuples():
        year, month, day = (int(v) for v in row.target.split())
        assert spell_date(year, month, day, order=row.order) == (row.source, row.target,
                                                                   row.alignment)
        words = row.source.split()
        pairs = alignment_pairs(row.alignment)
        assert {j for _, j in pairs} == {0, 1, 2}        # every target word is produced
        for i, word in enumerate(words):                 # function words are unaligned
            assert (word in ("the", "of")) == all(i != s for s, _ in pairs)


def test_spelled_dates_and_their_errors():
    from explain_models.seq2seq import alignment_pairs, spell_date

    assert spell_date(1990, 3, 21) == ("the twenty first of march nineteen ninety",
                                       "1990 03 21", "1-2 2-2 4-1 5-0 6-0")
    assert spell_date(2005, 11, 2, order="month-first") == (
        "november the second twenty oh five", "2005 11 02", "0-1 2-2 3-0 4-0 5-0")
    assert alignment_pairs("1-2 4-1") == {(1, 2), (4, 1)}
    with pytest.raises(ValueError, match="1900-02-29 is not a date|outside"):
        spell_date(1900, 2, 29)
    with pytest.raises(ValueError, match="2001-02-29 is not a date"):
        spell_date(2001, 2, 29)
    with pytest.raises(ValueError, match="order must be"):
        spell_date(1990, 1, 1, order="year-first")
    with pytest.raises(ValueError, match="'1-x' of"):
        alignment_pairs("1-x")


def test_tokenizer_gives_one_token_per_word():
    from explain_models.seq2seq import build_tokenizer

    tokenizer = build_tokenizer()
    source = "march the thirty first nineteen oh nine"
    ids = tokenizer(source)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["<s>", *source.split(), "</s>"]
    assert tokenizer("1909 03 31", add_special_tokens=False)["input_ids"] == [
        tokenizer.convert_tokens_to_ids(t) for t in ("1909", "03", "31")]


# ------------------------------------------------------------------------ loading, attention


def test_loads_as_seq2seq_lm(seq2seq, heldout):
    from explain._hf import task_from_architectures

    assert seq2seq.task == "seq2seq-lm"
    assert seq2seq.family.name == "bart" and seq2seq.family.encoder_decoder
    assert type(seq2seq.model).__name__ == "BartForConditionalGeneration"
    assert task_from_architectures(["T5ForConditionalGeneration"]) == "seq2seq-lm"
    sources = heldout["source"].head(20).tolist()
    batch = seq2seq.tokenizer(sources, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = seq2seq.model.generate(**batch, max_new_tokens=6, do_sample=False, num_beams=1)
    decoded = seq2seq.tokenizer.batch_decode(out, skip_special_tokens=True)
    assert [" ".join(d.split()) for d in decoded] == heldout["target"].head(20).tolist()


def test_self_decoder_and_cross_attention(seq2seq, heldout):
    rows = heldout.head(3)
    result = explain.attention(seq2seq, rows["source"].tolist(), targets=rows["target"].tolist())
    assert {"self", "decoder", "cross"} <= set(result.maps)
    for i, source in enumerate(rows["source"]):
        n_source = len(result.tokens(i))
        n_target = len(result.tokens(i, side="target"))
        assert n_source == len(source.split()) + 2  # <s> words </s>
        assert result.maps["cross"][i].shape == (2, 4, n_target, n_source)
        np.testing.assert_allclose(result.maps["cross"][i].sum(-1), 1.0, atol=1e-4)


# ----------------------------------------------------------------------------- attribution


def test_every_target_token_is_explained_against_the_source(seq2seq, heldout):
    rows = heldout.head(3)
    sources, targets = rows["source"].tolist(), rows["target"].tolist()
    result = explain.attribute(seq2seq, sources, continuation=targets, method="saliency",
                               faithfulness=False)
    assert len(result) == 3 * len(rows)
    frame = result.to_frame()
    for i, (source, target) in enumerate(zip(sources, targets, strict=True)):
        mine = frame[frame["input_id"] == i]
        matrix = mine.pivot(index="step", columns="position", values="score")
        assert matrix.shape == (3, len(source.split()))
        assert mine.groupby("step")["target"].first().tolist() == target.split()
        assert mine[mine["step"] == 0]["label"].tolist() == source.split()
    # the model's own greedy output is the target on these dates: the same explanations
    generated = explain.attribute(seq2seq, sources, method="saliency", faithfulness=False)
    pd.testing.assert_frame_equal(generated.to_frame(), frame)
    assert hooks.count_hooks(seq2seq.model) == 0


def test_scored_output_is_the_models_own(seq2seq, heldout):
    """Only the encoder's lookup is replaced: at the real embeddings the explained
    probability is the model's probability of the target token after the target prefix."""
    row = heldout.iloc[0]
    result = explain.attribute(seq2seq, row["source"], continuation=row["target"],
                               method="saliency", faithfulness=False)
    tokenizer = seq2seq.tokenizer
    source = tokenizer(row["source"], return_tensors="pt")
    target = tokenizer(row["target"], add_special_tokens=False)["input_ids"]
    decoder = torch.tensor([[seq2seq.model.config.decoder_start_token_id, *target]])
    with torch.no_grad():
        logits = seq2seq.model(**source, decoder_input_ids=decoder).logits[0]
    expected = torch.softmax(logits.double(), -1)[torch.arange(3), torch.tensor(target)]
    np.testing.assert_allclose(result.explanations()["target_score"], expected.numpy(),
                               rtol=1e-4)


def test_t5_shared_embedding_attributes_the_encoder_only():
    loaded = _tiny_t5()
    sources, targets = ["the first of may nineteen ninety"], ["1990 05 01"]
    result = explain.attribute(loaded, sources, continuation=targets,
                               method="integrated_gradients", n_steps=256, faithfulness=False)
    table = result.explanations()
    source = loaded.tokenizer(sources, return_tensors="pt")
    ids = loaded.tokenizer(targets[0], add_special_tokens=False)["input_ids"]
    decoder = torch.tensor([[loaded.model.config.decoder_start_token_id, *ids]])
    with torch.no_grad():
        logits = loaded.model(**source, decoder_input_ids=decoder).logits[0]
    expected = torch.softmax(logits.double(), -1)[torch.arange(3), torch.tensor(ids)]
    np.testing.assert_allclose(table["target_score"], expected.numpy(), rtol=1e-4)
    assert (table["relative_delta"] < 1e-2).all()
    assert hooks.count_hooks(loaded.model) == 0


def test_integrated_gradients_is_complete(seq2seq, heldout):
    rows = heldout.head(4)
    result = explain.attribute(seq2seq, rows["source"].tolist(),
                               continuation=rows["target"].tolist(),
                               method="integrated_gradients", output="log_probability",
                               n_steps=64, faithfulness=False)
    table = result.explanations()
    assert len(table) == 12
    assert table["relative_delta"].max() < 0.02, table["relative_delta"].describe()


def test_occlusion_runs_per_target_token(seq2seq, heldout):
    rows = heldout.head(2)
    result = explain.attribute(seq2seq, rows["source"].tolist(),
                               continuation=rows["target"].tolist(), method="occlusion",
                               faithfulness=False)
    frame = result.to_frame()
    assert len(result) == 6
    assert np.isfinite(frame["score"]).all()
    assert hooks.count_hooks(seq2seq.model) == 0


def test_wrong_arguments_are_refused(seq2seq):
    with pytest.raises(ValueError, match="pass continuation= the target texts"):
        explain.attribute(seq2seq, "the first of may nineteen ninety", target="1990")
    with pytest.raises(ValueError, match=r"continuation\[0\] is empty"):
        explain.attribute(seq2seq, "the first of may nineteen ninety", continuation="")
    with pytest.raises(ValueError, match="got 2 continuations for 1 texts"):
        explain.attribute(seq2seq, "the first of may nineteen ninety",
                          continuation=["1990 05 01", "1990 05 01"])


# --------------------------------------------------------------- against the gold alignment


def _top_word_hits(result, rows) -> tuple[float, float]:
    """Share of target tokens whose highest-scoring source word is gold-aligned to it, and
    the share a uniformly random source word would reach (the mean of |gold| / |words|)."""
    from explain_models.seq2seq import alignment_pairs

    frame = result.to_frame()
    hits, chance = [], []
    for i, row in enumerate(rows.itertuples()):
        gold = alignment_pairs(row.alignment)
        n_words = len(row.source.split())
        mine = frame[frame["input_id"] == i]
        for step, group in mine.groupby("step"):
            top = int(group["position"].to_numpy()[np.argmax(group["score"].to_numpy())])
            aligned = {s for s, t in gold if t == step}
            hits.append(top in aligned)
            chance.append(len(aligned) / n_words)
    return float(np.mean(hits)), float(np.mean(chance))


# Measured on the reference model, first 40 held-out dates (120 target tokens; a random
# source word is gold-aligned 25.7% of the time): integrated gradients of the log-probability
# 99.2%, of the probability 100%, saliency 99.2%, feature ablation 100%, input x gradient 66.7%.
@pytest.mark.parametrize(("method", "n_dates"), [("integrated_gradients", 20), ("saliency", 40),
                                                  ("feature_ablation", 5)])
def test_top_source_word_is_the_gold_aligned_word(seq2seq, heldout, method, n_dates):
    rows = heldout.head(n_dates)
    result = explain.attribute(seq2seq, rows["source"].tolist(),
                               continuation=rows["target"].tolist(), method=method,
                               output="log_probability", faithfulness=False)
    hit_rate, chance = _top_word_hits(result, rows)
    assert chance < 0.35
    assert hit_rate >= 0.85, (hit_rate, chance)


def test_eraser_faithfulness_keeps_the_decoder_input(seq2seq, heldout):
    # ERASER deletes source tokens and re-scores each target token with its own decoder prefix:
    # removing the top-ranked source words must hurt more than removing random ones.
    rows = heldout.head(4)
    result = explain.attribute(seq2seq, list(rows.source), continuation=list(rows.target),
                               n_steps=16, faithfulness="eraser")
    table = result.explanations()
    assert len(table) == sum(len(t.split()) for t in rows.target)
    assert table["comprehensiveness"].notna().all()
    assert table["comprehensiveness"].mean() > table["random_comprehensiveness"].mean() + 0.2


# ----------------------------------------------------------------------------- attention


def test_attention_defaults_to_the_greedy_output(seq2seq, heldout):
    rows = heldout.head(4)
    sources, targets = rows["source"].tolist(), rows["target"].tolist()
    greedy = explain.attention(seq2seq, sources)
    # the trained model's greedy output is the target on these dates (held-out exact match)
    assert greedy.targets == tuple(targets)
    assert greedy.meta["parameters"]["decoder_input"] == \
        "decoder_start_token_id + the greedy output's tokens"
    given = explain.attention(seq2seq, sources, targets=targets)
    assert given.tokens(0, side="target") == ("</s>", *targets[0].split())  # start token: </s>
    for kind in ("self", "decoder", "cross"):
        for a, b in zip(greedy.maps[kind], given.maps[kind], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_attention_importance_scores_the_targets_per_stack(seq2seq, heldout):
    from explain.attention import head_importance

    rows = heldout.head(8)
    sources, targets = rows["source"].tolist(), rows["target"].tolist()
    result = explain.attention(seq2seq, sources, targets=targets, importance=True)
    cross = result.head_statistics(attention="cross").set_index(["layer", "head"])
    direct = head_importance(seq2seq, sources, targets=targets, attention="cross").to_frame()
    np.testing.assert_allclose(cross["importance"].to_numpy(), direct["importance"].to_numpy(),
                               atol=1e-6)
    # measured on 16 rows: the layer-1 cross heads cost 0.06-1.0 nats per target token, the
    # layer-0 ones under 0.002
    assert cross.loc[1, "importance"].max() > 10 * cross.loc[0, "importance"].abs().max()
    assert set(result.importance.to_frame()["attention"]) == {"self", "decoder", "cross"}
    assert hooks.count_hooks(seq2seq) == 0
