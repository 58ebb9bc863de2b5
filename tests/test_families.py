"""Model families: every built-in family on a tiny offline model of its architecture, the real
MiniLM checkpoints, and a family registered from outside the package."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

import explain
from explain import hooks
from explain.families import FAMILIES, Family, family_of, register_family

# model_type -> (config class, model class, config arguments, family, head_dim, causal,
# encoder_decoder). Every model is a few thousand parameters with random weights.
_TINY = {
    "bert": ("BertConfig", "BertForSequenceClassification",
             dict(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=8,
                  max_position_embeddings=32), "bert", 4, False, False),
    "roberta": ("RobertaConfig", "RobertaForMaskedLM",
                dict(hidden_size=12, num_hidden_layers=3, num_attention_heads=3,
                     intermediate_size=8, max_position_embeddings=34), "bert", 4, False, False),
    "electra": ("ElectraConfig", "ElectraForSequenceClassification",
                dict(embedding_size=6, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=8, max_position_embeddings=32), "bert", 4, False, False),
    "distilbert": ("DistilBertConfig", "DistilBertForSequenceClassification",
                   dict(dim=8, n_layers=3, n_heads=2, hidden_dim=8, max_position_embeddings=32),
                   "distilbert", 4, False, False),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel",
             dict(n_embd=8, n_layer=2, n_head=2, n_positions=32, bos_token_id=0, eos_token_id=0),
             "gpt2", 4, True, False),
    "llama": ("LlamaConfig", "LlamaForCausalLM",
              dict(hidden_size=8, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                   head_dim=4, intermediate_size=8, max_position_embeddings=32),
              "llama", 4, True, False),
    "t5": ("T5Config", "T5ForConditionalGeneration",
           dict(d_model=8, d_kv=3, d_ff=8, num_layers=2, num_decoder_layers=2, num_heads=2,
                decoder_start_token_id=0), "t5", 3, False, True),
    "bart": ("BartConfig", "BartForConditionalGeneration",
             dict(d_model=8, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                  decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8,
                  max_position_embeddings=32), "bart", 4, False, True),
    "vit": ("ViTConfig", "ViTForImageClassification",
            dict(image_size=8, patch_size=4, num_channels=1, hidden_size=8, num_hidden_layers=2,
                 num_attention_heads=2, intermediate_size=8, num_labels=2), "vit", 4, False, False),
}


def _tiny(model_type: str) -> nn.Module:
    import transformers

    config_name, model_name, arguments, *_ = _TINY[model_type]
    if model_type != "vit":
        arguments = dict(arguments, vocab_size=40)
    config = getattr(transformers, config_name)(**arguments, attn_implementation="eager")
    torch.manual_seed(0)
    return getattr(transformers, model_name)(config).eval()


def _inputs(model_type: str) -> dict[str, torch.Tensor]:
    if model_type == "vit":
        return {"pixel_values": torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))}
    ids = torch.tensor([[1, 5, 7, 9, 2], [1, 6, 8, 2, 3]])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if _TINY[model_type][-1]:
        inputs["decoder_input_ids"] = ids[:, :4]
    return inputs


@contextlib.contextmanager
def _inputs_of(model: nn.Module, names):
    """(name, width of the first input) of each named module as it runs. Plain torch hooks:
    explain.hooks resolves names below a `.model` attribute, which Llama and BART models have."""
    seen, handles = [], []
    try:
        for name in names:
            handles.append(model.get_submodule(name).register_forward_pre_hook(
                lambda _m, args, name=name: seen.append((name, args[0].shape[-1]))))
        yield seen
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _outputs_of(model: nn.Module, names):
    outputs, handles = {}, []
    try:
        for name in names:
            handles.append(model.get_submodule(name).register_forward_hook(
                lambda _m, _args, output, name=name: outputs.setdefault(name, output)))
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def _kinds(family: Family) -> tuple[str, ...]:
    return ("self", "decoder", "cross") if family.encoder_decoder else ("self",)


@pytest.mark.parametrize("model_type", list(_TINY))
def test_builtin_family_names_exist_and_count_the_layers(model_type):
    *_, expected, head_dim, causal, encoder_decoder = _TINY[model_type]
    model = _tiny(model_type)
    family = family_of(model)
    assert family.name == expected
    assert (family.causal, family.encoder_decoder) == (causal, encoder_decoder)
    modules = dict(model.named_modules())
    n_layers, n_heads = family.n_layers(model), family.n_heads(model)
    _, _, arguments, *_ = _TINY[model_type]
    assert n_layers == next(arguments[k] for k in ("num_hidden_layers", "n_layers", "n_layer",
                                                   "num_layers", "encoder_layers") if k in arguments)
    assert n_heads == next(arguments[k] for k in ("num_attention_heads", "n_heads", "n_head",
                                                  "num_heads", "encoder_attention_heads")
                           if k in arguments)
    blocks = family.block_names(model)
    assert set(blocks) <= set(modules)
    assert len(blocks) == n_layers * (2 if encoder_decoder else 1)
    for kind in _kinds(family):
        attention = family.attention_names(model, kind)
        projections = family.head_projection_names(model, kind)
        assert len(attention) == len(projections) == n_layers, kind
        assert set(attention) | set(projections) <= set(modules)
        # layer i's attention and projection live in block i (of the decoder for its kinds)
        stack = blocks[n_layers:] if kind in ("decoder", "cross") else blocks[:n_layers]
        for block, a, p in zip(stack, attention, projections, strict=True):
            assert a.startswith(block + ".") and p.startswith(block + "."), (block, a, p)
    if not encoder_decoder:
        assert family.attention_names(model, "cross") == family.attention_names(model, "decoder") == ()
    with pytest.raises(ValueError, match="unknown attention kind 'encoder'.*self, decoder, cross"):
        family.attention_names(model, "encoder")

    # the head projections read n_heads x head_dim features, in forward order
    projections = [p for kind in _kinds(family) for p in family.head_projection_names(model, kind)]
    with _inputs_of(model, projections) as widths, torch.no_grad():
        output = model(**_inputs(model_type), output_attentions=True)
    assert {width for _, width in widths} == {n_heads * head_dim}
    for kind in _kinds(family):  # a decoder runs self- and cross-attention layer by layer
        kind_names = family.head_projection_names(model, kind)
        assert [name for name, _ in widths if name in kind_names] == list(kind_names)

    # the attention modules, in order, are those whose weights the model returns
    returned = {"self": output.encoder_attentions if encoder_decoder else output.attentions,
                "decoder": getattr(output, "decoder_attentions", None),
                "cross": getattr(output, "cross_attentions", None)}
    for kind in _kinds(family):
        names = family.attention_names(model, kind)
        with _outputs_of(model, names) as outputs, torch.no_grad():
            model(**_inputs(model_type), output_attentions=True)
        for name, weights in zip(names, returned[kind], strict=True):
            assert weights.shape[1] == n_heads
            assert any(isinstance(t, torch.Tensor) and t.shape == weights.shape
                       and torch.equal(t, weights) for t in outputs[name]), (kind, name)

    embedding = family.embedding_name(model)
    if model_type == "vit":
        assert embedding is None and family.max_positions(model) is None
    else:
        assert modules[embedding] is model.get_input_embeddings()
        positions = model.config.to_dict().get("max_position_embeddings",
                                               model.config.to_dict().get("n_positions"))
        assert family.max_positions(model) == positions


def test_loaded_models_carry_their_family(tiny_bert, tiny_gpt2, tiny_mha, tiny_mlp, tiny_cnn):
    assert tiny_bert.family is FAMILIES["bert"]
    assert tiny_gpt2.family.name == "gpt2" and tiny_gpt2.family.causal
    mha = tiny_mha.family
    assert mha.name == "multihead-attention"
    assert mha.attention_names(tiny_mha.model) == ("layers.0.attn", "layers.1.attn")
    assert mha.head_projection_names(tiny_mha.model) == ()
    assert (mha.n_layers(tiny_mha.model), mha.n_heads(tiny_mha.model)) == (2, 4)
    assert mha.max_positions(tiny_mha.model) == 64
    assert mha.embedding_name(tiny_mha.model) == "embed"
    assert tiny_mha.family.block_names(tiny_mha.model) == ("layers.0", "layers.1")
    assert tiny_cnn.family.name == "cnn"
    assert tiny_cnn.family.default_layer(tiny_cnn.model, "gradcam") == "conv2"
    assert tiny_mlp.family.name == "feed-forward"
    assert tiny_mlp.family.embedding_name(tiny_mlp.model) is None
    assert tiny_mlp.family.attention_names(tiny_mlp.model) == ()
    assert tiny_mlp.family.block_names(tiny_mlp.model) == ("hidden.0", "hidden.1")
    assert tiny_mlp.family.default_layer(tiny_mlp.model, "gradcam") is None


def test_encoder_decoders_load_with_their_family():
    from explain_models import tiny

    tokenizer = tiny.minilm_tokenizer()
    for model_type in ("t5", "bart"):
        loaded = explain.load_model(_tiny(model_type), tokenizer=tokenizer, name=model_type)
        assert loaded.family.name == model_type
        assert loaded.family.encoder_decoder and not loaded.family.causal


def test_real_minilm_checkpoints_are_bert(sentiment_model):
    import explain.datasets as datasets

    minilm = explain.load_model(datasets.minilm_path())
    for loaded in (minilm, sentiment_model):
        assert loaded.family is FAMILIES["bert"]
        model = loaded.model
        assert loaded.family.n_layers(model) == len(loaded.family.block_names(model)) == 6
        assert loaded.family.n_heads(model) == 12
        assert loaded.family.max_positions(model) == 512


def test_default_layers_follow_the_rules_of_today(tiny_bert, tiny_mha, tiny_mlp, tiny_cnn):
    # layer attribution: the last block output (BERT), the last block, the last-but-one Linear
    bert = tiny_bert.family
    assert bert.default_layer(tiny_bert.model, "layer") == "bert.encoder.layer.1.output"
    assert bert.default_layer(tiny_bert.model, "gradcam") is None
    assert tiny_mha.family.default_layer(tiny_mha.model, "layer") == "layers.1"
    assert tiny_mlp.family.default_layer(tiny_mlp.model, "layer") == "hidden.1"
    assert tiny_cnn.family.default_layer(tiny_cnn.model, "layer") == "conv2"
    # representation probes: the embeddings module, then every block
    assert bert.representation_names(tiny_bert.model) == (
        "bert.embeddings", "bert.encoder.layer.0", "bert.encoder.layer.1")
    assert bert.default_layer(tiny_bert.model, "representation") == "bert.encoder.layer.1"
    assert tiny_cnn.family.representation_names(tiny_cnn.model) == ("fc",)
    with pytest.raises(ValueError, match="unknown layer purpose 'gradcm'; did you mean "
                                         "'gradcam'.*valid: layer, gradcam, representation"):
        bert.default_layer(tiny_bert.model, "gradcm")


# ------------------------------------------------------------------ registering a family


class ToyMixer(nn.Module):
    """Attention with its own naming: ``mix`` computes the weights, ``merge`` joins the heads."""

    def __init__(self, width: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.merge = nn.Linear(width, width)

    def forward(self, x):
        q, k, v = (t.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)
                   for t in self.qkv(x).chunk(3, dim=-1))
        weights = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return self.merge((weights @ v).transpose(1, 2).flatten(2)), weights


class ToyNet(nn.Module):
    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, 8)
        self.stack = nn.ModuleList(ToyMixer(8, 2) for _ in range(3))
        self.head = nn.Linear(8, 2)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        x = self.tokens(input_ids)
        for mixer in self.stack:
            x = x + mixer(x)[0]
        return self.head(x[:, 0])


def _toy_family() -> Family:
    return Family(
        name="toy-net", description="ToyNet: stack.N.mixer-style attention (test)",
        matches=lambda model: isinstance(model, ToyNet),
        embedding_name=lambda model: "tokens",
        block_names=lambda model: tuple(f"stack.{i}" for i in range(len(model.stack))),
        attention_names=lambda model, kind="self": tuple(
            f"stack.{i}" for i in range(len(model.stack))) if kind == "self" else (),
        head_projection_names=lambda model, kind="self": tuple(
            f"stack.{i}.merge" for i in range(len(model.stack))) if kind == "self" else (),
        n_layers=lambda model: len(model.stack), n_heads=lambda model: model.stack[0].n_heads)


def test_a_registered_family_is_tried_first_and_carried_by_load_model(family_registry):
    from explain_models import tiny

    tokenizer = tiny.minilm_tokenizer()
    module = ToyNet(tokenizer.vocab_size)
    # without the family, the structure says "a text module with an embedding"
    assert family_of(module).name == "embedding"
    toy = register_family(_toy_family())
    assert next(iter(FAMILIES)) == "toy-net"
    loaded = explain.load_model(module, tokenizer=tokenizer, task="sequence-classification",
                                label_names=["neg", "pos"])
    assert loaded.family is toy
    assert toy.attention_names(module) == ("stack.0", "stack.1", "stack.2")
    assert toy.default_layer(module, "layer") == "stack.2.merge"  # the generic rule: not given
    with hooks.record(module, toy.attention_names(module)) as recording, torch.no_grad():
        module(**loaded.encode_texts(["a fine film"]).model_inputs())
    assert [recording.outputs[n][1].shape[1] for n in toy.attention_names(module)] == [2, 2, 2]
    with pytest.raises(ValueError, match="'toy-net' is already registered"):
        register_family(_toy_family())
    assert family_of(tiny.mha_transformer().model).name == "multihead-attention"


def test_register_family_checks_its_argument(family_registry):
    with pytest.raises(TypeError, match="takes an explain.families.Family, got dict"):
        register_family({"name": "x"})
    with pytest.raises(ValueError, match="'bert' is already registered"):
        register_family(Family(name="bert", description="again", matches=lambda m: False))
    with pytest.raises(TypeError, match="n_heads must be a function of the model, got int 4"):
        Family(name="x", description="x", matches=lambda m: False, n_heads=4)
    with pytest.raises(TypeError, match="causal must be True or False, got 'yes'"):
        Family(name="x", description="x", matches=lambda m: False, causal="yes")
    with pytest.raises(ValueError, match="family name is a lower-case word.*got 'My Net'"):
        Family(name="My Net", description="x", matches=lambda m: False)
    with pytest.raises(ValueError, match="needs a description"):
        Family(name="x", description=" ", matches=lambda m: False)
    with pytest.raises(AttributeError):
        FAMILIES["bert"].causal = True
    with pytest.raises(TypeError):
        FAMILIES["mine"] = FAMILIES["bert"]


def test_unknown_models_are_refused_with_how_to_register():
    import transformers
    from explain_models import tiny

    tokenizer = tiny.minilm_tokenizer()
    config = transformers.AlbertConfig(vocab_size=tokenizer.vocab_size, embedding_size=4,
                                       hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=8, attn_implementation="eager")
    albert = transformers.AlbertForSequenceClassification(config)
    with pytest.raises(ValueError, match=r"no model family describes "
                                         r"AlbertForSequenceClassification \(model_type 'albert'\)"
                                         r".*register_family\(Family\(name='albert'"):
        explain.load_model(albert, tokenizer=tokenizer)
    with pytest.raises(TypeError, match="family_of takes a torch.nn.Module"):
        family_of("bert")


def test_text_module_without_an_embedding_is_refused():
    from explain_models import tiny

    class Reads(nn.Module):
        def forward(self, input_ids, attention_mask=None):
            return torch.zeros(len(input_ids), 2)

    with pytest.raises(ValueError, match=r"Reads is loaded as a 'sequence-classification' model "
                                         r"but its family 'feed-forward'.*finds no token embedding"
                                         r".*register_family"):
        explain.load_model(Reads(), tokenizer=tiny.minilm_tokenizer())
