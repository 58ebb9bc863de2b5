"""Input checks and batch plumbing shared by the attention capture and head importance.

What a model's layout is (its attention modules, output projections, layer and head counts,
position limit) comes from its family (``loaded.family``, ``explain.families``), never from
module names guessed here."""

from __future__ import annotations

import inspect
import os

import numpy as np
import torch
from torch import nn

from ..text import TextBatch

__all__ = ["batch_rows", "check_images", "check_model", "check_selection", "force_weights",
           "forward_inputs", "mha_modules"]


def check_model(model, what: str, *, images: bool = False):
    """``model`` as a text ``LoadedModel`` with a tokenizer (``what``: the caller's name), or,
    with ``images=True``, also an image-classification one; a string goes through
    ``explain.loading.as_loaded`` (a checkpoint directory loads, a reference-model name is
    refused with how to load it)."""
    from ..loading import LoadedModel, as_loaded

    if isinstance(model, (str, os.PathLike)):
        model = as_loaded(model, analysis=what)
    if not isinstance(model, LoadedModel):
        raise TypeError(f"{what} takes an explain.LoadedModel (explain.load_model(...)), got "
                        f"{type(model).__name__}")
    if images and model.task == "image-classification":
        return model
    if not model.is_text or model.tokenizer is None:
        raise TypeError(f"{model.name} is a {model.task!r} model; attention maps need a text "
                        f"model with a tokenizer")
    return model


def check_images(model, images) -> torch.Tensor:
    """``images`` as a float32 ``(N, C, H, W)`` tensor of the model's ``input_shape`` on the
    model's device; ``TypeError``/``ValueError`` naming what was given and the shape wanted."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"an image model reads images as a (N, C, H, W) torch.Tensor or numpy "
                        f"array, got {type(images).__name__}")
    shape = tuple(model.input_shape or ())
    if images.dim() != 4 or images.shape[0] == 0 or (shape and tuple(images.shape[1:]) != shape):
        wanted = ", ".join(map(str, shape)) if shape else "C, H, W"
        raise ValueError(f"images must have shape (N, {wanted}) for {model.name}, got "
                         f"{tuple(images.shape)}; add a batch dimension (images[None]) or reorder "
                         f"the channels first")
    images = images.detach().to(torch.float32)
    if not torch.isfinite(images).all():
        bad = (~torch.isfinite(images.flatten(1))).any(1).nonzero().flatten().tolist()
        raise ValueError(f"images {bad[:5]} hold NaN or infinite pixels; attention needs finite "
                         f"pixels")
    return images.to(model.device)


def check_selection(values, n: int, what: str) -> tuple[int, ...]:
    if values is None:
        return tuple(range(n))
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    values = list(values)
    if not values:
        raise ValueError(f"{what}=[] selects nothing; pass None for all, or indices in 0..{n - 1}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not -n <= v < n:
            raise IndexError(f"{what[:-1]} {v!r} does not exist; the model has {n} {what} "
                             f"(valid: 0..{n - 1})")
    resolved = sorted({int(v) % n for v in values})
    return tuple(resolved)


def mha_modules(model) -> list[str]:
    """The ``"self"`` attention modules the family of a model (not a Hugging Face one) names,
    each checked to be an ``nn.MultiheadAttention``: explain asks those for their per-head
    weights and masks heads inside them. ``[]`` when the family names none."""
    module = model.model
    names = list(model.family.attention_names(module, "self"))
    others = [name for name in names
              if not isinstance(module.get_submodule(name), nn.MultiheadAttention)]
    if others:
        raise TypeError(f"the attention module(s) {', '.join(map(repr, others))} that the family "
                        f"{model.family.name!r} names for {model.name} are not "
                        f"nn.MultiheadAttention; a model that is not a Hugging Face one has its "
                        f"weights captured through nn.MultiheadAttention(need_weights=True)")
    return names


def forward_inputs(module: nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return inputs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return inputs
    return {k: v for k, v in inputs.items() if k in parameters}


def batch_rows(batch: TextBatch, start: int, stop: int, *, device: torch.device
               ) -> dict[str, torch.Tensor]:
    """The model inputs of rows ``start:stop``, cut to their longest text, on ``device``."""
    width = max(batch.lengths[start:stop])
    return {k: v[start:stop, :width].to(device) for k, v in batch.model_inputs().items()}



def force_weights(_module, args, kwargs):
    kwargs = dict(kwargs)
    kwargs["need_weights"] = True
    kwargs["average_attn_weights"] = False
    return args, kwargs


