"""Input checks and batch plumbing shared by the attention capture and head importance."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ..text import TextBatch, model_max_length

__all__ = ["batch_rows", "check_model", "check_selection", "force_weights", "forward_inputs",
           "max_length_of", "mha_modules"]


def check_model(model) -> None:
    from ..loading import LoadedModel

    if not isinstance(model, LoadedModel):
        raise TypeError(f"attention() takes an explain.LoadedModel (explain.load_model(...)), got "
                        f"{type(model).__name__}")
    if not model.is_text or model.tokenizer is None:
        raise TypeError(f"{model.name} is a {model.task!r} model; attention maps need a text "
                        f"model with a tokenizer")



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


def mha_modules(module: nn.Module) -> list[str]:
    return [name for name, sub in module.named_modules() if isinstance(sub, nn.MultiheadAttention)]


def max_length_of(model, max_length: int | None) -> int | None:
    config = model.config
    if isinstance(config, Mapping):
        limit = min(model_max_length(model.tokenizer),
                    int(config.get("max_positions", 10**9)))
        if max_length is None:
            return limit
        if max_length > limit:
            raise ValueError(f"max_length={max_length} exceeds the model's limit of {limit} tokens")
    return max_length


def forward_inputs(module: nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return inputs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return inputs
    return {k: v for k, v in inputs.items() if k in parameters}


def batch_rows(batch: TextBatch, start: int, stop: int) -> dict[str, torch.Tensor]:
    width = max(batch.lengths[start:stop])
    return {k: v[start:stop, :width] for k, v in batch.model_inputs().items()}



def force_weights(_module, args, kwargs):
    kwargs = dict(kwargs)
    kwargs["need_weights"] = True
    kwargs["average_attn_weights"] = False
    return args, kwargs


