"""Every PyTorch hook that `explain` registers is registered here.

Hooks are global state on a module: a hook left behind silently changes every later forward
pass. So hooks only exist inside the context managers of this module, which

* resolve every name against ``model.named_modules()`` *before* registering anything, and raise
  ``KeyError`` with close-match suggestions for a name that does not exist;
* register inside ``try`` and remove in ``finally``, so a half-registered set, an exception in
  the body, or a ``KeyboardInterrupt`` never leaves a hook behind;
* nest safely (each context removes exactly the handles it created);
* put back the model's train/eval mode and every parameter's ``requires_grad`` flag.

``count_hooks(model)`` counts the hooks on every submodule, so tests can prove nothing is left.

Example::

    with record(model, ["encoder.layer.0.output"], gradients=True) as rec:
        model(**batch).logits[:, 1].sum().backward()
    rec.outputs["encoder.layer.0.output"]    # tensor, detached
    rec.gradients["encoder.layer.0.output"]  # d(score)/d(output)
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = [
    "Recording",
    "count_hooks",
    "edit_inputs",
    "edit_outputs",
    "preserved_state",
    "record",
    "resolve_modules",
]

def _unwrap(model: Any) -> nn.Module:
    """Accept a ``LoadedModel`` (anything with ``.model``) or a plain ``nn.Module``. A module is
    taken as it is: Hugging Face models such as ``BartFor*`` or ``LlamaFor*`` have a ``.model``
    submodule that must not be mistaken for a ``LoadedModel``'s model."""
    if isinstance(model, nn.Module):
        return model
    module = getattr(model, "model", model)
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"expected a torch.nn.Module or an explain.LoadedModel, got {type(model).__name__}"
        )
    return module


def _is_library_hook(fn: Any) -> bool:
    # transformers 5 installs its own output-capturing hooks on first use of
    # output_attentions / output_hidden_states and keeps them (inert outside its own capture
    # context). They belong to the model's library, not to `explain`.
    return getattr(fn, "__module__", "").startswith("transformers.")


def count_hooks(model: Any, *, include_library: bool = False) -> int:
    """Number of forward, backward and pre-hooks on ``model`` and all its submodules.

    Hooks that transformers itself installs and keeps (its output-capturing hooks) are not
    counted unless ``include_library=True``. Tensor hooks (``Tensor.register_hook``) are not
    counted: they die with the forward pass. Global module hooks
    (``torch.nn.modules.module.register_module_*``) are counted, since they apply to every model.
    """
    module = _unwrap(model)
    total = 0
    for sub in module.modules():
        for attribute in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                          "_backward_pre_hooks"):
            for fn in (getattr(sub, attribute, None) or {}).values():
                total += include_library or not _is_library_hook(fn)
    from torch.nn.modules import module as module_mod

    for attribute in ("_global_forward_hooks", "_global_forward_pre_hooks",
                      "_global_backward_hooks", "_global_backward_pre_hooks"):
        total += len(getattr(module_mod, attribute, {}) or {})
    return total


def resolve_modules(model: Any, names: Iterable[str]) -> dict[str, nn.Module]:
    """Map each dotted ``named_modules()`` path to its submodule.

    Raises ``KeyError`` naming the first unknown path, with up to three close matches, before the
    caller registers anything. ``""`` names the model itself.
    """
    module = _unwrap(model)
    table = dict(module.named_modules())
    names = list(names)
    if not names:
        raise ValueError("no module names given; pass at least one dotted path from "
                         "model.named_modules()")
    resolved = {}
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"module names are dotted strings, got {name!r}")
        if name not in table:
            close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
            hint = (f"did you mean {', '.join(repr(c) for c in close)}?" if close else
                    "list the valid names with [n for n, _ in model.named_modules()]")
            raise KeyError(f"no submodule named {name!r} in {type(module).__name__}; {hint}")
        resolved[name] = table[name]
    return resolved


@contextlib.contextmanager
def preserved_state(model: Any) -> Iterator[nn.Module]:
    """Restore train/eval mode of every submodule and ``requires_grad`` of every parameter."""
    module = _unwrap(model)
    modes = [(sub, sub.training) for sub in module.modules()]
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        yield module
    finally:
        for sub, training in modes:
            sub.training = training
        for parameter, requires_grad in flags:
            parameter.requires_grad_(requires_grad)


