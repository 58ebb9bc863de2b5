"""Attention capture, words, rollout/flow, head statistics and importance, figures, bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import explain
from explain import hooks
from explain.attention import (
    ATTENTIONS,
    FLOW_MAX_TOKENS,
    HEAD_STATISTICS,
    AttentionResult,
    HeadImportanceResult,
    attention_flow,
    attention_rollout,
    head_importance,
)
from explain.attention.graph import head_statistics
from explain.errors import ExplainWarning

TEXTS = ["The film's unbelievably charming cast, sadly, cannot save it.", "a dull mess",
         "Warm and funny!"]


def _rows_sum_to_one(result: AttentionResult, *, atol: float = 1e-5) -> None:
    for kind, arrays in result.maps.items():
        for i, maps in enumerate(arrays):
            sums = np.asarray(maps, dtype=np.float64).sum(-1)
            np.testing.assert_allclose(sums, 1.0, atol=atol, err_msg=f"{kind} text {i}")
            for layer in result.layers:
                for head in result.heads:
                    words = result.matrix(i, layer=layer, head=head, level="word",
                                          attention=kind)
                    np.testing.assert_allclose(words.sum(-1), 1.0, atol=atol)


# --------------------------------------------------------------------------- capture


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_gpt2", "tiny_mha", "tiny_mlm"])
def test_rows_sum_to_one_and_padding_removed(fixture, request):
    model = request.getfixturevalue(fixture)
    result = explain.attention(model, TEXTS, batch_size=2)
    batch = model.encode_texts(TEXTS)
    assert len(result.maps["self"]) == len(TEXTS)
    for i, maps in enumerate(result.maps["self"]):
        assert maps.shape == (2, 4, batch.lengths[i], batch.lengths[i])
        assert maps.dtype == np.float32
        assert result.tokens(i) == batch.tokens[i]
    _rows_sum_to_one(result)
    assert explain.hooks.count_hooks(model) == 0


def test_text_pairs_keep_special_tokens_flagged(tiny_bert):
    result = explain.attention(tiny_bert, ["good film"], text_pairs=["bad plot"])
    tokens = result.tokens(0)
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2
    frame = result.to_frame(layer=0, head=0)
    special = frame.drop_duplicates("key_index").set_index("key_index")["key_special"]
    assert [bool(special[i]) for i in range(len(tokens))] == \
        [t in ("[CLS]", "[SEP]") for t in tokens]
    _rows_sum_to_one(result)


def test_causal_model_maps_are_lower_triangular(tiny_gpt2):
    result = explain.attention(tiny_gpt2, TEXTS)
    for maps in result.maps["self"]:
        upper = np.triu(np.ones(maps.shape[-2:], dtype=bool), k=1)
        assert np.all(maps[..., upper] == 0)
    assert result.causal


def test_huggingface_maps_equal_those_recorded_by_hooks(tiny_bert):
    """The stored maps are the model's own output_attentions, which are also what each
    self-attention module returns (recorded here through explain.hooks)."""
    result = explain.attention(tiny_bert, TEXTS)
    batch = tiny_bert.encode_texts(TEXTS)
    names = [f"bert.encoder.layer.{i}.attention.self" for i in range(2)]
    with torch.no_grad(), hooks.record(tiny_bert, names) as recording:
        output = tiny_bert.model(**batch.model_inputs(), output_attentions=True)
    for layer, name in enumerate(names):
        recorded = recording.outputs[name][1]
        assert torch.equal(recorded, output.attentions[layer])
        for i, length in enumerate(batch.lengths):
            np.testing.assert_array_equal(result.maps["self"][i][layer],
                                          recorded[i, :, :length, :length].numpy())
    assert hooks.count_hooks(tiny_bert) == 0


def test_multihead_attention_maps_equal_the_modules_own_weights(tiny_mha):
    """Hook capture equals calling each nn.MultiheadAttention with need_weights=True."""
    result = explain.attention(tiny_mha, TEXTS)
    batch = tiny_mha.encode_texts(TEXTS)
    net = tiny_mha.model
    ids, mask = batch.input_ids, batch.attention_mask
    with torch.no_grad():
        x = net.embed(ids) + net.pos(torch.arange(ids.shape[1]))[None]
        padding = mask == 0
        for layer, block in enumerate(net.layers):
            _, weights = block.attn(x, x, x, key_padding_mask=padding, need_weights=True,
                                    average_attn_weights=False)
            for i, length in enumerate(batch.lengths):
                np.testing.assert_allclose(result.maps["self"][i][layer],
                                           weights[i, :, :length, :length].numpy(), atol=1e-6)
            x = block(x, padding)
    assert hooks.count_hooks(net) == 0


def test_batch_size_invariance_and_determinism(tiny_bert):
    one = explain.attention(tiny_bert, TEXTS, batch_size=1)
    all_at_once = explain.attention(tiny_bert, TEXTS, batch_size=16)
    again = explain.attention(tiny_bert, TEXTS, batch_size=16)
    for a, b, c in zip(one.maps["self"], all_at_once.maps["self"], again.maps["self"],
                       strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
        assert b.tobytes() == c.tobytes()


def test_layer_and_head_selection(tiny_bert):
    full = explain.attention(tiny_bert, TEXTS)
    part = explain.attention(tiny_bert, TEXTS, layers=[-1], heads=[2, 0])
    assert part.layers == (1,) and part.heads == (0, 2)
    np.testing.assert_array_equal(part.maps["self"][0], full.maps["self"][0][[1]][:, [0, 2]])
    np.testing.assert_array_equal(part.matrix(0, layer=1, head=2), full.matrix(0, layer=1, head=2))
    with pytest.raises(IndexError, match=r"layer 0 was not captured; valid: 1"):
        part.matrix(0, layer=0)
    with pytest.raises(IndexError, match=r"head 1 was not captured; valid: 0, 2"):
        part.matrix(0, head=1)
    with pytest.raises(ValueError, match="needs every layer and head"):
        part.rollout(0)


def test_float16_storage(tiny_bert):
    result = explain.attention(tiny_bert, TEXTS, dtype=torch.float16)
    full = explain.attention(tiny_bert, TEXTS, dtype="float32")
    assert result.maps["self"][0].dtype == np.float16
    assert result.meta["parameters"]["dtype"] == "float16"
    np.testing.assert_allclose(result.maps["self"][0], full.maps["self"][0], atol=1e-3)
    _rows_sum_to_one(result, atol=5e-3)


def test_encoder_decoder_self_decoder_and_cross_attention():
    from explain_models import tiny

    model = tiny.bart_seq2seq()
    texts, targets = ["hello world", "a much longer source text"], ["bonjour", "x y"]
    result = explain.attention(model, texts, targets=targets)
    assert set(result.maps) == set(ATTENTIONS)
    src = [len(result.tokens(i)) for i in range(2)]
    tgt = [len(result.tokens(i, side="target")) for i in range(2)]
    for i in range(2):
        assert result.maps["self"][i].shape == (2, 2, src[i], src[i])
        assert result.maps["decoder"][i].shape == (2, 2, tgt[i], tgt[i])
        assert result.maps["cross"][i].shape == (2, 2, tgt[i], src[i])
        upper = np.triu(np.ones((tgt[i], tgt[i]), dtype=bool), k=1)
        assert np.all(result.maps["decoder"][i][..., upper] == 0)
    _rows_sum_to_one(result)
    frame = result.to_frame(attention="cross", text_id=1, layer=0, head=0)
    assert len(frame) == tgt[1] * src[1]
    assert set(frame["query_token"]) == set(result.tokens(1, side="target"))
    stats = result.head_statistics(attention="cross")
    assert stats["mean_distance"].isna().all() and stats["entropy"].notna().all()
    # Defaults: an encoder-decoder without an LM head (the BartModel inside) reads the texts
    # themselves; a seq2seq LM reads its greedy output (tests/test_seq2seq.py).
    own = explain.attention(explain.load_model(model.model.model, tokenizer=model.tokenizer), texts)
    assert own.tokens(0, side="target") == own.tokens(0)
    fig = result.plot("head", attention="cross", layer=0, head=1)
    assert "cross attention" in fig.axes[0].get_title()
    assert hooks.count_hooks(model) == 0


# --------------------------------------------------------------------------- bad input


def test_sdpa_model_is_refused_never_empty(tiny_bert):
    from transformers import BertForSequenceClassification

    config = tiny_bert.model.config
    config = config.__class__(**{**config.to_dict(), "attn_implementation": "sdpa"})
    module = BertForSequenceClassification(config)
    module.load_state_dict(tiny_bert.model.state_dict())
    loaded = explain.load_model(module, tokenizer=tiny_bert.tokenizer, attn_implementation=None)
    assert loaded.model.config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match=r"uses 'sdpa' attention.*attn_implementation='eager'"):
        explain.attention(loaded, TEXTS)
    assert hooks.count_hooks(loaded) == 0
    # Switching to eager (what the message says) gives the same maps as the eager model.
    loaded.model.set_attn_implementation("eager")
    np.testing.assert_allclose(explain.attention(loaded, TEXTS).maps["self"][0],
                               explain.attention(tiny_bert, TEXTS).maps["self"][0], atol=1e-6)


def test_empty_texts_are_refused(tiny_bert):
    with pytest.raises(ValueError, match="no texts given"):
        explain.attention(tiny_bert, [])
    with pytest.raises(ValueError, match=r"texts\[1\] is empty"):
        explain.attention(tiny_bert, ["fine", "   "])


def test_long_text_is_truncated_flagged_and_shown(tiny_bert):
    long = " ".join(["wonderful"] * 100)
    with pytest.warns(ExplainWarning, match="truncated"):
        result = explain.attention(tiny_bert, ["short one", long])
    assert result.truncated == (False, True)
    assert result.maps["self"][1].shape[-1] == 64
    for kind in ("head", "rollout"):
        title = result.plot(kind, text_id=1).axes[0].get_title()
        assert "truncated" in title
    assert "truncated" not in result.plot("head", text_id=0).axes[0].get_title()
    assert "truncated" in result.plot("grid", text_id=1)._suptitle.get_text()
    assert result.to_frame(text_id=1, layer=0, head=0)["truncated"].all()
    assert "1 truncated" in result.summary()


def test_mha_model_respects_its_own_position_limit(tiny_mha):
    with pytest.warns(ExplainWarning, match="truncated"):
        result = explain.attention(tiny_mha, [" ".join(["word"] * 80)])
    assert result.maps["self"][0].shape[-1] == 64


class _NoAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(30522, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, input_ids, attention_mask=None):
        return self.out(self.embed(input_ids).mean(1))


def test_model_without_attention_is_refused_by_name(tiny_bert):
    loaded = explain.load_model(_NoAttention(), tokenizer=tiny_bert.tokenizer, name="bag-of-words")
    with pytest.raises(TypeError, match=r"bag-of-words \(_NoAttention\).*no nn.MultiheadAttention"):
        explain.attention(loaded, TEXTS)
    with pytest.raises(TypeError, match="LoadedModel"):
        explain.attention(tiny_bert.model, TEXTS)
    for analysis in (explain.attention, head_importance):
        with pytest.raises(ValueError, match=r"takes a LoadedModel; 'sentiment' is not a checkpoint"
                                             r".*explain.load_model\(explain_models.ensure\("
                                             r"'sentiment'\)\)"):
            analysis("sentiment", TEXTS)


class _WeightlessAttention(nn.MultiheadAttention):
    """Drops its weights, like a fused kernel would."""

    def forward(self, *args, **kwargs):
        return super().forward(*args, **kwargs)[0], None


def test_attention_module_without_weights_is_named(tiny_mha):
    net = tiny_mha.model
    replacement = _WeightlessAttention(32, 4, batch_first=True)
    replacement.load_state_dict(net.layers[1].attn.state_dict())
    net.layers[1].attn = replacement
    with pytest.raises(ValueError, match=r"'layers.1.attn'.*returned no per-head attention"):
        explain.attention(tiny_mha, TEXTS)
    assert hooks.count_hooks(net) == 0


def test_unknown_layer_head_and_options(tiny_bert):
    with pytest.raises(IndexError, match=r"layer 7 does not exist; the model has 2 layers "
                                         r"\(valid: 0..1\)"):
        explain.attention(tiny_bert, TEXTS, layers=[7])
    with pytest.raises(IndexError, match=r"head 4 does not exist; the model has 4 heads "
                                         r"\(valid: 0..3\)"):
        explain.attention(tiny_bert, TEXTS, heads=4)
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        explain.attention(tiny_bert, TEXTS, dtype="int8")
    with pytest.raises(ValueError, match="batch_size"):
        explain.attention(tiny_bert, TEXTS, batch_size=0)
    with pytest.raises(ValueError, match="targets= is the decoder input"):
        explain.attention(tiny_bert, TEXTS, targets=TEXTS)
    result = explain.attention(tiny_bert, TEXTS)
    with pytest.raises(IndexError, match=r"text_id 3 is out of range; valid: 0..2"):
        result.matrix(3)
    with pytest.raises(ValueError, match="unknown level 'piece'"):
        result.to_frame(level="piece")
    with pytest.raises(ValueError, match="unknown attention 'cross'"):
        result.matrix(0, attention="cross")
    with pytest.raises(ValueError, match="unknown plot kind 'pie'"):
        result.plot("pie")
    with pytest.raises(ValueError, match="unknown statistic 'beauty'"):
        result.plot("head_summary", statistic="beauty")
    with pytest.raises(IndexError, match=r"query 99 is out of range; valid token positions"):
        result.rollout(0, query=99)


# --------------------------------------------------------------------------- words


def test_words_map_back_to_the_original_string(tiny_bert):
    result = explain.attention(tiny_bert, TEXTS)
    words = result.words(0)
    assert words == ("[CLS]", "The", "film", "'", "s", "unbelievably", "charming", "cast", ",",
                     "sadly", ",", "cannot", "save", "it", ".", "[SEP]")
    position = 0
    for word in words[1:-1]:
        position = TEXTS[0].index(word, position) + len(word)
    matrix = result.matrix(0, layer=0, head=1, level="word")
    tokens = result.matrix(0, layer=0, head=1)
    assert matrix.shape == (len(words), len(words))
    # "unbelievably" = un ##bel ##ie ##va ##bly (tokens 5..9): mean over query pieces, sum over
    # key pieces.
    pieces = slice(5, 10)
    assert result.tokens(0)[pieces] == ("un", "##bel", "##ie", "##va", "##bly")
    np.testing.assert_allclose(matrix[5, 5], tokens[pieces, pieces].sum(1).mean())
    np.testing.assert_allclose(matrix[1, 5], tokens[1, pieces].sum())
    np.testing.assert_allclose(matrix[5, 1], tokens[pieces, 1].mean())


# --------------------------------------------------------------------------- rollout and flow

# Toy model: 2 layers x 2 heads over 3 tokens. Head means:
#   A1 = [[.5, .5, 0], [.5, 0, .5], [.5, 0, .5]]   A2 = [[.5, 0, .5], [.5, 0, .5], [0, .5, .5]]
# With the residual term A' = 0.5 A + 0.5 I:
#   A'1 = [[.75, .25, 0], [.25, .5, .25], [.25, 0, .75]]
#   A'2 = [[.75, 0, .25], [.25, .5, .25], [0, .25, .75]]
# Rollout = A'2 @ A'1, by hand:
#   row 0 = .75*[.75,.25,0] + .25*[.25,0,.75]                 = [.625, .1875, .1875]
#   row 1 = .25*[.75,.25,0] + .5*[.25,.5,.25] + .25*[.25,0,.75] = [.375, .3125, .3125]
#   row 2 = .25*[.25,.5,.25] + .75*[.25,0,.75]                 = [.25, .125, .625]
# Flow from query q to input j over two layers = sum_k min(A'2[q,k], A'1[k,j]) (the paths
# q -> k -> j share no edge), then normalised:
#   q = 0: j=0: min(.75,.75)+min(.25,.25) = 1; j=1: min(.75,.25) = .25; j=2: min(.25,.75) = .25
#          -> [1, .25, .25] / 1.5 = [2/3, 1/6, 1/6]
#   q = 2: j=0: min(.25,.25)+min(.75,.25) = .5; j=1: min(.25,.5) = .25;
#          j=2: min(.25,.25)+min(.75,.75) = 1 -> [.5, .25, 1] / 1.75 = [2/7, 1/7, 4/7]
TOY = np.array([
    [[[1, 0, 0], [1, 0, 0], [1, 0, 0]], [[0, 1, 0], [0, 0, 1], [0, 0, 1]]],
    [[[0, 0, 1], [0, 0, 1], [0, 0, 1]], [[1, 0, 0], [1, 0, 0], [0, 1, 0]]],
], dtype=float)


def test_rollout_matches_hand_computation():
    expected = np.array([[.625, .1875, .1875], [.375, .3125, .3125], [.25, .125, .625]])
    np.testing.assert_allclose(attention_rollout(TOY), expected, atol=1e-12)
    np.testing.assert_allclose(attention_rollout(TOY.mean(1)), expected, atol=1e-12)
    # One layer: the rollout is the residual-augmented map itself.
    np.testing.assert_allclose(attention_rollout(TOY[:1]),
                               [[.75, .25, 0], [.25, .5, .25], [.25, 0, .75]])


def test_flow_matches_hand_computation():
    np.testing.assert_allclose(attention_flow(TOY, query=0), [2 / 3, 1 / 6, 1 / 6], atol=1e-6)
    np.testing.assert_allclose(attention_flow(TOY, query=2), [2 / 7, 1 / 7, 4 / 7], atol=1e-6)
    np.testing.assert_allclose(attention_flow(TOY[:1], query=1), [.25, .5, .25], atol=1e-6)


def test_flow_length_limit():
    maps = np.full((1, 1, FLOW_MAX_TOKENS + 1, FLOW_MAX_TOKENS + 1), 1 / (FLOW_MAX_TOKENS + 1))
    with pytest.raises(ValueError, match=f"limited to {FLOW_MAX_TOKENS} tokens.*has "
                                         f"{FLOW_MAX_TOKENS + 1}"):
        attention_flow(maps, query=0)
    with pytest.raises(ValueError, match="query 3 is out of range"):
        attention_flow(TOY, query=3)


def test_rollout_and_flow_of_a_model(tiny_bert, tiny_gpt2):
    result = explain.attention(tiny_bert, TEXTS)
    matrix = result.rollout_matrix(0)
    np.testing.assert_allclose(matrix.sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(result.rollout(0, level="token"), matrix[0])
    words = result.rollout(0)
    assert len(words) == len(result.words(0))
    np.testing.assert_allclose(words.sum(), 1.0)
    flow = result.flow(0, level="token")
    np.testing.assert_allclose(flow.sum(), 1.0)
    np.testing.assert_allclose(result.flow(0).sum(), 1.0)
    causal = explain.attention(tiny_gpt2, TEXTS)
    last = len(causal.tokens(0)) - 1
    np.testing.assert_allclose(causal.rollout(0, level="token"),
                               causal.rollout_matrix(0)[last])


# --------------------------------------------------------------------------- head statistics


def test_head_statistics_on_hand_made_maps():
    identity = np.eye(3)
    previous = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=float)
    uniform = np.full((3, 3), 1 / 3)
    maps = np.stack([identity, previous, uniform])[None]   # (1 layer, 3 heads, 3, 3)
    stats = head_statistics(maps, [True, False, False])
    np.testing.assert_allclose(stats["entropy"][0], [0, 0, math.log(3)])
    np.testing.assert_allclose(stats["mean_distance"][0], [0, 2 / 3, 8 / 9])
    np.testing.assert_allclose(stats["special_share"][0], [1 / 3, 2 / 3, 1 / 3])
    np.testing.assert_allclose(stats["previous_share"][0], [0, 1, 1 / 3])
    np.testing.assert_allclose(stats["self_share"][0], [1, 1 / 3, 1 / 3])


def test_head_statistics_frame(tiny_bert):
    result = explain.attention(tiny_bert, TEXTS)
    frame = result.head_statistics()
    assert list(frame.columns) == ["layer", "head", *HEAD_STATISTICS]
    assert len(frame) == 2 * 4
    shares = frame[["special_share", "previous_share", "self_share"]].to_numpy()
    assert np.all((shares >= 0) & (shares <= 1))
    longest = max(len(result.tokens(i)) for i in range(len(TEXTS)))
    # float32 rows sum to 1 within ~T roundoff units, which can lift a near-uniform row's
    # entropy above log(T) by about that much times log(T).
    slack = longest * np.finfo(np.float32).eps * (math.log(longest) + 1)
    assert np.all(frame["entropy"] <= math.log(longest) + slack)


# --------------------------------------------------------------------------- head importance


def test_masking_a_head_that_is_already_zero_changes_nothing(tiny_bert):
    dense = tiny_bert.model.bert.encoder.layer[0].attention.output.dense
    with torch.no_grad():
        dense.weight[:, 8:16] = 0        # head 1 of 4 (hidden 32): its output never arrives
    frame = head_importance(tiny_bert, TEXTS).to_frame().set_index(["layer", "head"])
    assert frame.loc[(0, 1), "importance"] == 0.0
    assert frame.loc[(0, 1), "masked_score"] == frame.loc[(0, 1), "score"]
    others = frame.drop(index=(0, 1))["importance"].abs()
    assert (others > 0).all()
    assert hooks.count_hooks(tiny_bert) == 0


def test_masking_a_zero_head_of_gpt2_and_multihead_attention(tiny_gpt2, tiny_mha):
    projection = tiny_gpt2.model.transformer.h[1].attn.c_proj   # Conv1D: weight (in, out)
    with torch.no_grad():
        projection.weight[16:24, :] = 0     # head 2
    frame = head_importance(tiny_gpt2, TEXTS).to_frame().set_index(["layer", "head"])
    assert frame.loc[(1, 2), "importance"] == 0.0
    assert (frame.drop(index=(1, 2))["importance"].abs() > 0).all()

    out_proj = tiny_mha.model.layers[0].attn.out_proj
    with torch.no_grad():
        out_proj.weight[:, 0:8] = 0          # head 0
    frame = head_importance(tiny_mha, TEXTS).to_frame().set_index(["layer", "head"])
    np.testing.assert_allclose(frame.loc[(0, 0), "importance"], 0.0, atol=1e-6)
    assert (frame.drop(index=(0, 0))["importance"].abs() > 1e-4).all()
    assert hooks.count_hooks(tiny_gpt2) == 0 and hooks.count_hooks(tiny_mha) == 0


def test_head_importance_of_an_encoder_decoder_classifier():
    """The family names T5's encoder output projections, so its encoder heads can be masked."""
    from explain_models import tiny
    from transformers import T5Config, T5ForSequenceClassification

    tokenizer = tiny.minilm_tokenizer()
    config = T5Config(vocab_size=tokenizer.vocab_size, d_model=16, d_kv=8, d_ff=32, num_layers=2,
                      num_decoder_layers=2, num_heads=2, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.sep_token_id, num_labels=2,
                      decoder_start_token_id=tokenizer.pad_token_id, attn_implementation="eager")
    torch.manual_seed(0)
    module = T5ForSequenceClassification(config)
    with torch.no_grad():     # head 1 (d_kv 8) of encoder layer 1: its output never arrives
        module.transformer.encoder.block[1].layer[0].SelfAttention.o.weight[:, 8:16] = 0
    model = explain.load_model(module, tokenizer=tokenizer, name="tiny-t5-classifier")
    assert model.family.encoder_decoder
    frame = head_importance(model, TEXTS).to_frame().set_index(["layer", "head"])
    assert list(frame.index) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert frame.loc[(1, 1), "importance"] == 0.0
    assert (frame.drop(index=(1, 1))["importance"].abs() > 0).all()
    assert hooks.count_hooks(model) == 0


