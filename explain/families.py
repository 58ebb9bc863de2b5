"""Model families: what `explain` knows about each architecture, in one place.

A ``Family`` says where a model keeps its token embedding, its blocks, its attention modules and
their output projections, how many layers and heads it has, how long an input may be, whether
its attention is causal and whether it is an encoder-decoder. ``explain.load_model`` resolves the
family once (``family_of``) and carries it on ``LoadedModel.family``; analyses read the family
instead of guessing from module names.

Hugging Face models are matched by ``config.model_type``; in-memory modules by their structure
(``nn.MultiheadAttention``, ``nn.Conv2d``, ``nn.Embedding``). Families registered with
``register_family`` are tried before the built-ins, so a user can add an architecture without
editing `explain`::

    from explain.families import Family, register_family

    register_family(Family(
        name="my-net", description="MyNet: blocks.N.mixer attention",
        matches=lambda model: type(model).__name__ == "MyNet",
        embedding_name=lambda model: "tokens",
        block_names=lambda model: tuple(f"blocks.{i}" for i in range(len(model.blocks))),
        attention_names=lambda model, kind="self":
            tuple(f"blocks.{i}.mixer" for i in range(len(model.blocks))) if kind == "self" else (),
        n_layers=lambda model: len(model.blocks), n_heads=lambda model: model.n_heads))

Every callable field is called with the ``nn.Module`` (``loaded.model``). Module names are
dotted ``named_modules()`` paths, listed in forward order.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

from torch import nn

from .checks import one_of

__all__ = ["ATTENTION_KINDS", "FAMILIES", "LAYER_PURPOSES", "Family", "family_of",
           "register_family"]

#: The attention stacks a family can name (``attention_names``, ``head_projection_names``).
ATTENTION_KINDS: Mapping[str, str] = MappingProxyType({
    "self": "self-attention of the (encoder) stack that reads the input text",
    "decoder": "decoder self-attention of an encoder-decoder (causal)",
    "cross": "decoder cross-attention over the encoder of an encoder-decoder",
})
#: What ``Family.default_layer`` chooses a layer for.
LAYER_PURPOSES: Mapping[str, str] = MappingProxyType({
    "layer": "layer attribution (explain.attribute_layer) when no layer= is given",
    "gradcam": "GradCAM (a convolution) when no layer= is given",
    "representation": "the last layer a representation probe reads by default",
})


# --------------------------------------------------------------------------- generic rules


def _none(model: nn.Module, *args: Any) -> None:
    return None


def _nothing(model: nn.Module, kind: str = "self") -> tuple[str, ...]:
    return ()


def _is_huggingface(model: nn.Module) -> bool:
    # A model cannot be a PreTrainedModel unless transformers has been imported.
    transformers = sys.modules.get("transformers")
    return transformers is not None and isinstance(model, transformers.PreTrainedModel)


def _model_type(model: nn.Module) -> str | None:
    if not _is_huggingface(model):
        return None
    return str(getattr(model.config, "model_type", "") or "")


def _config_int(model: nn.Module, *keys: str) -> int | None:
    """The first positive int among ``model.config``'s ``keys`` (an attribute or, for the dict
    config of ``explain.nets`` models, a key)."""
    config = getattr(model, "config", None)
    for key in keys:
        value = config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _named(model: nn.Module, pattern: str) -> tuple[str, ...]:
    """Names of the submodules whose path is ``pattern`` after any prefix, in module order."""
    compiled = re.compile(rf"(?:.*\.)?{pattern}")
    return tuple(name for name, _ in model.named_modules() if compiled.fullmatch(name))


def _input_embedding_name(model: nn.Module) -> str | None:
    """Dotted name of the token embedding: ``get_input_embeddings()`` where the model has it,
    else its largest ``nn.Embedding`` (positions and token types are smaller); ``None`` when the
    model has no ``nn.Embedding``."""
    target = None
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        try:
            target = getter()
        except (NotImplementedError, AttributeError):
            target = None
    if target is None:
        embeddings = [m for _, m in model.named_modules() if isinstance(m, nn.Embedding)]
        if not embeddings:
            return None
        target = max(embeddings, key=lambda m: m.num_embeddings)
    if not isinstance(target, nn.Embedding):
        return None  # e.g. the patch embedding of a vision transformer: no tokens
    return next((name for name, m in model.named_modules() if m is target), None)


_LAYER = re.compile(r"(.*\.)?layers?\.(\d+)(\.output)?$")


def _generic_default_layer(model: nn.Module, purpose: str) -> str | None:
    """The last ``nn.Conv2d``; else (not for GradCAM) the output of the last ``layer.N`` /
    ``layers.N`` block; else the last-but-one ``nn.Linear``; else ``None``. For
    ``"representation"``: the last of ``representation_names``. ``ValueError`` for a purpose
    that is not in ``LAYER_PURPOSES``."""
    one_of(purpose, LAYER_PURPOSES, "layer purpose")
    if purpose == "representation":
        names = _generic_representation_names(model)
        return names[-1] if names else None
    named = [(n, m) for n, m in model.named_modules() if n]
    convs = [n for n, m in named if isinstance(m, nn.Conv2d)]
    if convs:
        return convs[-1]
    if purpose == "gradcam":
        return None
    blocks = [n for n, m in named if _LAYER.fullmatch(n)
              and (n.endswith(".output") or not any(k == "output" for k, _ in m.named_children()))]
    if blocks:
        return blocks[-1]
    linears = [n for n, m in named if isinstance(m, nn.Linear)]
    return linears[-2] if len(linears) >= 2 else None


_BLOCK = re.compile(r"(^|\.)(layer|layers|h|blocks|block|hidden)\.\d+$")


def _generic_block_names(model: nn.Module) -> tuple[str, ...]:
    """The outermost ``layer.N`` / ``layers.N`` / ``h.N`` / ``blocks.N`` / ``block.N`` /
    ``hidden.N`` modules."""
    blocks = [name for name, _ in model.named_modules() if _BLOCK.search(name)]
    return tuple(b for b in blocks if not any(b != o and b.startswith(o + ".") for o in blocks))


def _generic_representation_names(model: nn.Module) -> tuple[str, ...]:
    """The embedding module (a top-level ``*embeddings`` with children), then every outermost
    block; without blocks, every ``nn.Linear``."""
    names = []
    for name, sub in model.named_modules():
        if name.endswith("embeddings") and list(sub.children()) and name.count(".") <= 1:
            names.append(name)
            break
    blocks = _generic_block_names(model)
    names += blocks
    if not blocks:
        names += [name for name, sub in model.named_modules() if isinstance(sub, nn.Linear)]
    return tuple(names)


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Family:
    """What `explain` knows about one architecture. Every callable takes the ``nn.Module``.

    ``matches(model) -> bool``: whether the family describes ``model``.
    ``embedding_name(model) -> str | None``: the token-embedding module of a text model.
    ``block_names(model)``: the repeated layers (transformer blocks, residual stages) in forward
    order (encoder then decoder for an encoder-decoder).
    ``attention_names(model, kind="self")``: one attention module per layer, for a kind of
    ``ATTENTION_KINDS`` (``()`` for a kind the model lacks).
    ``head_projection_names(model, kind="self")``: per layer, the module whose input is the
    concatenation of the heads (the attention output projection), for head masking; ``()``
    where heads are masked inside ``nn.MultiheadAttention``.
    ``n_layers``, ``n_heads``: of the ``"self"`` stack; ``max_positions``: the longest input in
    tokens the position embedding allows (``None``: no limit of its own or not a text model).
    ``causal``: the ``"self"`` attention sees only earlier tokens (an encoder-decoder's decoder
    always does). ``encoder_decoder``: it has a decoder reading an encoder (``"decoder"`` and
    ``"cross"`` kinds). ``default_layer(model, purpose)``: a layer for a purpose of
    ``LAYER_PURPOSES`` or ``None``. ``representation_names(model)``: the module paths a
    representation probe reads by default, input side first. ``opaque``: explain can only call
    the model (a scikit-learn ``predict_proba`` behind ``explain._sklearn.SklearnClassifier``):
    it has no gradients, no layers to read and no score before the softmax, so gradient and
    layer attributions, ``output="logit"`` and representation probes refuse it.
    """

    name: str
    description: str
    matches: Callable[[nn.Module], bool]
    embedding_name: Callable[[nn.Module], str | None] = _none
    block_names: Callable[[nn.Module], tuple[str, ...]] = _generic_block_names
    attention_names: Callable[..., tuple[str, ...]] = _nothing
    head_projection_names: Callable[..., tuple[str, ...]] = _nothing
    n_layers: Callable[[nn.Module], int | None] = _none
    n_heads: Callable[[nn.Module], int | None] = _none
    max_positions: Callable[[nn.Module], int | None] = _none
    causal: bool = False
    encoder_decoder: bool = False
    default_layer: Callable[[nn.Module, str], str | None] = _generic_default_layer
    representation_names: Callable[[nn.Module], tuple[str, ...]] = _generic_representation_names
    opaque: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]*", self.name):
            raise ValueError(f"a family name is a lower-case word such as 'my-net' (letters, "
                             f"digits, '-', '_', '.'), got {self.name!r}")
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError(f"family {self.name!r} needs a description (one line saying which "
                             f"models it describes), got {self.description!r}")
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name in ("causal", "encoder_decoder", "opaque"):
                if not isinstance(value, bool):
                    raise TypeError(f"family {self.name!r}: {spec.name} must be True or False, "
                                    f"got {value!r}")
            elif spec.name not in ("name", "description") and not callable(value):
                raise TypeError(f"family {self.name!r}: {spec.name} must be a function of the "
                                f"model, got {type(value).__name__} {value!r}")


# --------------------------------------------------------------------------- built-ins


def _hf(*model_types: str) -> Callable[[nn.Module], bool]:
    types = frozenset(model_types)
    return lambda model: _model_type(model) in types


def _structural(model: nn.Module, kind: type[nn.Module]) -> bool:
    return not _is_huggingface(model) and any(isinstance(m, kind) for m in model.modules())


def _by_kind(patterns: Mapping[str, str]) -> Callable[..., tuple[str, ...]]:
    """``f(model, kind="self")``: the modules matching ``patterns[kind]`` (``()`` for a kind the
    family lacks; ``ValueError`` for one that is no kind)."""
    def names(model: nn.Module, kind: str = "self") -> tuple[str, ...]:
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention kind {kind!r}; valid kinds: "
                             f"{', '.join(ATTENTION_KINDS)}")
        return _named(model, patterns[kind]) if kind in patterns else ()

    return names


def _blocks(pattern: str) -> Callable[[nn.Module], tuple[str, ...]]:
    return lambda model: _named(model, pattern)


def _ints(*keys: str) -> Callable[[nn.Module], int | None]:
    return lambda model: _config_int(model, *keys)


def _hf_positions(model: nn.Module) -> int | None:
    """The smallest of the config's position limits (``max_position_embeddings``,
    ``n_positions``, ``max_positions``)."""
    limits = [_config_int(model, key) for key in ("max_position_embeddings", "n_positions",
                                                   "max_positions")]
    return min((limit for limit in limits if limit is not None), default=None)

_BERT = Family(
    name="bert", description="BERT-like encoders (BERT, RoBERTa, XLM-R, ELECTRA; MiniLM is BERT): "
    "encoder.layer.N.attention.self, output projection attention.output.dense",
    matches=_hf("bert", "roberta", "xlm-roberta", "electra"),
    embedding_name=_input_embedding_name,
    block_names=_blocks(r"encoder\.layer\.\d+"),
    attention_names=_by_kind({"self": r"encoder\.layer\.\d+\.attention\.self"}),
    head_projection_names=_by_kind({"self": r"encoder\.layer\.\d+\.attention\.output\.dense"}),
    n_layers=_ints("num_hidden_layers"), n_heads=_ints("num_attention_heads"),
    max_positions=_hf_positions)

_DISTILBERT = Family(
    name="distilbert", description="DistilBERT: transformer.layer.N.attention, output projection "
    "attention.out_lin",
    matches=_hf("distilbert"),
    embedding_name=_input_embedding_name,
    block_names=_blocks(r"transformer\.layer\.\d+"),
    attention_names=_by_kind({"self": r"transformer\.layer\.\d+\.attention"}),
    head_projection_names=_by_kind({"self": r"transformer\.layer\.\d+\.attention\.out_lin"}),
    n_layers=_ints("n_layers"), n_heads=_ints("n_heads"), max_positions=_hf_positions)

_GPT2 = Family(
    name="gpt2", description="GPT-2 decoders: h.N.attn, output projection attn.c_proj (Conv1D)",
    matches=_hf("gpt2"),
    embedding_name=_input_embedding_name,
    block_names=_blocks(r"h\.\d+"),
    attention_names=_by_kind({"self": r"h\.\d+\.attn"}),
    head_projection_names=_by_kind({"self": r"h\.\d+\.attn\.c_proj"}),
    n_layers=_ints("n_layer"), n_heads=_ints("n_head"), max_positions=_hf_positions,
    causal=True)

_LLAMA = Family(
    name="llama", description="Llama-style decoders (Llama, Mistral, Qwen2): layers.N.self_attn, "
    "output projection self_attn.o_proj",
    matches=_hf("llama", "mistral", "qwen2"),
    embedding_name=_input_embedding_name,
    block_names=_blocks(r"layers\.\d+"),
    attention_names=_by_kind({"self": r"layers\.\d+\.self_attn"}),
    head_projection_names=_by_kind({"self": r"layers\.\d+\.self_attn\.o_proj"}),
    n_layers=_ints("num_hidden_layers"), n_heads=_ints("num_attention_heads"),
    max_positions=_hf_positions, causal=True)

_T5 = Family(
    name="t5", description="T5 encoder-decoders: (encoder|decoder).block.N.layer.0.SelfAttention, "
    "decoder cross-attention layer.1.EncDecAttention, output projections .o (relative positions: "
    "no length limit of their own)",
    matches=_hf("t5", "mt5"),
    embedding_name=_input_embedding_name,
    block_names=_blocks(r"(?:encoder|decoder)\.block\.\d+"),
    attention_names=_by_kind({
        "self": r"encoder\.block\.\d+\.layer\.0\.SelfAttention",
        "decoder": r"decoder\.block\.\d+\.layer\.0\.SelfAttention",
        "cross": r"decoder\.block\.\d+\.layer\.1\.EncDecAttention"}),
    head_projection_names=_by_kind({
        "self": r"encoder\.block\.\d+\.layer\.0\.SelfAttention\.o",
        "decoder": r"decoder\.block\.\d+\.layer\.0\.SelfAttention\.o",
        "cross": r"decoder\.block\.\d+\.layer\.1\.EncDecAttention\.o"}),
    n_layers=_ints("num_layers"), n_heads=_ints("num_heads"), max_positions=_hf_positions,
    encoder_decoder=True)

_BART = Family(
    name="bart", description="BART encoder-decoders: (encoder|decoder).layers.N.self_attn, decoder "
    "cross-attention encoder_attn, output projections out_proj",
    matches=_hf("bart"),
    embedding_name=_input_embedding_name,
    block_names=_blocks(r"(?:encoder|decoder)\.layers\.\d+"),
    attention_names=_by_kind({
        "self": r"encoder\.layers\.\d+\.self_attn",
        "decoder": r"decoder\.layers\.\d+\.self_attn",
        "cross": r"decoder\.layers\.\d+\.encoder_attn"}),
    head_projection_names=_by_kind({
        "self": r"encoder\.layers\.\d+\.self_attn\.out_proj",
        "decoder": r"decoder\.layers\.\d+\.self_attn\.out_proj",
        "cross": r"decoder\.layers\.\d+\.encoder_attn\.out_proj"}),
    n_layers=_ints("encoder_layers"), n_heads=_ints("encoder_attention_heads"),
    max_positions=_hf_positions, encoder_decoder=True)

_VIT = Family(
    name="vit", description="Vision transformers (ViT): layers.N.attention, output projection "
    "attention.o_proj (transformers 4: encoder.layer.N.attention.attention / .output.dense); "
    "images, no token embedding",
    matches=_hf("vit"),
    # transformers 5 names them layers.N.attention(.o_proj); 4.x encoder.layer.N.attention.*
    block_names=_blocks(r"(?:encoder\.layer|layers)\.\d+"),
    attention_names=_by_kind({"self": r"(?:encoder\.layer\.\d+\.attention\.attention"
                                      r"|layers\.\d+\.attention)"}),
    head_projection_names=_by_kind({"self": r"(?:encoder\.layer\.\d+\.attention\.output\.dense"
                                            r"|layers\.\d+\.attention\.o_proj)"}),
    n_layers=_ints("num_hidden_layers"), n_heads=_ints("num_attention_heads"))


def _mha_names(model: nn.Module, kind: str = "self") -> tuple[str, ...]:
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"unknown attention kind {kind!r}; valid kinds: "
                         f"{', '.join(ATTENTION_KINDS)}")
    if kind != "self":
        return ()
    return tuple(n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention))


def _mha_heads(model: nn.Module) -> int | None:
    names = _mha_names(model)
    return int(model.get_submodule(names[0]).num_heads) if names else None


_MHA = Family(
    name="multihead-attention", description="modules built of nn.MultiheadAttention (such as "
    "explain.nets.MHATransformer): one attention layer per nn.MultiheadAttention, heads masked "
    "inside it",
    matches=lambda model: _structural(model, nn.MultiheadAttention),
    embedding_name=_input_embedding_name,
    attention_names=_mha_names,
    n_layers=lambda model: len(_mha_names(model)), n_heads=_mha_heads,
    max_positions=_ints("max_positions"))

def _is_sklearn(model: nn.Module) -> bool:
    from ._sklearn import SklearnClassifier

    return isinstance(model, SklearnClassifier)


_SKLEARN = Family(
    name="sklearn", description="fitted scikit-learn classifiers (predict_proba) loaded with "
    "explain.load_model(estimator, ...): called, never differentiated; no layers, no logits",
    matches=_is_sklearn, block_names=lambda model: (), representation_names=lambda model: (),
    default_layer=lambda model, purpose: None, opaque=True)

_CNN = Family(
    name="cnn", description="convolutional networks (nn.Conv2d, such as explain.nets.SmallCNN); "
    "GradCAM reads the last convolution",
    matches=lambda model: _structural(model, nn.Conv2d))

_EMBEDDING = Family(
    name="embedding", description="text modules without attention: an nn.Embedding (the largest "
    "is the token embedding) and what follows it, such as a bag of words",
    matches=lambda model: _structural(model, nn.Embedding),
    embedding_name=_input_embedding_name)

_FEED_FORWARD = Family(
    name="feed-forward", description="plain feed-forward modules of a feature vector (tabular "
    "MLPs such as explain.nets.MLP): no attention, no embedding, no convolution",
    matches=lambda model: not _is_huggingface(model))

_BUILTIN: Mapping[str, Family] = MappingProxyType({f.name: f for f in (
    _BERT, _DISTILBERT, _GPT2, _LLAMA, _T5, _BART, _VIT, _SKLEARN, _MHA, _CNN, _EMBEDDING, _FEED_FORWARD)})
_REGISTERED: dict[str, Family] = {}
_ALL: dict[str, Family] = dict(_BUILTIN)
#: Every family by name, in the order ``family_of`` tries them: registered ones first.
FAMILIES: Mapping[str, Family] = MappingProxyType(_ALL)


def register_family(family: Family) -> Family:
    """Add ``family``; ``family_of`` tries it (and any registered before it) before the built-ins.
    ``TypeError`` for what is not a ``Family``; ``ValueError`` for a name already taken."""
    if not isinstance(family, Family):
        raise TypeError(f"register_family takes an explain.families.Family, got "
                        f"{type(family).__name__}; build one with Family(name=..., "
                        f"description=..., matches=..., ...)")
    if family.name in _ALL:
        raise ValueError(f"a family named {family.name!r} is already registered "
                         f"({_ALL[family.name].description}); choose another name")
    _REGISTERED[family.name] = family
    _rebuild()
    return family


def _rebuild() -> None:
    _ALL.clear()
    _ALL.update(_REGISTERED)
    _ALL.update(_BUILTIN)


def family_of(model: nn.Module) -> Family:
    """The first family (registered ones, then the built-ins) that matches ``model``.

    ``TypeError`` for what is not an ``nn.Module``; ``ValueError`` naming the model's class (and
    ``model_type``) and showing ``register_family`` when none matches.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"family_of takes a torch.nn.Module (loaded.model), got "
                        f"{type(model).__name__}")
    for family in FAMILIES.values():
        if family.matches(model):
            return family
    model_type = _model_type(model)
    what = type(model).__name__ + (f" (model_type {model_type!r})" if model_type is not None
                                   else "")
    raise ValueError(
        f"no model family describes {what}; explain knows {', '.join(FAMILIES)}. Describe its "
        f"layout once: explain.families.register_family(Family(name={model_type or 'my-net'!r}, "
        f"description='...', matches=lambda model: getattr(model.config, 'model_type', None) == "
        f"{model_type or 'my-net'!r}, embedding_name=..., block_names=..., attention_names=..., "
        f"n_layers=..., n_heads=...)); see help(explain.families.Family)")
