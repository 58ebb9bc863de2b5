"""Head importance of encoder-decoder LMs: every stack (encoder self, decoder self, cross),
scored by the teacher-forced log-probability of the target; checked against the model's own loss
and against zeroed weights; on the trained seq2seq reference model the head ranking carries over
to held-out rows."""

import copy

import numpy as np
import pytest
import torch

import explain
from explain.attention import head_importance

SOURCES = ["the third of march", "may fifth", "june the first nineteen ninety"]
TARGETS = ["three march", "may five", "one june"]


@pytest.fixture(scope="module")
def tiny_bart():
    from explain_models import tiny
    # the decoder has other head counts than the encoder: each stack is read on its own
    return tiny.bart_seq2seq(decoder_layers=1, decoder_attention_heads=4)


@pytest.fixture(scope="module")
def importance(tiny_bart):
    return head_importance(tiny_bart, SOURCES, targets=TARGETS)


def _teacher_forced(model, source, target):
    """The mean log-probability of the target's tokens (no special tokens), from the model's
    own loss (HF shifts labels right behind decoder_start_token_id)."""
    tok = model.tokenizer
    src = tok([source], return_tensors="pt")
    labels = tok([target], add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = model.model(**src, labels=labels).loss
    return -float(loss)


def _no_hooks(module):
    return all(not m._forward_pre_hooks and not m._forward_hooks for m in module.modules())


def test_every_stack_every_head(importance, tiny_bart):
    frame = importance.to_frame()
    assert list(frame.columns[:3]) == ["attention", "layer", "head"]
    sizes = frame.groupby("attention").size().to_dict()
    assert sizes == {"self": 2 * 2, "decoder": 1 * 4, "cross": 1 * 4}
    assert np.isfinite(frame["importance"]).all()
    # a random tiny model: the encoder's heads barely matter, the decoder's do
    assert (frame.loc[frame["attention"] != "self", "importance"].abs() > 1e-6).all()
    assert importance.meta["parameters"]["attention"] == ["self", "decoder", "cross"]
    assert _no_hooks(tiny_bart.model)
    assert "most important" in importance.summary()


def test_score_is_the_teacher_forced_log_probability(importance, tiny_bart):
    expected = np.mean([_teacher_forced(tiny_bart, s, t) for s, t in zip(SOURCES, TARGETS,
                                                                         strict=True)])
    assert importance.to_frame()["score"].iloc[0] == pytest.approx(expected, abs=1e-4)


def test_masking_a_head_equals_zeroing_its_output_projection(importance, tiny_bart):
    frame = importance.to_frame()
    row = frame[(frame["attention"] == "cross") & (frame["layer"] == 0) & (frame["head"] == 2)]
    changed = copy.deepcopy(tiny_bart.model)
    size = 16 // 4
    with torch.no_grad():
        changed.model.decoder.layers[0].encoder_attn.out_proj.weight[:, 2 * size:3 * size] = 0
    masked = explain.load_model(changed, tokenizer=tiny_bart.tokenizer)
    expected = np.mean([_teacher_forced(masked, s, t) for s, t in zip(SOURCES, TARGETS,
                                                                      strict=True)])
    assert row["masked_score"].iloc[0] == pytest.approx(expected, abs=1e-4)


def test_batch_size_and_selection(importance, tiny_bart):
    small = head_importance(tiny_bart, SOURCES, targets=TARGETS, batch_size=1,
                                    attention="cross", heads=[1, 3])
    frame = small.to_frame()
    assert set(frame["attention"]) == {"cross"} and list(frame["head"]) == [1, 3]
    full = importance.to_frame().set_index(["attention", "layer", "head"])
    for _, row in frame.iterrows():
        assert row["importance"] == pytest.approx(
            full.loc[("cross", row["layer"], row["head"]), "importance"], abs=1e-5)


def test_figure(importance, tmp_path):
    fig = importance.plot()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["self 0", "self 1", "decoder 0", "cross 0"]
    fig.savefig(tmp_path / "importance.png")


def test_errors(tiny_bart):
    from explain_models import tiny

    with pytest.raises(ValueError, match=r"scores the log-probability of targets="):
        head_importance(tiny_bart, SOURCES)
    with pytest.raises(ValueError, match=r"got 3 texts but 2 targets"):
        head_importance(tiny_bart, SOURCES, targets=TARGETS[:2])
    with pytest.raises(ValueError, match=r"attention='encoder'.*has the head stack\(s\) 'self', "
                                         r"'decoder', 'cross'"):
        head_importance(tiny_bart, SOURCES, targets=TARGETS, attention="encoder")
    with pytest.raises(ValueError, match=r"target= selects a class of a classifier"):
        head_importance(tiny_bart, SOURCES, targets=TARGETS, target=0)
    bert = tiny.bert_classifier()
    with pytest.raises(ValueError, match=r"targets= are the decoder inputs"):
        head_importance(bert, SOURCES, targets=TARGETS)
    with pytest.raises(ValueError, match=r"attention='cross'.*masked for 'seq2seq-lm' models"):
        head_importance(bert, SOURCES, attention="cross")
    assert _no_hooks(tiny_bart.model)


def test_t5_stacks_and_a_missing_decoder_start_token():
    from explain_models import tiny
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = tiny.minilm_tokenizer()
    config = T5Config(vocab_size=tokenizer.vocab_size, d_model=16, d_kv=8, d_ff=32, num_layers=1,
                      num_heads=2, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.sep_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id, attn_implementation="eager")
    torch.manual_seed(0)
    model = explain.load_model(T5ForConditionalGeneration(config), tokenizer=tokenizer)
    frame = head_importance(model, ["a b", "c"], targets=["x", "y z"]).to_frame()
    assert frame.groupby("attention").size().to_dict() == {"self": 2, "decoder": 2, "cross": 2}
    assert frame["score"].iloc[0] == pytest.approx(np.mean(
        [_teacher_forced(model, "a b", "x"), _teacher_forced(model, "c", "y z")]), abs=1e-4)
    model.model.config.decoder_start_token_id = None
    with pytest.raises(ValueError, match=r"config has no decoder_start_token_id"):
        head_importance(model, ["a b", "c"], targets=["x", "y"])
    assert _no_hooks(model.model)


def test_trained_seq2seq_head_ranking_carries_over_to_other_rows():
    import pandas as pd
    from explain_models import ensure

    path = ensure("seq2seq")
    model = explain.load_model(path)
    data = pd.read_csv(path / "heldout.csv").head(32)
    first, second = data.iloc[:16], data.iloc[16:]
    ranked = head_importance(model, first["source"].tolist(), targets=first["target"].tolist(),
                             attention="cross").to_frame()
    most = ranked.loc[ranked["importance"].idxmax()]
    least = ranked.loc[ranked["importance"].idxmin()]
    check = head_importance(model, second["source"].tolist(), targets=second["target"].tolist(),
                            attention="cross").to_frame().set_index(["layer", "head"])
    cost_most = check.loc[(most["layer"], most["head"]), "importance"]
    cost_least = check.loc[(least["layer"], least["head"]), "importance"]
    # measured (32 rows): the top cross heads of layer 1 cost 0.6-0.9 nats per token, the
    # least important ones of layer 0 under 0.002
    assert cost_most > cost_least + 0.1
    assert check["score"].iloc[0] > -0.1     # the trained model: near-certain targets