@contextlib.contextmanager
def _handles() -> Iterator[list]:
    handles: list = []
    try:
        yield handles
    finally:
        for handle in reversed(handles):
            handle.remove()


@dataclass
class Recording:
    """What ``record`` captured, keyed by module path.

    ``outputs[name]`` is the module's output exactly as returned (a tensor, or a tuple/dataclass of
    tensors), detached unless ``record(..., detach=False)``; with several forward passes inside one
    block, ``calls[name]`` holds each call's output in order and ``outputs[name]`` the last.
    ``gradients[name]`` is the gradient of the backward pass with respect to the module's first
    tensor output, shape equal to that output (accumulated over calls).
    """

    outputs: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, list[Any]] = field(default_factory=dict)
    gradients: dict[str, torch.Tensor] = field(default_factory=dict)


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    return None


def _detach(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_detach(v) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_detach(v) for v in value)
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    return value


@contextlib.contextmanager
def record(
    model: Any,
    names: Iterable[str],
    *,
    gradients: bool = False,
    detach: bool = True,
) -> Iterator[Recording]:
    """Record the output (and, with ``gradients=True``, its gradient) of named submodules.

    ``names`` are dotted ``named_modules()`` paths; unknown names raise ``KeyError`` before any
    hook is registered. The model's mode and ``requires_grad`` flags are restored on exit and
    every hook is removed, also when the block raises.
    """
    module = _unwrap(model)
    targets = resolve_modules(module, names)
    recording = Recording()

    def make_hook(name: str) -> Callable:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            kept = _detach(output) if detach else output
            recording.calls.setdefault(name, []).append(kept)
            recording.outputs[name] = kept
            if gradients:
                tensor = _first_tensor(output)
                if tensor is not None and tensor.requires_grad:
                    def grad_hook(grad: torch.Tensor) -> None:
                        previous = recording.gradients.get(name)
                        grad = grad.detach()
                        recording.gradients[name] = grad if previous is None or \
                            previous.shape != grad.shape else previous + grad

                    tensor.register_hook(grad_hook)

        return hook

    with preserved_state(module), _handles() as handles:
        for name, sub in targets.items():
            handles.append(sub.register_forward_hook(make_hook(name)))
        yield recording


@contextlib.contextmanager
def edit_outputs(
    model: Any,
    edits: Mapping[str, Callable[[nn.Module, tuple, Any], Any]],
) -> Iterator[nn.Module]:
    """Replace submodule outputs during the block.

    ``edits`` maps a dotted module path to ``fn(module, inputs, output) -> new_output``; return
    ``None`` to keep the output. Use it to patch a layer's output with a cached activation or to
    zero a neuron. Hooks are removed and the model's state restored on exit, also on error.
    """
    module = _unwrap(model)
    targets = resolve_modules(module, list(edits))
    for name, fn in edits.items():
        if not callable(fn):
            raise TypeError(f"the edit for {name!r} must be callable fn(module, inputs, output), "
                            f"got {type(fn).__name__}")
    with preserved_state(module), _handles() as handles:
        for name, sub in targets.items():
            handles.append(sub.register_forward_hook(edits[name]))
        yield module


@contextlib.contextmanager
def edit_inputs(
    model: Any,
    edits: Mapping[str, Callable[[nn.Module, tuple, dict], tuple[tuple, dict] | None]],
) -> Iterator[nn.Module]:
    """Replace the positional and keyword inputs of submodules during the block.

    ``edits`` maps a dotted module path to ``fn(module, args, kwargs) -> (args, kwargs)`` (or
    ``None`` to keep them). Use it to mask attention heads before an output projection, or to ask a
    ``nn.MultiheadAttention`` for per-head weights. Hooks are removed on exit, also on error.
    """
    module = _unwrap(model)
    targets = resolve_modules(module, list(edits))
    for name, fn in edits.items():
        if not callable(fn):
            raise TypeError(f"the edit for {name!r} must be callable fn(module, args, kwargs), "
                            f"got {type(fn).__name__}")
    with preserved_state(module), _handles() as handles:
        for name, sub in targets.items():
            handles.append(sub.register_forward_pre_hook(edits[name], with_kwargs=True))
        yield module