def test_mha_masking_equals_removing_the_head(tiny_mha):
    """Subtracting a head's contribution is the same as zeroing its output-projection columns."""
    masked = head_importance(tiny_mha, TEXTS, layers=[1], heads=[3], target="pos").to_frame()
    batch = tiny_mha.encode_texts(TEXTS)
    out_proj = tiny_mha.model.layers[1].attn.out_proj
    with torch.no_grad():
        out_proj.weight[:, 24:32] = 0
        logits = tiny_mha.model(batch.input_ids, batch.attention_mask)
    np.testing.assert_allclose(masked["masked_score"][0], float(logits[:, 1].double().mean()),
                               atol=1e-5)


def test_importance_targets_and_result(tiny_bert):
    result = explain.attention(tiny_bert, TEXTS, importance=True, target="pos")
    assert list(result.head_statistics().columns)[-1] == "importance"
    direct = head_importance(tiny_bert, TEXTS, target=1).to_frame()
    np.testing.assert_allclose(result.importance.to_frame()["importance"], direct["importance"])
    with pytest.raises(ValueError, match="unknown label 'neutral'"):
        head_importance(tiny_bert, TEXTS, target="neutral")
    assert isinstance(result.plot("head_summary", statistic="importance"), Figure)


def test_head_importance_result(tiny_bert, tmp_path):
    importance = head_importance(tiny_bert, TEXTS, target="pos")
    assert isinstance(importance, HeadImportanceResult)
    frame = importance.to_frame()
    assert list(frame.columns) == ["layer", "head", "score", "masked_score", "importance",
                                   "importance_std", "n_texts"]
    assert len(frame) == 2 * 4 and (frame["n_texts"] == len(TEXTS)).all()
    assert importance.meta["method"] == "head_importance"
    assert importance.meta["parameters"]["score"] == "logit of class 1"
    cells = importance.plot().axes[0].images[0].get_array()
    np.testing.assert_array_equal(cells, frame.pivot(index="layer", columns="head",
                                                     values="importance").to_numpy())
    # The same layer x head heatmap as the head summary of attention(..., importance=True).
    result = explain.attention(tiny_bert, TEXTS, importance=True, target="pos")
    summary = result.plot("head_summary", statistic="importance").axes[0]
    np.testing.assert_array_equal(summary.images[0].get_array(), cells)
    with pytest.raises(AttributeError, match="immutable"):
        importance.table = frame
    with pytest.raises(TypeError, match="read-only"):
        importance.meta["parameters"]["target"] = 0
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'statistic'; valid: ax$"):
        importance.plot("heatmap", statistic="entropy")
    top = frame.loc[frame["importance"].idxmax()]
    assert f"layer {int(top['layer'])}, head {int(top['head'])}" in importance.summary()
    out = importance.export(tmp_path / "importance")
    assert sorted(p.name for p in out.iterdir()) == [".explain-output.json", "heatmap.png", "meta.json",
                                                     "results.csv"]


