"""Capture: one forward pass that returns every attention map of a batch of texts.

Hugging Face models run one forward with ``output_attentions=True``; this needs eager attention
(``sdpa`` returns no weights, so any other implementation raises a ``ValueError`` that says how to
load the model instead). Encoder-decoder models give three kinds of maps (``ATTENTIONS``):
encoder self-attention (``"self"``), decoder self-attention (``"decoder"``) and cross attention
(``"cross"``, decoder queries x encoder keys). The decoder of a Hugging Face encoder-decoder
reads ``targets`` under teacher forcing, as it was trained: its ``decoder_start_token_id`` (a
special token) then each target's tokens without special tokens (``importance.decoder_batch``,
shared with ``head_importance``; longer than the decoder's limit: truncated and flagged). Without
``targets`` a ``"seq2seq-lm"`` decoder reads the model's own greedy output (as
``explain.attribute(continuation=None)`` explains it), and an encoder-decoder without an LM head
reads the texts as tokenised. A plain ``nn.Module`` is captured through
``explain.hooks``: every ``nn.MultiheadAttention`` is asked for per-head weights
(``need_weights=True, average_attn_weights=False`` via ``edit_inputs``) and its output recorded.
Padding is removed: text ``i`` is stored as an array of shape ``(n_layers, n_heads, T_i, T_i)``
(``T_i`` real tokens, special tokens included and flagged so views can hide them), in float32 or
float16.

Images: an image-classification model built on ``nn.MultiheadAttention`` (a vision transformer
such as ``explain.nets.VisionTransformer``) reads ``(N, C, H, W)`` pixels; its tokens must be
``[CLS]`` followed by square patches in row-major order (the patch grid is read from the number
of tokens and the image size), and the result is an ``ImageAttentionResult``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import torch

from .. import hooks
from ..checks import memory_size, positive_int
from ..results import make_meta
from ..text import encode_texts
from .importance import decoder_batch, greedy_targets, head_importance
from .inputs import (
    batch_rows,
    check_images,
    check_model,
    check_selection,
    force_weights,
    forward_inputs,
    mha_modules,
)
from .result import AttentionResult, ImageAttentionResult, Side

__all__ = ["DTYPES", "attention"]

#: Storage precisions.
DTYPES: Mapping[str, torch.dtype] = MappingProxyType({"float32": torch.float32,
                                                      "float16": torch.float16})


def _check_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    if dtype in DTYPES.values():
        return dtype
    raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)} (or torch.float32, "
                     f"torch.float16)")


def _require_eager(model) -> None:
    implementation = getattr(model.config, "_attn_implementation", None)
    if implementation != "eager":
        raise ValueError(
            f"{model.name} ({type(model.model).__name__}) uses {implementation!r} attention, which "
            f"returns no attention weights; load it with explain.load_model(path) (eager by "
            f"default), from_pretrained(..., attn_implementation='eager') or call "
            f"model.set_attn_implementation('eager')")


def _checked(attentions, what: str, model) -> tuple[torch.Tensor, ...]:
    if attentions is None or len(attentions) == 0:
        raise ValueError(f"{model.name} ({type(model.model).__name__}) returned no {what} "
                         f"attention weights; load it with attn_implementation='eager'")
    kind = "self" if what in ("self", "encoder") else what
    expected = len(model.family.attention_names(model.model, kind))
    if expected and len(attentions) != expected:
        # transformers drops the layers whose attention module returned no weights, which
        # would shift every later layer: refuse instead.
        raise ValueError(f"{model.name} ({type(model.model).__name__}) returned {what} attention "
                         f"weights for {len(attentions)} of its {expected} layers: the attention "
                         f"module of some layer gives no weights (no eager path); attention maps "
                         f"need every layer's weights")
    missing = [i for i, a in enumerate(attentions) if a is None or a.dim() != 4]
    if missing:
        raise ValueError(f"{model.name} ({type(model.model).__name__}): {what} layer(s) "
                         f"{', '.join(map(str, missing))} returned no per-head attention weights "
                         f"(their attention module has no eager path); attention maps need every "
                         f"layer's weights")
    return tuple(attentions)


def attention(
    model,
    texts: Sequence[str] | str,
    *,
    text_pairs: Sequence[str] | str | None = None,
    targets: Sequence[str] | str | None = None,
    layers: Sequence[int] | int | None = None,
    heads: Sequence[int] | int | None = None,
    dtype: torch.dtype | str = torch.float32,
    max_length: int | None = None,
    batch_size: int = 16,
    importance: bool = False,
    target: int | str | None = None,
    memory_budget: int | str | None = None,
) -> AttentionResult:
    """Capture per-layer, per-head attention maps of ``texts`` (or of images).

    ``model``: an ``explain.LoadedModel`` text model: a Hugging Face model with eager attention,
    or an ``nn.Module`` built on ``nn.MultiheadAttention``; or an image-classification model
    built on ``nn.MultiheadAttention``, whose ``texts`` are then images, a ``(N, C, H, W)``
    tensor or array (see the module docstring; text-only options must stay unset; the result is
    an ``ImageAttentionResult``). ``text_pairs``: second segments.
    ``targets``: what the decoder of an encoder-decoder reads after its start token (default:
    the model's greedy output for a ``"seq2seq-lm"``, else the texts; see the module
    docstring); a ``ValueError`` when its config has no ``decoder_start_token_id``. ``layers``,
    ``heads``: indices to keep (default all; negative indices count from the end). ``dtype``:
    storage precision (``DTYPES``). ``max_length``: tokens per text (default the model's limit;
    longer texts are truncated, flagged in ``result.truncated`` and in figure titles, and warned
    about). ``importance=True`` also runs ``head_importance`` for ``target`` (default: the
    predicted class; a ``"seq2seq-lm"`` is scored on the targets its decoder read, every stack).
    ``memory_budget``: the most the kept maps may take (bytes or e.g. ``'8GB'``; default
    ``DEFAULT_MAPS_BUDGET``, 4 GiB): a larger capture is refused after the first batch, with
    its size and how to shrink it, instead of running out of memory. Returns an
    ``AttentionResult``.
    """
    model = check_model(model, "attention()", images=True)
    storage = _check_dtype(dtype)
    batch_size = positive_int(batch_size, "batch_size")
    budget = memory_size(memory_budget, "memory_budget", default=DEFAULT_MAPS_BUDGET)
    if model.task == "image-classification":
        given = {"text_pairs": text_pairs, "targets": targets, "max_length": max_length,
                 "importance": importance or None, "target": target}
        unused = [name for name, value in given.items() if value is not None]
        if unused:
            raise ValueError(f"{', '.join(unused)} apply to text models; {model.name} is an "
                             f"image model: call attention(model, images, layers=..., heads=...)")
        return _image_attention(model, texts, layers=layers, heads=heads, storage=storage,
                                batch_size=batch_size)
    module = model.model
    is_hf = model.is_huggingface
    encoder_decoder = model.family.encoder_decoder
    if encoder_decoder and text_pairs is not None:
        raise ValueError("text_pairs is for encoder models; an encoder-decoder model reads "
                         "targets= in its decoder")
    if targets is not None and not encoder_decoder:
        raise ValueError(f"targets= is the decoder input of an encoder-decoder model; "
                         f"{model.name} has no decoder")
    mha_names: list[str] = []
    if not is_hf:
        mha_names = mha_modules(model)
        if not mha_names:
            raise TypeError(f"{model.name} ({type(module).__name__}) is not a Hugging Face model "
                            f"and has no nn.MultiheadAttention module (its family "
                            f"{model.family.name!r} names no attention module), so it exposes no "
                            f"attention weights; attention() supports Hugging Face models (eager "
                            f"attention) and modules built on nn.MultiheadAttention")
    else:
        _require_eager(model)

    batch = model.encode_texts(texts, text_pairs=text_pairs,
                               max_length=max_length)
    target_batch, decoder_input = None, None
    if encoder_decoder and is_hf and (targets is not None or model.task == "seq2seq-lm"):
        if targets is None:
            with hooks.preserved_state(model):
                module.eval()
                targets = greedy_targets(model, batch)
            decoder_input = "decoder_start_token_id + the greedy output's tokens"
        else:
            decoder_input = "decoder_start_token_id + the target's tokens"
        target_batch = decoder_batch(model, targets, len(batch), max_length=max_length)
    elif encoder_decoder:
        # no LM head and no targets: no output to read, so the decoder reads the texts
        target_batch = encode_texts(model.tokenizer, batch.texts, max_length=max_length,
                                    max_positions=model.family.max_positions(model.model))
        decoder_input = "the texts as tokenised"

    kinds = ("self", "decoder", "cross") if encoder_decoder else ("self",)
    collected: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    layer_sel: tuple[int, ...] | None = None
    head_sel: tuple[int, ...] | None = None
    n_layers = n_heads = 0
    with hooks.preserved_state(model), torch.inference_mode():
        module.eval()
        for start in range(0, len(batch), batch_size):
            stop = min(start + batch_size, len(batch))
            inputs = batch_rows(batch, start, stop, device=model.device)
            if is_hf:
                if encoder_decoder:
                    decoder = batch_rows(target_batch, start, stop, device=model.device)
                    inputs = {"input_ids": inputs["input_ids"],
                              "attention_mask": inputs["attention_mask"],
                              "decoder_input_ids": decoder["input_ids"],
                              "decoder_attention_mask": decoder["attention_mask"]}
                output = module(**inputs, output_attentions=True, return_dict=True)
                if encoder_decoder:
                    found = {"self": _checked(output.encoder_attentions, "encoder", model),
                             "decoder": _checked(output.decoder_attentions, "decoder", model),
                             "cross": _checked(output.cross_attentions, "cross", model)}
                else:
                    found = {"self": _checked(output.attentions, "self", model)}
                del output
            else:
                found = {"self": _capture_mha(model, mha_names, inputs)}
            if layer_sel is None:
                n_layers, n_heads = len(found["self"]), int(found["self"][0].shape[1])
                layer_sel = check_selection(layers, n_layers, "layers")
                head_sel = check_selection(heads, n_heads, "heads")
                for kind, maps in found.items():
                    if len(maps) != n_layers or int(maps[0].shape[1]) != n_heads:
                        raise ValueError(f"the {kind} attention has {len(maps)} layers x "
                                         f"{maps[0].shape[1]} heads, unlike the encoder's "
                                         f"{n_layers} x {n_heads}; explain needs equal stacks")
                _check_kept_size(batch, target_batch, tuple(found), len(layer_sel),
                                 len(head_sel), 2 if storage == torch.float16 else 4, budget)
            # Fill each text's array layer by layer and drop the model's tensor for that layer
            # at once, so the transient peak is one batch of float32 maps plus what is kept.
            head_index = torch.tensor(head_sel, device=found["self"][0].device)
            numpy_dtype = np.float16 if storage == torch.float16 else np.float32
            for kind in list(found):
                maps = list(found.pop(kind))
                arrays = []
                for row in range(stop - start):
                    i = start + row
                    q_len = (target_batch.lengths[i] if kind in ("decoder", "cross")
                             else batch.lengths[i])
                    k_len = target_batch.lengths[i] if kind == "decoder" else batch.lengths[i]
                    arrays.append(np.empty((len(layer_sel), len(head_sel), q_len, k_len),
                                           dtype=numpy_dtype))
                for position, layer in enumerate(layer_sel):
                    layer_maps = maps[layer].index_select(1, head_index).to("cpu", storage)
                    maps[layer] = None
                    for row, array in enumerate(arrays):
                        q_len, k_len = array.shape[-2:]
                        array[position] = layer_maps[row, :, :q_len, :k_len].numpy()
                    del layer_maps
                collected[kind].extend(arrays)
                del maps

    source = Side.from_batch(batch)
    target_side = Side.from_batch(target_batch) if target_batch is not None else None
    importance_frame = None
    if importance:
        seq2seq = model.task == "seq2seq-lm"
        importance_frame = head_importance(model, batch.texts, text_pairs=text_pairs,
                                           targets=target_batch.texts if seq2seq else None,
                                           target=target, layers=layer_sel, heads=head_sel,
                                           max_length=max_length, batch_size=batch_size)
    meta = make_meta(model, method="attention", parameters={
        "layers": list(layer_sel), "heads": list(head_sel), "dtype": str(storage).split(".")[-1],
        "max_length": batch.max_length, "batch_size": batch_size,
        "capture": "output_attentions" if is_hf else "hooks:nn.MultiheadAttention",
        "encoder_decoder": encoder_decoder,
        **({"decoder_input": decoder_input} if decoder_input else {}),
        "importance": bool(importance),
        "target": target, "rollout_residual": 0.5})
    return AttentionResult(maps={k: tuple(v) for k, v in collected.items()}, layers=layer_sel,
                           heads=head_sel, source=source, target=target_side,
                           causal=model.family.causal or model.task == "causal-lm",
                           n_layers=n_layers, n_heads=n_heads,
                           meta=meta, importance=importance_frame)


#: Default ``memory_budget`` of ``attention()``: the most its kept maps may take.
DEFAULT_MAPS_BUDGET = 4 << 30


def _check_kept_size(batch, target_batch, kinds, n_layers: int, n_heads: int, itemsize: int,
                     budget: int) -> None:
    """Refuse a capture whose kept maps (layers x heads x query x key per text and kind) would
    exceed ``budget`` bytes, before most of it is computed."""
    total = 0
    for kind in kinds:
        queries = target_batch.lengths if kind in ("decoder", "cross") else batch.lengths
        keys = target_batch.lengths if kind == "decoder" else batch.lengths
        total += sum(int(q) * int(k) for q, k in zip(queries, keys, strict=True))
    total *= n_layers * n_heads * itemsize
    if total <= budget:
        return
    raise ValueError(
        f"the attention maps of {len(batch)} texts would take {_size(total)} "
        f"({_size(total / len(batch))} per text on average: {n_layers} layers x {n_heads} "
        f"heads x tokens^2 x {itemsize} bytes), above memory_budget={_size(budget)}; keep "
        f"fewer layers or heads (layers=, heads=), store float16 (dtype='float16'), pass fewer "
        f"or shorter texts (max_length=), or raise memory_budget (e.g. memory_budget='16GB')")


def _size(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 1024:,.1f} KiB"


def _image_attention(model, images, *, layers, heads, storage: torch.dtype,
                     batch_size: int) -> ImageAttentionResult:
    """``attention()`` of an image model: every map of ``[CLS]`` + patches, one per image."""
    names = mha_modules(model)
    if not names:
        raise TypeError(f"{model.name} ({type(model.model).__name__}) is an image model without "
                        f"nn.MultiheadAttention modules, so it has no attention maps; attention() "
                        f"reads vision transformers built on nn.MultiheadAttention")
    pixels = check_images(model, images)
    collected: list[np.ndarray] = []
    with hooks.preserved_state(model), torch.inference_mode():
        model.model.eval()
        for start in range(0, len(pixels), batch_size):
            maps = _capture_mha(model, names, pixels[start:start + batch_size])
            collected.append(torch.stack(maps, dim=1).to(storage).cpu().numpy())
    stacked = np.concatenate(collected)  # (N, layers, heads, T, T)
    n_layers, n_heads, n_tokens = stacked.shape[1], stacked.shape[2], stacked.shape[-1]
    grid = _patch_grid(model, pixels.shape[-2:], n_tokens)
    layer_sel = check_selection(layers, n_layers, "layers")
    head_sel = check_selection(heads, n_heads, "heads")
    kept = stacked[:, list(layer_sel)][:, :, list(head_sel)]
    meta = make_meta(model, method="attention", parameters={
        "layers": list(layer_sel), "heads": list(head_sel), "dtype": str(storage).split(".")[-1],
        "batch_size": batch_size, "capture": "hooks:nn.MultiheadAttention", "input": "images",
        "patch_grid": list(grid), "rollout_residual": 0.5})
    return ImageAttentionResult(
        maps={"self": tuple(np.ascontiguousarray(a) for a in kept)}, layers=layer_sel,
        heads=head_sel, source=_patch_side(len(kept), *grid), n_layers=n_layers,
        n_heads=n_heads, meta=meta, images=pixels.cpu().numpy(), patch_grid=grid)


def _patch_side(n_images: int, rows: int, cols: int) -> Side:
    """``[CLS]`` (special) then the patches ``r<row>c<col>`` in row-major order, each its own
    unit, for ``n_images`` images named ``"image <i>"``."""
    tokens = ("[CLS]", *(f"r{r}c{c}" for r in range(rows) for c in range(cols)))
    special = (True, *([False] * (rows * cols)))
    n = n_images
    return Side(texts=tuple(f"image {i}" for i in range(n)), tokens=(tokens,) * n,
                special=(special,) * n, unit_index=(tuple(range(len(tokens))),) * n,
                unit_labels=(tokens,) * n, unit_special=(special,) * n, truncated=(False,) * n)


def _patch_grid(model, size, n_tokens: int) -> tuple[int, int]:
    """``(rows, cols)`` of square patches that ``n_tokens - 1`` patches of an ``H x W`` image
    form; ``ValueError`` when they form none ([CLS] first, then patches, is what is read)."""
    height, width = (int(v) for v in size)
    n_patches = n_tokens - 1
    side = math.isqrt(height * width // n_patches) if n_patches > 0 else 0
    if side == 0 or height % side or width % side or (height // side) * (width // side) != n_patches:
        raise ValueError(f"{model.name} attends over {n_tokens} tokens, which are not a [CLS] "
                         f"token followed by square patches of its {height}x{width} images; "
                         f"attention() over images reads [CLS] first, then the patches in "
                         f"row-major order")
    return height // side, width // side


def _capture_mha(model, names: list[str], inputs) -> tuple[torch.Tensor, ...]:
    """Per-head weights of every module of ``names`` in one forward of ``inputs`` (keyword
    inputs of a text model, or an image tensor passed positionally)."""
    module = model.model
    with hooks.edit_inputs(model, dict.fromkeys(names, force_weights)), \
            hooks.record(model, names) as recording:
        if isinstance(inputs, torch.Tensor):
            module(inputs)
        else:
            module(**forward_inputs(module, inputs))
    maps = []
    for name in names:
        output = recording.outputs.get(name)
        if output is None:
            raise ValueError(f"the attention module {name!r} of {model.name} did not run in the "
                             f"forward pass, so it has no attention weights")
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if weights is None or weights.dim() != 4:
            raise ValueError(f"the attention module {name!r} of {model.name} returned no per-head "
                             f"attention weights (got {None if weights is None else tuple(weights.shape)})")
        maps.append(weights)
    return tuple(maps)