def test_hooks_are_removed_when_the_forward_raises(tiny_bert, tiny_mha, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(tiny_bert.model.classifier, "forward", broken)
    with pytest.raises(RuntimeError, match="boom"):
        head_importance(tiny_bert, TEXTS)
    assert hooks.count_hooks(tiny_bert) == 0
    monkeypatch.setattr(tiny_mha.model.classifier, "forward", broken)
    with pytest.raises(RuntimeError, match="boom"):
        explain.attention(tiny_mha, TEXTS)
    with pytest.raises(RuntimeError, match="boom"):
        head_importance(tiny_mha, TEXTS)
    assert hooks.count_hooks(tiny_mha) == 0
    assert not tiny_mha.model.training


# --------------------------------------------------------------------------- frame, meta, figures


def test_to_frame_is_tidy(tiny_bert):
    result = explain.attention(tiny_bert, TEXTS)
    frame = result.to_frame()
    assert list(frame.columns) == ["text_id", "text", "attention", "layer", "head", "query_index",
                                   "key_index", "query_token", "key_token", "query_special",
                                   "key_special", "truncated", "weight"]
    lengths = [len(result.tokens(i)) for i in range(len(TEXTS))]
    assert len(frame) == 2 * 4 * sum(n * n for n in lengths)
    sums = frame.groupby(["text_id", "layer", "head", "query_index"])["weight"].sum()
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    words = result.to_frame(level="word", text_id=0, layer=1, head=3)
    assert len(words) == len(result.words(0)) ** 2
    row = words[(words.query_token == "cast") & (words.key_token == "unbelievably")]
    assert float(row.weight.iloc[0]) == pytest.approx(
        result.matrix(0, layer=1, head=3, level="word")[7, 5])


def test_meta_records_provenance(tiny_bert):
    result = explain.attention(tiny_bert, TEXTS, layers=[1], dtype="float16")
    assert result.meta["method"] == "attention"
    assert result.meta["model"]["name"] == "tiny-bert-classifier"
    assert result.meta["parameters"]["layers"] == [1]
    assert result.meta["parameters"]["capture"] == "output_attentions"
    assert "torch" in result.meta["versions"]


def test_every_plot_kind_draws(tiny_bert, tmp_path):
    result = explain.attention(tiny_bert, TEXTS, importance=True)
    for kind in result.PLOTS:
        fig = result.plot(kind)
        assert isinstance(fig, Figure)
        paths = explain.plotting.save_figure(fig, tmp_path / kind)
        assert all(p.stat().st_size > 0 for p in paths)
    fig = result.plot("head", level="word", hide_special=True, layer=0, head=3)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "[CLS]" not in labels and "unbelievably" in labels
    assert "special tokens hidden" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="takes no ax"):
        result.plot("grid", ax=fig.axes[0])
    bars = result.plot("flow", text_id=2, level="word")
    assert [t.get_text() for t in bars.axes[0].get_yticklabels()] == list(result.words(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result.plot("head_summary", statistic="previous_share")


def test_result_is_immutable_and_checks_plot_options(tiny_bert, tmp_path):
    result = explain.attention(tiny_bert, TEXTS, layers=[1])
    with pytest.raises(AttributeError, match="immutable"):
        result.causal = True
    with pytest.raises(TypeError, match="read-only"):
        result.meta["method"] = "rollout"
    with pytest.raises(TypeError, match=r"plot\('head_summary'\) got unknown option\(s\) "
                                        r"'text_id'; valid: ax, statistic, attention"):
        result.plot("head_summary", text_id=1)
    with pytest.raises(TypeError, match="'heads'"):
        result.plot("head", heads=[0])
    # Rollout and flow need every layer; this result holds only layer 1.
    assert result.applicable_plots() == ("head", "grid", "head_summary")
    out = result.export(tmp_path / "attention")
    assert sorted(p.name for p in out.iterdir()) == [
        ".explain-output.json", "attention.csv", "grid.png", "head.png", "head_statistics.csv", "head_summary.png",
        "meta.json"]
    full = explain.attention(tiny_bert, TEXTS)
    assert full.applicable_plots() == tuple(full.PLOTS)
    assert set(full.tables()) == {"attention", "head_statistics"}


def test_plot_into_an_ax_draws_the_same(tiny_bert):
    from explain.plotting import new_figure

    result = explain.attention(tiny_bert, TEXTS)
    for kind in ("head", "head_summary", "rollout", "flow"):
        alone = result.plot(kind, text_id=1) if kind != "head_summary" else result.plot(kind)
        _, ax = new_figure(6, 4)
        into = result.plot(kind, ax=ax, **({"text_id": 1} if kind != "head_summary" else {}))
        assert into is ax.figure
        assert alone.axes[0].get_title() == ax.get_title()
        if kind in ("rollout", "flow"):
            assert [p.get_width() for p in alone.axes[0].patches] == \
                [p.get_width() for p in ax.patches]
        else:
            np.testing.assert_array_equal(alone.axes[0].images[0].get_array(),
                                          ax.images[0].get_array())


def test_t5_encoder_decoder():
    from explain_models import tiny
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = tiny.minilm_tokenizer()
    config = T5Config(vocab_size=tokenizer.vocab_size, d_model=16, d_kv=8, d_ff=32, num_layers=2,
                      num_decoder_layers=2, num_heads=2, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.sep_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id, attn_implementation="eager")
    torch.manual_seed(0)
    model = explain.load_model(T5ForConditionalGeneration(config), tokenizer=tokenizer)
    result = explain.attention(model, ["hello world", "a longer text here"], targets=["hi", "x"])
    assert result.maps["cross"][1].shape == (2, 2, len(result.tokens(1, side="target")),
                                             len(result.tokens(1)))
    _rows_sum_to_one(result)


def test_huggingface_layer_without_weights_is_named(tiny_bert, monkeypatch):
    layer = tiny_bert.model.bert.encoder.layer[1].attention.self
    original = layer.forward

    def without_weights(*args, **kwargs):
        return original(*args, **kwargs)[0], None

    monkeypatch.setattr(layer, "forward", without_weights)
    # transformers silently drops that layer from output_attentions; explain refuses.
    with pytest.raises(ValueError, match=r"returned self attention weights for 1 of its 2 layers"):
        explain.attention(tiny_bert, TEXTS)


def test_sides(tiny_bert):
    result = explain.attention(tiny_bert, TEXTS)
    with pytest.raises(ValueError, match="side='target' needs an encoder-decoder model"):
        result.tokens(0, side="target")
    with pytest.raises(ValueError, match="unknown side 'left'; valid: source, target"):
        result.words(0, side="left")


# --------------------------------------------------------------------------- encoder-decoder LMs


def _tiny_bart_lm(**overrides):
    from explain_models import tiny
    from transformers import BartConfig, BartForConditionalGeneration

    tokenizer = tiny.minilm_tokenizer()
    config = BartConfig(vocab_size=tokenizer.vocab_size, d_model=16, encoder_layers=2,
                        decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                        encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
                        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                        eos_token_id=tokenizer.sep_token_id,
                        decoder_start_token_id=tokenizer.cls_token_id, attn_implementation="eager",
                        **overrides)
    torch.manual_seed(0)
    return explain.load_model(BartForConditionalGeneration(config), tokenizer=tokenizer,
                              name="tiny-bart")


def test_seq2seq_lm_decoder_reads_its_start_token_then_the_target():
    """The decoder input is the one the model was trained on (and head_importance scores):
    decoder_start_token_id, then the target's tokens without special tokens."""
    from explain.attention.importance import decoder_batch

    model = _tiny_bart_lm()
    tokenizer = model.tokenizer
    texts, targets = ["hello world", "a much longer source text"], ["bonjour", "x y unbelievable"]
    result = explain.attention(model, texts, targets=targets)
    for i, target in enumerate(targets):
        assert result.tokens(i, side="target") == ("[CLS]", *tokenizer.tokenize(target))
        assert result.words(i, side="target") == ("[CLS]", *target.split())
        ids = [model.model.config.decoder_start_token_id,
               *tokenizer(target, add_special_tokens=False)["input_ids"]]
        with torch.no_grad():
            out = model.model(**tokenizer([texts[i]], return_tensors="pt"),
                              decoder_input_ids=torch.tensor([ids]), output_attentions=True)
        for layer in range(2):
            np.testing.assert_allclose(result.maps["cross"][i][layer],
                                       out.cross_attentions[layer][0], atol=1e-6)
    batch = decoder_batch(model, targets, 2)
    assert batch.input_ids[1, :batch.lengths[1]].tolist() == ids
    assert result.meta["parameters"]["decoder_input"] == \
        "decoder_start_token_id + the target's tokens"
    # the start token is a special unit of its own: the words of the view skip it
    frame = result.to_frame(level="word", attention="cross", text_id=0, layer=0, head=0)
    assert frame.groupby("query_index")["query_special"].first().tolist() == [True, False]
    assert hooks.count_hooks(model) == 0


def test_seq2seq_lm_long_targets_are_truncated_and_marked():
    model = _tiny_bart_lm()
    with pytest.warns(ExplainWarning, match=r"targets \[1\] have more than the 3 tokens the "
                                            r"decoder reads after its start token"):
        result = explain.attention(model, ["a b", "c d"], targets=["x", "one two three four"],
                                   max_length=4)
    assert result.truncated == (False, True)
    assert result.tokens(1, side="target") == ("[CLS]", "one", "two", "three")
    assert result.maps["cross"][1].shape[-2] == 4


def test_seq2seq_lm_without_a_decoder_start_token_is_refused():
    model = _tiny_bart_lm()
    model.model.config.decoder_start_token_id = None
    with pytest.raises(ValueError, match=r"config has no decoder_start_token_id, so its decoder "
                                         r"has no first input; set model.config"):
        explain.attention(model, ["a b"], targets=["x"])
    with pytest.raises(ValueError, match=r"config has no decoder_start_token_id"):
        explain.attention(model, ["a b"])
    assert hooks.count_hooks(model) == 0


def test_seq2seq_lm_importance_is_merged_per_stack():
    model = _tiny_bart_lm()
    texts, targets = ["hello world", "a longer source"], ["bonjour", "x y"]
    result = explain.attention(model, texts, targets=targets, importance=True)
    direct = head_importance(model, texts, targets=targets).to_frame()
    assert set(result.importance.to_frame()["attention"]) == {"self", "decoder", "cross"}
    for kind in ("self", "decoder", "cross"):
        stats = result.head_statistics(attention=kind)
        assert len(stats) == 2 * 2 and list(stats.columns)[-1] == "importance"
        expected = direct[direct["attention"] == kind]["importance"].to_numpy()
        np.testing.assert_allclose(stats["importance"].to_numpy(), expected, atol=1e-6)
    assert not np.allclose(result.head_statistics(attention="cross")["importance"],
                           result.head_statistics(attention="self")["importance"])
    fig = result.plot("head_summary", statistic="importance", attention="cross")
    assert "cross attention" in fig.axes[0].get_title()
