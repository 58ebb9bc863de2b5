"""``attribute``: every major attribution method of Captum, batched, with the bookkeeping that
turns Captum's tensors into words, features and pixels.

How each modality is attributed (one representation for every method, so methods compare):

* **text** (classifiers, masked and causal LMs): the attributed tensor is the output of the
  model's word-embedding layer, ``(N, T, D)``; the forward pass swaps it in through
  ``explain.hooks.edit_outputs``. Integrated gradients on it *is* Captum's
  ``LayerIntegratedGradients`` on the word embeddings. The baseline replaces every non-special
  token by the pad token (special tokens are kept). Perturbation methods replace a token's
  embedding by the baseline embedding, which equals replacing the token by the pad token.
  Token score = sum over the embedding dimension (gradient methods) or the token's group value
  (perturbation methods); word score = sum over the word's tokens (``explain.text.fold_scores``).
* **tabular**: the encoded float matrix ``(N, F)``; baseline zeros (the training mean of a
  standardised numeric column; "no category" for a one-hot group). One-hot groups of
  ``model.feature_groups`` are one feature: summed for gradient methods, perturbed together
  (a Captum feature mask) for perturbation methods.
* **image**: pixels ``(N, C, H, W)``; baseline zeros. Gradient methods give a score per pixel
  (summed over channels); perturbation methods perturb square patches (``patch_size``) and
  spread a patch's score evenly over its pixels, so sums are preserved; GradCAM is upsampled to
  the image size.

Batching: deterministic gradient methods (integrated gradients, saliency, input x gradient,
DeepLift, GradCAM, layer) run many inputs at once in padded batches sorted by length (the
original order is restored); Captum's ``internal_batch_size`` comes from ``memory_budget`` and is
halved and retried on out-of-memory. Stochastic methods (GradientSHAP, SmoothGrad, Shapley
sampling, LIME, KernelSHAP) and the perturbation methods run one input at a time, their
perturbations batched instead. Each input's seed is derived from ``seed``, the method and a
stable hash of the input's content (token ids or values, baseline, target), never from its
position, so a sampled explanation of an input is the same whatever else is in the list, in
whatever order, and whatever the batch size.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import hooks
from ..errors import ExplainWarning

__all__ = ["DEFAULT_MEMORY_BUDGET", "METHODS", "METHOD_OPTIONS", "OUTPUTS", "attribute"]

#: Method name -> what it computes (all through Captum 0.9).
METHODS: Mapping[str, str] = MappingProxyType({
    "integrated_gradients": "IntegratedGradients on features/pixels; for text on the word "
                            "embeddings (= LayerIntegratedGradients), with the completeness error",
    "saliency": "Saliency: |d output / d input| (abs=False for the signed gradient)",
    "input_x_gradient": "InputXGradient: input times gradient",
    "deeplift": "DeepLift (rescale rule) relative to the baseline",
    "gradient_shap": "GradientShap: expected gradients over random points between the baseline "
                     "and the input (n_samples, stdevs)",
    "smoothgrad": "NoiseTunnel(Saliency), smoothgrad: gradients averaged over noisy copies "
                  "(n_samples, stdevs)",
    "occlusion": "Occlusion: output drop when a sliding window (a token; an image patch) is "
                 "replaced by the baseline",
    "feature_ablation": "FeatureAblation: output drop when one feature (token, one-hot group, "
                        "patch) is replaced by the baseline",
    "shapley_sampling": "ShapleyValueSampling over features (n_samples permutations)",
    "lime": "Lime: a sparse linear surrogate (Lasso) fitted to perturbed inputs (n_samples); "
            "its fit quality is reported as surrogate_r2 (adjusted R^2 on its samples)",
    "kernel_shap": "KernelShap: Shapley values from a weighted linear fit (n_samples); its fit "
                   "quality is surrogate_r2 (adjusted R^2 on the sampled coalitions, without "
                   "the full and empty coalitions it is constrained to pass through)",
    "gradcam": "LayerGradCam on a convolutional layer (layer=, default: the last Conv2d), "
               "upsampled to the image",
    "layer": "LayerIntegratedGradients over a named layer's output (layer=): which neurons or "
             "channels carry the decision",
})

#: Method name -> the keyword options it takes (``attribute(..., **method_options)``) ->
#: meaning. Any other option is refused before any work is done.
METHOD_OPTIONS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "integrated_gradients": MappingProxyType({
        "integration": "Captum's integration rule (default 'gausslegendre'; 'riemann_left', "
                       "'riemann_right', 'riemann_middle', 'riemann_trapezoid')"}),
    "saliency": MappingProxyType({"abs": "absolute gradients (default True)"}),
    "input_x_gradient": MappingProxyType({}),
    "deeplift": MappingProxyType({}),
    "gradient_shap": MappingProxyType({
        "n_samples": "random points per input (default n_steps)",
        "stdevs": "standard deviation of the noise added to each point (default 0)"}),
    "smoothgrad": MappingProxyType({
        "n_samples": "noisy copies per input (default 20)",
        "stdevs": "noise standard deviation (default 0.1 x std(input - baseline))",
        "abs": "absolute gradients (default True)"}),
    "occlusion": MappingProxyType({}),
    "feature_ablation": MappingProxyType({}),
    "shapley_sampling": MappingProxyType({"n_samples": "feature permutations (default 25)"}),
    "lime": MappingProxyType({
        "n_samples": "perturbed inputs the surrogate is fitted to (default 200)",
        "alpha": "Lasso regularisation of the surrogate (default 0.01)"}),
    "kernel_shap": MappingProxyType({
        "n_samples": "perturbed inputs the weighted linear fit uses (default 200)"}),
    "gradcam": MappingProxyType({
        "relu_attributions": "keep only positive GradCAM values (default False)"}),
    "layer": MappingProxyType({}),
})

_COUNT_OPTIONS = ("n_samples",)
_INTEGRATION = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
                "riemann_trapezoid")

#: What score is attributed: the target's probability, logit or log-probability.
OUTPUTS: Mapping[str, str] = MappingProxyType({
    "probability": "softmax probability of the target class or token (default)",
    "logit": "the raw logit of the target",
    "log_probability": "log-softmax of the target (useful for language models)",
})

#: Default memory budget for one internal batch of forward + backward passes, in bytes.
DEFAULT_MEMORY_BUDGET = 1 << 30

_GRADIENT = ("integrated_gradients", "saliency", "input_x_gradient", "deeplift",
             "gradient_shap", "smoothgrad")
_PERTURBATION = ("occlusion", "feature_ablation", "shapley_sampling", "lime", "kernel_shap")
_STOCHASTIC = ("gradient_shap", "smoothgrad", "shapley_sampling", "lime", "kernel_shap")
#: Methods whose attributions of a unit are group values (Captum gives every element of a
#: perturbed group the group's score) rather than per-element contributions.
_GROUPED = _PERTURBATION

_APPLICABLE = MappingProxyType({
    "text": tuple(m for m in METHODS if m != "gradcam"),
    "tabular": tuple(m for m in METHODS if m not in ("gradcam", "occlusion")),
    "image": tuple(METHODS),
})
_WHY_NOT = {
    ("text", "gradcam"): "GradCAM needs a convolutional layer over an image",
    ("tabular", "gradcam"): "GradCAM needs a convolutional layer over an image",
    ("tabular", "occlusion"): "occlusion slides a window over neighbouring positions, which "
                              "tabular features do not have; use feature_ablation",
}


def _modality(task: str) -> str:
    if task in ("sequence-classification", "masked-lm", "causal-lm"):
        return "text"
    if task == "tabular-classification":
        return "tabular"
    if task == "image-classification":
        return "image"
    raise ValueError(f"attributions need a model with an output to explain; task {task!r} has "
                     f"none (load the model with a classification or language-model head)")


def check_method(method: str, task: str) -> str:
    """Validate ``method`` for a model of ``task``; the errors list the valid choices."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; valid methods: "
                         f"{', '.join(METHODS)}")
    kind = _modality(task)
    if method not in _APPLICABLE[kind]:
        raise ValueError(f"method {method!r} does not apply to a {task!r} model "
                         f"({_WHY_NOT[(kind, method)]}); methods that do: "
                         f"{', '.join(_APPLICABLE[kind])}")
    return method


def check_count(name: str, value: Any, example: int) -> int:
    """``value`` as an int if it is a positive integer (a count), else a ValueError naming
    ``name``, the value and an example of a valid one."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer (a count), got {value!r}; pass "
                         f"e.g. {name}={example}")
    return int(value)


def check_method_options(method: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the keyword options of ``method`` (``METHOD_OPTIONS``) before any work."""
    valid = METHOD_OPTIONS[method]
    checked: dict[str, Any] = {}
    for name, value in options.items():
        if name not in valid:
            takers = [m for m, names in METHOD_OPTIONS.items() if name in names]
            raise ValueError(f"option {name!r} does not apply to method {method!r} (its "
                             f"options: {', '.join(valid) or 'none'}); remove it"
                             + (f", or use a method that takes it: {', '.join(takers)}"
                                if takers else ""))
        if name in _COUNT_OPTIONS:
            value = check_count(name, value, 200 if method in ("lime", "kernel_shap") else 25)
        elif name in ("stdevs", "alpha"):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
            value = float(value)
        elif name in ("abs", "relu_attributions"):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        elif name == "integration" and value not in _INTEGRATION:
            raise ValueError(f"unknown integration {value!r}; valid: {', '.join(_INTEGRATION)}")
        checked[name] = value
    return checked


def _check_modality_options(kind: str, task: str, *, patch_size, max_length, text_pairs,
                            continuation) -> None:
    """Options of one modality given for a model of another are errors, not ignored."""
    only = {"patch_size": ("image", patch_size, "the side of a square image patch in pixels"),
            "max_length": ("text", max_length, "tokens per text"),
            "text_pairs": ("text", text_pairs, "second texts of a pair classifier"),
            "continuation": ("text", continuation, "a causal LM's continuation")}
    for name, (modality, value, meaning) in only.items():
        if value is not None and kind != modality:
            raise ValueError(f"{name}= ({meaning}) applies to {modality} models; this is a "
                             f"{kind} model (task {task!r}): remove {name}=")
    if patch_size is not None:
        check_count("patch_size", patch_size, 4)
    if max_length is not None:
        check_count("max_length", max_length, 128)


# ------------------------------------------------------------------------------ prepared


@dataclass
class Item:
    """One explained input: what the result needs to report it, independent of batching."""

    input_id: int
    kind: str
    x: torch.Tensor                 # the attributed tensor of this input (no batch dimension)
    baseline: torch.Tensor          # same shape
    units: torch.Tensor             # same shape, int64: element -> unit id (-1: not a unit)
    unit_labels: list[str]
    target: int = -1                # class or token id explained
    contrast: int = -1              # class subtracted for a contrast target, else -1
    position: int = -1              # LM: the position whose logits are explained
    target_label: str = ""
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # input_ids, token types
    text: dict[str, Any] = field(default_factory=dict)            # tokens, words, offsets...
    truncated: bool = False

    @property
    def length(self) -> int:
        return int(self.extra["input_ids"].shape[0]) if self.kind == "text" else 0


@dataclass
class Prepared:
    kind: str
    items: list[Item]
    embedding_name: str | None = None
    pad_id: int = 0
    embedding: nn.Module | None = None  # text: embeddings are looked up per batch (memory)


def _embedding_name(model: nn.Module) -> str:
    """Dotted path of the word-embedding module of a text model."""
    target = None
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        try:
            target = getter()
        except (NotImplementedError, AttributeError):
            target = None
    if target is None:
        embeddings = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
        if not embeddings:
            raise TypeError(f"{type(model).__name__} has no nn.Embedding layer to attribute "
                            f"text through")
        # the vocabulary embedding is the largest one (positions and token types are smaller)
        target = max(embeddings, key=lambda nm: nm[1].num_embeddings)[1]
    for name, module in model.named_modules():
        if module is target:
            return name
    raise TypeError(f"the input embedding of {type(model).__name__} is not one of its submodules")


# ------------------------------------------------------------------------------- scorer


class Scorer(nn.Module):
    """``forward(x, input_ids, attention_mask, token_type_ids, target, contrast, position)``
    -> ``(N,)``: the explained output of each row. ``x`` is the attributed tensor; for text it
    replaces the word-embedding output (``explain.hooks.edit_outputs``)."""

    def __init__(self, model: nn.Module, *, kind: str, task: str, output: str,
                 embedding_name: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.kind = kind
        self.task = task
        self.output = output
        self.embedding_name = embedding_name
        import inspect

        try:
            parameters = inspect.signature(model.forward).parameters
        except (TypeError, ValueError):
            parameters = {}
        self.takes_token_types = "token_type_ids" in parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())

    def logits(self, x: torch.Tensor, input_ids=None, attention_mask=None,
               token_type_ids=None) -> torch.Tensor:
        if self.kind != "text":
            out = self.model(x)
        else:
            def swap(_module, _inputs, output):
                if output.shape != x.shape:
                    raise RuntimeError(f"embedding output {tuple(output.shape)} does not match "
                                       f"the attributed tensor {tuple(x.shape)}")
                return x

            kwargs = {"attention_mask": attention_mask}
            if token_type_ids is not None and self.takes_token_types:
                kwargs["token_type_ids"] = token_type_ids
            with hooks.edit_outputs(self.model, {self.embedding_name: swap}):
                out = self.model(input_ids, **kwargs)
        if hasattr(out, "logits"):
            out = out.logits
        elif isinstance(out, (tuple, list)):
            out = out[0]
        return out

    def distribution(self, x, input_ids=None, attention_mask=None, token_type_ids=None,
                     position=None) -> torch.Tensor:
        """``(N, K)`` scores over classes (or vocabulary at ``position``) under ``output``."""
        logits = self.logits(x, input_ids, attention_mask, token_type_ids)
        if logits.dim() == 3:
            logits = logits[torch.arange(logits.shape[0]), position]
        if self.output == "probability":
            return torch.softmax(logits, dim=-1)
        if self.output == "log_probability":
            return torch.log_softmax(logits, dim=-1)
        return logits

    def forward(self, x, input_ids=None, attention_mask=None, token_type_ids=None, target=None,
                contrast=None, position=None):
        scores = self.distribution(x, input_ids, attention_mask, token_type_ids, position)
        rows = torch.arange(scores.shape[0])
        out = scores[rows, target]
        if contrast is not None and bool((contrast >= 0).any()):
            other = scores[rows, contrast.clamp(min=0)]
            out = out - torch.where(contrast >= 0, other, torch.zeros_like(other))
        return out


# -------------------------------------------------------------------------------- inputs


def _as_float_tensor(values: Any, what: str) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        tensor = values.detach().to(torch.float32).cpu()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(values, dtype=np.float32))
        except (TypeError, ValueError) as error:
            raise TypeError(f"{what} must be numeric (a tensor, array or DataFrame of numbers): "
                            f"{error}") from None
    return tensor


def _check_finite(tensor: torch.Tensor, what: str, names: Sequence[str] | None = None) -> None:
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        where = bad.nonzero()[0].tolist()
        column = ""
        if names is not None and tensor.dim() == 2:
            column = f" (feature {names[where[1]]!r})"
        raise ValueError(f"{what} holds NaN or infinite values, first at index "
                         f"{tuple(where)}{column}; drop or impute those values first")


def _tabular_inputs(loaded, inputs) -> torch.Tensor:
    import pandas as pd

    names = list(loaded.feature_names or ())
    if isinstance(inputs, pd.DataFrame):
        if len(inputs) == 0:
            raise ValueError("inputs is an empty DataFrame; pass at least one row")
        if loaded.encoder is not None and not set(names) <= set(inputs.columns):
            x = loaded.encode_frame(inputs)  # names the column of a bad value, and the fix
        else:
            missing = [n for n in names if n not in inputs.columns]
            if missing:
                raise KeyError(f"inputs lack the model's features {missing}")
            x = _as_float_tensor(inputs[names].to_numpy(dtype=float), "inputs")
    else:
        x = _as_float_tensor(inputs, "inputs")
        if x.dim() == 1:
            x = x[None]
    if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] != len(names):
        raise ValueError(f"tabular inputs must have shape (n_rows, {len(names)}) to match the "
                         f"model's features, got {tuple(x.shape)}")
    _check_finite(x, "inputs", names)
    return x


def _image_inputs(loaded, inputs) -> torch.Tensor:
    x = _as_float_tensor(inputs, "images")
    shape = tuple(loaded.input_shape or ())
    if x.dim() == len(shape) and tuple(x.shape) == shape:
        x = x[None]
    if x.dim() != 4 or x.shape[0] == 0 or (shape and tuple(x.shape[1:]) != shape):
        raise ValueError(f"images must have shape (N, {', '.join(map(str, shape))}) = (N, C, H, "
                         f"W) for this model, got {tuple(x.shape)}; add a batch dimension or "
                         f"reorder channels first")
    _check_finite(x, "images")
    return x


def _groups(loaded) -> list[tuple[str, list[int]]]:
    names = list(loaded.feature_names or ())
    covered: set[int] = set()
    groups = []
    for column, indices in (loaded.feature_groups or {}).items():
        groups.append((column, [int(i) for i in indices]))
        covered.update(int(i) for i in indices)
    for i, name in enumerate(names):
        if i not in covered:
            groups.append((name, [i]))
    groups.sort(key=lambda g: min(g[1]))
    return groups


def _broadcast_baseline(baseline, x: torch.Tensor, what: str) -> torch.Tensor:
    if baseline is None:
        return torch.zeros_like(x)
    b = _as_float_tensor(baseline, "baseline")
    try:
        b = torch.broadcast_to(b, x.shape).clone()
    except RuntimeError:
        raise ValueError(f"baseline of shape {tuple(b.shape)} does not broadcast to the {what} "
                         f"of shape {tuple(x.shape)}") from None
    _check_finite(b, "baseline")
    return b


def _resolve_class_target(loaded, target) -> tuple[int, int] | None:
    """``None`` (predicted) or (class, contrast class or -1)."""
    names = list(loaded.label_names or ())
    if target is None:
        return None
    if isinstance(target, tuple):
        if len(target) != 2:
            raise ValueError(f"a contrast target is a pair (class A, class B), got {target!r}")
        a, b = (loaded.label_index(t) for t in target)
        return a, b
    if isinstance(target, str) and target not in names and "-" in target:
        for cut in [m.start() for m in re.finditer("-", target)]:
            first, second = target[:cut], target[cut + 1:]
            if first in names and second in names:
                return names.index(first), names.index(second)
        raise ValueError(f"unknown target {target!r}: not a label and not a contrast 'A-B' of "
                         f"two labels; valid labels: {', '.join(map(repr, names))}")
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        target = int(target)
        if not names:
            raise ValueError("this model has no label names; pass a class index")
    return loaded.label_index(target), -1


def _token_id(loaded, token) -> int:
    tokenizer = loaded.tokenizer
    if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
        if not 0 <= int(token) < len(tokenizer):
            raise ValueError(f"token id {token} is outside the vocabulary (0..{len(tokenizer) - 1})")
        return int(token)
    if not isinstance(token, str) or not token:
        raise TypeError(f"a language-model target is a token string or id, got {token!r}")
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise ValueError(f"target {token!r} is {len(ids)} tokens {pieces}, not one; pass a "
                         f"single token (e.g. {pieces[0]!r}) or use continuation= to explain "
                         f"each token of a longer continuation")
    return int(ids[0])


def prepare(loaded, inputs, *, target=None, text_pairs=None, baseline=None,
            max_length=None, patch_size=None, continuation=None) -> Prepared:
    """Turn user inputs into ``Item``s (one per explained output)."""
    kind = _modality(loaded.task)
    if isinstance(inputs, (str, bytes)) and kind != "text":
        raise TypeError(f"a {loaded.task!r} model takes numeric inputs, not a string")
    if kind == "text":
        return _prepare_text(loaded, inputs, target=target, text_pairs=text_pairs,
                             baseline=baseline, max_length=max_length, continuation=continuation)
    if kind == "tabular":
        x = _tabular_inputs(loaded, inputs)
        base = _broadcast_baseline(baseline, x, "inputs")
        groups = _groups(loaded)
        units = torch.full((x.shape[1],), -1, dtype=torch.long)
        for g, (_, indices) in enumerate(groups):
            units[indices] = g
        labels = [name for name, _ in groups]
        items = [Item(i, kind, x[i], base[i], units, labels) for i in range(x.shape[0])]
    else:
        x = _image_inputs(loaded, inputs)
        base = _broadcast_baseline(baseline, x, "images")
        _, channels, height, width = x.shape
        patch = _patch_size(patch_size, height, width)
        rows = torch.arange(height)[:, None] // patch
        cols = torch.arange(width)[None, :] // patch
        n_cols = math.ceil(width / patch)
        grid = (rows * n_cols + cols).expand(channels, height, width).contiguous()
        labels = []
        for r in range(math.ceil(height / patch)):
            for c in range(n_cols):
                labels.append(f"rows {r * patch}-{min(height, (r + 1) * patch) - 1}, "
                              f"cols {c * patch}-{min(width, (c + 1) * patch) - 1}")
        items = [Item(i, kind, x[i], base[i], grid, labels) for i in range(x.shape[0])]
    _assign_class_targets(loaded, items, target)
    return Prepared(kind, items)


def _patch_size(patch_size, height: int, width: int) -> int:
    if patch_size is None:
        return max(1, min(height, width) // 8)
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int (pixels), got {patch_size!r}")
    if patch_size > min(height, width):
        raise ValueError(f"patch_size={patch_size} is larger than the image ({height}x{width})")
    return patch_size


def _assign_class_targets(loaded, items: list[Item], target) -> None:
    if isinstance(target, list):
        if len(target) != len(items):
            raise ValueError(f"got {len(target)} targets for {len(items)} inputs; pass one "
                             f"target, or one per input")
        specs = [_resolve_class_target(loaded, t) for t in target]
    else:
        specs = [_resolve_class_target(loaded, target)] * len(items)
    for item, spec in zip(items, specs, strict=True):
        if spec is not None:
            item.target, item.contrast = spec


def _prepare_text(loaded, inputs, *, target, text_pairs, baseline, max_length,
                  continuation) -> Prepared:
    tokenizer = loaded.tokenizer
    task = loaded.task
    if text_pairs is not None and task != "sequence-classification":
        raise ValueError("text_pairs applies to sequence classifiers only")
    if continuation is not None and task != "causal-lm":
        raise ValueError("continuation= applies to causal language models only (task "
                         f"{task!r}); for a classifier pass target=")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, Sequence) or isinstance(inputs, (bytes, bytearray)):
        try:
            inputs = list(inputs)
        except TypeError:
            raise TypeError(f"text inputs are a string or a list of strings, got "
                            f"{type(inputs).__name__}") from None
    texts = list(inputs)
    if not texts:
        raise ValueError("no inputs given; pass one string or a non-empty list of strings")
    if continuation is not None:
        if isinstance(continuation, str):
            continuation = [continuation] * len(texts)
        continuation = list(continuation)
        if len(continuation) != len(texts):
            raise ValueError(f"got {len(continuation)} continuations for {len(texts)} texts")
        for i, c in enumerate(continuation):
            if not isinstance(c, str) or not c:
                raise ValueError(f"continuation[{i}] is empty: {c!r}")
        full = [t + c for t, c in zip(texts, continuation, strict=True)]
        batch = loaded.encode_texts(full, max_length=max_length)
    else:
        batch = loaded.encode_texts(texts, text_pairs=text_pairs, max_length=max_length)

    model = loaded.model
    name = _embedding_name(model)
    embedding = hooks.resolve_modules(model, [name])[name]
    dim = _embedding_dim(embedding)
    pad_id = _baseline_token(loaded, baseline)
    mask_id = tokenizer.mask_token_id
    items: list[Item] = []
    targets = target if isinstance(target, list) else None
    if targets is not None and len(targets) != len(texts):
        raise ValueError(f"got {len(targets)} targets for {len(texts)} inputs; pass one target, "
                         f"or one per input")
    with torch.no_grad():
        for i in range(len(batch)):
            length = batch.lengths[i]
            ids = batch.input_ids[i, :length]
            types = batch.token_type_ids[i, :length] if batch.token_type_ids is not None else None
            special = torch.tensor(batch.special[i], dtype=torch.bool)
            base_ids = torch.where(special, ids, torch.full_like(ids, pad_id))
            text_info = {"text": texts[i], "text_pair": text_pairs[i] if text_pairs else None,
                         "tokens": batch.tokens[i], "offsets": batch.offsets[i],
                         "word_index": batch.word_index[i], "words": batch.words[i],
                         "word_spans": batch.word_spans[i], "segment": batch.segment[i],
                         "special": batch.special[i]}
            spec = targets[i] if targets is not None else target
            cuts = [length]
            if continuation is not None:
                start = len(texts[i])
                cuts = [t for t in range(1, length)
                        if batch.offsets[i][t][1] > start and not batch.special[i][t]]
                if not cuts:
                    raise ValueError(f"continuation[{i}] {continuation[i]!r} adds no token "
                                     f"within max_length")
            for cut in cuts:
                keep = cut if continuation is not None else length
                # embeddings are looked up per batch (collate), so a large dataset holds token
                # ids only; units are a broadcast view (no copy)
                units = torch.arange(keep)[:, None].expand(keep, dim)
                extra = {"input_ids": ids[:keep], "baseline_ids": base_ids[:keep]}
                if types is not None:
                    extra["token_type_ids"] = types[:keep]
                info = dict(text_info)
                if continuation is not None:
                    info = _slice_text(info, keep)
                item = Item(i, "text", None, None, units, list(info["tokens"]), extra=extra,
                            text=info, truncated=batch.truncated[i])
                if task == "masked-lm":
                    where = (ids == mask_id).nonzero().flatten().tolist() if mask_id is not None \
                        else []
                    if not where:
                        raise ValueError(f"texts[{i}] has no {tokenizer.mask_token!r} token; a "
                                         f"masked LM explains the token predicted at the mask: "
                                         f"{texts[i]!r}")
                    item.position = where[0]
                    if spec is not None:
                        item.target = _token_id(loaded, spec)
                elif task == "causal-lm":
                    item.position = keep - 1
                    if continuation is not None:
                        item.target = int(ids[keep])
                    elif spec is not None:
                        item.target = _token_id(loaded, spec)
                else:
                    resolved = _resolve_class_target(loaded, spec)
                    if resolved is not None:
                        item.target, item.contrast = resolved
                items.append(item)
    return Prepared("text", items, embedding_name=name, pad_id=pad_id, embedding=embedding)


def _embedding_dim(embedding: nn.Module) -> int:
    weight = getattr(embedding, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return int(weight.shape[1])
    with torch.no_grad():
        return int(embedding(torch.zeros(1, 1, dtype=torch.long)).shape[-1])


def _slice_text(info: dict, keep: int) -> dict:
    out = dict(info)
    for key in ("tokens", "offsets", "word_index", "segment", "special"):
        out[key] = tuple(info[key][:keep])
    used = [w for w in out["word_index"] if w >= 0]
    n_words = max(used) + 1 if used else 0
    out["words"] = tuple(info["words"][:n_words])
    out["word_spans"] = tuple(info["word_spans"][:n_words])
    end = max((e for s, e in out["offsets"]), default=0)
    out["text"] = info["text"][:end] if end else info["text"]
    return out


def _baseline_token(loaded, baseline) -> int:
    tokenizer = loaded.tokenizer
    if baseline is None:
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token to build the baseline from; pass "
                             "baseline= a token string or id (e.g. the mask token)")
        return int(tokenizer.pad_token_id)
    if isinstance(baseline, (str, int, np.integer)) and not isinstance(baseline, bool):
        if isinstance(baseline, str):
            found = tokenizer.convert_tokens_to_ids(baseline)
            if found is None or (found == tokenizer.unk_token_id and baseline != tokenizer.unk_token):
                raise ValueError(f"baseline token {baseline!r} is not in the vocabulary; pass "
                                 f"a token such as {tokenizer.pad_token!r}")
            return int(found)
        return _token_id(loaded, int(baseline))
    raise TypeError(f"a text baseline is a token string or id (every non-special token is "
                    f"replaced by it), got {type(baseline).__name__}")


# ------------------------------------------------------------------------------ batching


def collate(prepared: Prepared, items: Sequence[Item]) -> tuple[torch.Tensor, torch.Tensor,
                                                                  tuple, torch.Tensor]:
    """Stack items into ``(x, baseline, extra_args, units)``. Text is right-padded with the pad
    token (input == baseline on padding, attention-masked) and embedded here."""
    target = torch.tensor([it.target for it in items], dtype=torch.long)
    contrast = torch.tensor([it.contrast for it in items], dtype=torch.long)
    position = torch.tensor([it.position for it in items], dtype=torch.long)
    if prepared.kind != "text":
        x = torch.stack([it.x for it in items])
        b = torch.stack([it.baseline for it in items])
        units = torch.stack([it.units for it in items])
        return x, b, (None, None, None, target, contrast, position), units
    width = max(it.length for it in items)
    ids = torch.full((len(items), width), prepared.pad_id, dtype=torch.long)
    base_ids = torch.full((len(items), width), prepared.pad_id, dtype=torch.long)
    mask = torch.zeros(len(items), width, dtype=torch.long)
    has_types = "token_type_ids" in items[0].extra
    types = torch.zeros(len(items), width, dtype=torch.long) if has_types else None
    for r, it in enumerate(items):
        n = it.length
        ids[r, :n] = it.extra["input_ids"]
        base_ids[r, :n] = it.extra["baseline_ids"]
        mask[r, :n] = 1
        if has_types:
            types[r, :n] = it.extra["token_type_ids"]
    with torch.no_grad():
        # padding: input == baseline == the pad token's embedding (and attention-masked)
        x = prepared.embedding(ids).detach().float()
        b = prepared.embedding(base_ids).detach().float()
    dim = x.shape[2]
    units = torch.full((len(items), width, dim), -1, dtype=torch.long)
    for r, it in enumerate(items):
        n = it.length
        if it.x is not None:  # an explicit (e.g. perturbed) embedding tensor
            x[r, :n] = it.x
        units[r, :n] = it.units
    return x, b, (ids, mask, types, target, contrast, position), units


def _slice_args(args: tuple, rows) -> tuple:
    return tuple(a[rows] if isinstance(a, torch.Tensor) else a for a in args)


def is_oom(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


def bytes_per_row(scorer: Scorer, x: torch.Tensor, args: tuple) -> int:
    """Estimated memory of one row of a forward + backward pass: the bytes of every leaf
    module's output in a probe forward of one row, times 3 (activations kept for the backward
    pass, their gradients, and temporaries)."""
    model = scorer.model
    leaves = [n for n, m in model.named_modules() if n and not list(m.children())]
    if not leaves:
        return max(1, 3 * x[:1].numel() * 4)
    total = 0
    with torch.no_grad(), hooks.record(model, leaves) as rec:
        scorer(x[:1], *_slice_args(args, slice(0, 1)))
    for calls in rec.calls.values():
        for output in calls:
            tensor = hooks._first_tensor(output)
            if tensor is not None:
                total += tensor.numel() * tensor.element_size()
    return max(1, 3 * (total + x[:1].numel() * 4))


def parse_budget(memory_budget) -> int:
    if memory_budget is None:
        return DEFAULT_MEMORY_BUDGET
    if isinstance(memory_budget, str):
        match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)i?B?\s*", memory_budget, re.IGNORECASE)
        if not match:
            raise ValueError(f"memory_budget {memory_budget!r} is not a size; pass bytes (int) "
                             f"or a string like '512MB' or '2GB'")
        scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
        memory_budget = int(float(match.group(1)) * scale[match.group(2).upper()])
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    return memory_budget


# ------------------------------------------------------------------------------- methods


class _RecordingFit:
    """Wraps a Captum interpretable linear model and keeps the fit quality of its last fit:
    R^2 on its ``n`` perturbation samples (weighted by their similarity: LIME's kernel),
    adjusted for its ``p`` feature coefficients, ``1 - (1 - R^2) (n - 1) / (n - p - 1)``.
    Samples weighted ``constraint_weight`` or more are constraints, not samples: KernelSHAP
    gives the full and the empty coalition a weight of 1e6 so that the fit passes through them
    (efficiency), and they would make any fit look perfect; they are left out of the R^2. With
    ``n <= p + 1`` samples a linear fit with an intercept can pass through every sample
    (R^2 = 1 by construction): the fit quality is not estimable there and stays NaN."""

    def __init__(self, inner, constraint_weight: float = math.inf) -> None:
        self.inner = inner
        self.constraint_weight = constraint_weight
        self.r2 = float("nan")
        self.n_samples = 0
        self.p = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, *args, **kwargs):
        return self.inner(*args, **kwargs)

    def fit(self, train_data, **kwargs):
        xs, ys, ws = [], [], []
        for batch in train_data:
            xs.append(batch[0])
            ys.append(batch[1])
            if len(batch) == 3:
                ws.append(batch[2])
        out = self.inner.fit(train_data, **kwargs)
        x = torch.cat(xs).float()
        y = torch.cat(ys).float().reshape(-1)
        w = torch.cat(ws).float().reshape(-1) if ws else torch.ones_like(y)
        self.n_samples, self.p = int(x.shape[0]), int(x.shape[1])
        sample = w < self.constraint_weight
        n = int(sample.sum())
        if n <= self.p + 1:
            self.r2 = float("nan")
            return out
        with torch.no_grad():
            pred = self.inner(x[sample]).reshape(-1).double()
        y, w = y[sample].double(), w[sample].double()
        mean = (w * y).sum() / w.sum()
        total = float((w * (y - mean) ** 2).sum())
        residual = float((w * (y - pred) ** 2).sum())
        r2 = 1.0 - residual / total if total > 0 else float("nan")
        self.r2 = 1.0 - (1.0 - r2) * (n - 1) / (n - self.p - 1)
        return out


def run_method(method: str, scorer: nn.Module, x: torch.Tensor, baseline: torch.Tensor,
               args: tuple, units: torch.Tensor, *, n_steps: int, internal: int,
               options: Mapping[str, Any], layer: nn.Module | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None, _RecordingFit | None]:
    """Run one Captum method on a batch. Returns ``(attributions, convergence_delta or None,
    the surrogate fit (LIME, KernelSHAP) or None)``. Attributions have the shape of ``x`` (or of the layer output).
    For DeepLift, ``scorer`` is ``_deeplift_scorer``'s module."""
    import captum.attr as ca

    opts = dict(options)
    if method in _GRADIENT or method in ("gradcam", "layer"):
        x = x.detach().requires_grad_(True)
    with warnings.catch_warnings():
        # Captum announces (as a UserWarning) the temporary hooks DeepLift sets on activations;
        # they are removed when it returns (tests count them).
        warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
        return _run_captum(ca, method, scorer, x, baseline, args, units, n_steps=n_steps,
                           internal=internal, opts=opts, layer=layer)


def _run_captum(ca, method, scorer, x, baseline, args, units, *, n_steps, internal, opts, layer):
    delta = None
    fit = None
    if method == "integrated_gradients":
        # the completeness error is computed by the caller from f(x), already known, and one
        # forward pass on the baseline (Captum's own delta costs two forward passes)
        explainer = ca.IntegratedGradients(scorer)
        attr = explainer.attribute(x, baselines=baseline, additional_forward_args=args,
                                   n_steps=n_steps, internal_batch_size=internal,
                                   method=opts.pop("integration", "gausslegendre"), **opts)
    elif method == "saliency":
        attr = ca.Saliency(scorer).attribute(x, additional_forward_args=args,
                                             abs=opts.pop("abs", True), **opts)
    elif method == "input_x_gradient":
        attr = ca.InputXGradient(scorer).attribute(x, additional_forward_args=args, **opts)
    elif method == "deeplift":
        explainer = ca.DeepLift(scorer)  # compute passes _deeplift_scorer's module
        attr, delta = explainer.attribute(x, baselines=baseline, additional_forward_args=args,
                                          return_convergence_delta=True, **opts)
    elif method == "gradient_shap":
        stdevs = opts.pop("stdevs", 0.0)
        n_samples = opts.pop("n_samples", n_steps)
        explainer = ca.GradientShap(scorer)
        attr, delta = explainer.attribute(x, baselines=baseline, additional_forward_args=args,
                                          n_samples=n_samples, stdevs=stdevs,
                                          return_convergence_delta=True, **opts)
        delta = delta.reshape(x.shape[0], -1).mean(1)
    elif method == "smoothgrad":
        n_samples = opts.pop("n_samples", 20)
        stdevs = opts.pop("stdevs", None)
        if stdevs is None:
            stdevs = 0.1 * float((x.detach() - baseline).std()) or 0.1
        tunnel = ca.NoiseTunnel(ca.Saliency(scorer))
        attr = tunnel.attribute(x, nt_type="smoothgrad", nt_samples=n_samples,
                                nt_samples_batch_size=max(1, internal // max(1, x.shape[0])),
                                stdevs=float(stdevs), additional_forward_args=args,
                                abs=opts.pop("abs", True), **opts)
    elif method == "occlusion":
        if scorer.kind == "text":
            window = (1, x.shape[2])
        else:
            size = int(opts.pop("patch_size"))
            window = (x.shape[1], size, size)
        opts.pop("patch_size", None)
        attr = ca.Occlusion(scorer).attribute(x, sliding_window_shapes=window, strides=window,
                                              baselines=baseline, additional_forward_args=args,
                                              perturbations_per_eval=internal, **opts)
    elif method == "feature_ablation":
        attr = ca.FeatureAblation(scorer).attribute(x, baselines=baseline, feature_mask=units,
                                                    additional_forward_args=args,
                                                    perturbations_per_eval=internal, **opts)
    elif method == "shapley_sampling":
        attr = ca.ShapleyValueSampling(scorer).attribute(
            x, baselines=baseline, feature_mask=units, additional_forward_args=args,
            n_samples=opts.pop("n_samples", 25), perturbations_per_eval=internal, **opts)
    elif method in ("lime", "kernel_shap"):
        from captum._utils.models.linear_model import SkLearnLasso

        n_samples = opts.pop("n_samples", 200)
        if method == "lime":
            fit = _RecordingFit(SkLearnLasso(alpha=opts.pop("alpha", 0.01)))
            explainer = ca.Lime(scorer, interpretable_model=fit)
        else:
            explainer = ca.KernelShap(scorer)
            fit = _RecordingFit(explainer.interpretable_model,
                                constraint_weight=explainer.inf_weight)
            explainer.interpretable_model = fit
        attr = explainer.attribute(x, baselines=baseline, feature_mask=units,
                                   additional_forward_args=args, n_samples=n_samples,
                                   perturbations_per_eval=internal, **opts)
    elif method == "gradcam":
        explainer = ca.LayerGradCam(scorer, layer)
        cam = explainer.attribute(x, additional_forward_args=args,
                                  relu_attributions=opts.pop("relu_attributions", False), **opts)
        attr = ca.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), "bilinear")
    elif method == "layer":
        explainer = ca.LayerIntegratedGradients(scorer, layer)
        attr = explainer.attribute(x, baselines=baseline, additional_forward_args=args,
                                   n_steps=n_steps, internal_batch_size=internal, **opts)
        if isinstance(attr, (tuple, list)):
            attr = attr[0]
    else:  # pragma: no cover - guarded by check_method
        raise ValueError(method)
    return attr.detach(), (delta.detach().reshape(-1) if delta is not None else None), fit


class _PerCall(nn.Module):
    """An activation module that a model calls ``n`` times per forward, split into ``n``
    identical copies used in call order (Captum's DeepLift needs one call per module)."""

    def __init__(self, module: nn.Module, n: int) -> None:
        super().__init__()
        import copy

        self.copies = nn.ModuleList(copy.deepcopy(module) for _ in range(n))
        self.calls = 0

    def forward(self, *args, **kwargs):
        module = self.copies[self.calls % len(self.copies)]
        self.calls += 1
        return module(*args, **kwargs)


class _ResetCalls(nn.Module):
    def __init__(self, scorer: Scorer, split: list[_PerCall]) -> None:
        super().__init__()
        self.scorer = scorer
        self.split = split

    def forward(self, *args):
        for module in self.split:
            module.calls = 0
        return self.scorer(*args)


def _deeplift_scorer(scorer: Scorer, x: torch.Tensor, args: tuple) -> nn.Module:
    """The scorer itself, or, when the model calls one non-linear module several times per
    forward (``nets.MLP``'s shared ReLU), a scorer over a copy of the model in which that module
    is split into one copy per call. The user's model is never modified."""
    import copy

    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    model = scorer.model
    kinds = tuple(SUPPORTED_NON_LINEAR)
    names = [n for n, m in model.named_modules() if n and isinstance(m, kinds)]
    if not names:
        return scorer
    with torch.no_grad(), hooks.record(model, names) as rec:
        scorer(x[:1].detach(), *_slice_args(args, slice(0, 1)))
    reused = {n: len(rec.calls.get(n, ())) for n in names if len(rec.calls.get(n, ())) > 1}
    if not reused:
        return scorer
    clone = copy.deepcopy(model)
    split = []
    for name, n_calls in reused.items():
        parent_name, _, child = name.rpartition(".")
        parent = clone.get_submodule(parent_name) if parent_name else clone
        wrapped = _PerCall(getattr(parent, child), n_calls)
        setattr(parent, child, wrapped)
        split.append(wrapped)
    copy_scorer = Scorer(clone, kind=scorer.kind, task=scorer.task, output=scorer.output,
                         embedding_name=scorer.embedding_name)
    return _ResetCalls(copy_scorer, split)


def default_layer(model: nn.Module, method: str) -> str:
    """The layer GradCAM or layer attribution uses when ``layer=`` is not given."""
    names = [(n, m) for n, m in model.named_modules() if n]
    convs = [n for n, m in names if isinstance(m, nn.Conv2d)]
    if convs:
        return convs[-1]
    if method == "gradcam":
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer for GradCAM")
    pattern = re.compile(r"(.*\.)?layers?\.(\d+)(\.output)?$")
    blocks = [n for n, m in names if pattern.fullmatch(n)
              and (n.endswith(".output") or not any(k == "output" for k, _ in m.named_children()))]
    if blocks:
        return blocks[-1]
    linears = [n for n, m in names if isinstance(m, nn.Linear)]
    if len(linears) >= 2:
        return linears[-2]
    raise ValueError(f"cannot choose a layer of {type(model).__name__}; pass layer= a dotted "
                     f"name from model.named_modules()")


# ------------------------------------------------------------------------------ the run


@dataclass
class Run:
    """Raw output of ``compute``: per item, the element attributions reduced to units."""

    prepared: Prepared
    method: str
    unit_scores: list[np.ndarray]          # per item: score per unit (token / group / patch)
    pixel_scores: list[np.ndarray | None]  # image: (H, W) per item
    layer_scores: list[np.ndarray | None]  # layer method: per neuron / channel
    deltas: list[float]
    f_x: list[float]
    predicted: list[int]
    predicted_score: list[float]
    target_score: list[float]
    surrogate_r2: list[float]
    elements: list[torch.Tensor] | None
    n_steps: list[int]
    layer_name: str | None = None


def reduce_units(method: str, attr: torch.Tensor, units: torch.Tensor, n_units: int
                 ) -> np.ndarray:
    """Element attributions of one item -> one score per unit (sum for gradient methods, the
    group value for perturbation methods, whose groups carry one value per element)."""
    flat_attr = attr.reshape(-1).double()
    flat_units = units.reshape(-1)
    keep = flat_units >= 0
    if method in _GROUPED:
        scores = torch.zeros(n_units, dtype=torch.float64)
        index = flat_units[keep]
        values = flat_attr[keep]
        # first element of each unit (all elements of a group carry the same value)
        order = torch.arange(index.numel() - 1, -1, -1)
        scores[index[order]] = values[order]
        return scores.numpy()
    scores = torch.zeros(n_units, dtype=torch.float64)
    scores.index_add_(0, flat_units[keep], flat_attr[keep])
    return scores.numpy()


def compute(loaded, prepared: Prepared, method: str, *, n_steps: int, batch_size: int | None,
            memory_budget: int, seed: int, progress, output: str, options: Mapping[str, Any],
            keep_elements: bool = False, layer: str | None = None) -> Run:
    """Attribute every prepared item with ``method``."""
    from tqdm.auto import tqdm

    model = loaded.model
    scorer = scorer_for(loaded, prepared, output)
    layer_module = None
    layer_name = None
    if method in ("gradcam", "layer"):
        layer_name = layer or default_layer(model, method)
        layer_module = hooks.resolve_modules(model, [layer_name])[layer_name]
        if method == "gradcam" and not isinstance(layer_module, nn.Conv2d):
            raise ValueError(f"GradCAM needs a convolutional layer; {layer_name!r} is a "
                             f"{type(layer_module).__name__}")
    elif layer is not None:
        raise ValueError(f"layer= applies to the 'gradcam' and 'layer' methods, not {method!r}")
    items = prepared.items
    n = len(items)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    per_item = method in _STOCHASTIC or method in _PERTURBATION
    order = sorted(range(n), key=lambda i: (items[i].length, i))
    # Memory per forward+backward row, probed once on the longest input; rows of a shorter
    # batch are assumed to cost proportionally less (the x3 safety factor covers attention's
    # quadratic part).
    longest = max(items, key=lambda it: it.length)
    px, _, pargs, _ = collate(prepared, [longest])
    if longest.target < 0:
        pargs = (*pargs[:3], torch.zeros(1, dtype=torch.long), *pargs[4:])
    probe_bytes = bytes_per_row(scorer, px, pargs)
    probe_width = max(1, longest.length)

    def rows_budget_for(width: int) -> int:
        scale = max(1, width) / probe_width if prepared.kind == "text" else 1.0
        return max(1, int(memory_budget / (probe_bytes * scale)))

    if per_item:
        batches = [[i] for i in order]
    elif batch_size is not None:
        batches = [order[s:s + batch_size] for s in range(0, n, batch_size)]
    elif prepared.kind == "text":
        batches = _text_batches(items, order, method, n_steps, rows_budget_for)
    else:
        batches = [order[s:s + 64] for s in range(0, n, 64)]
    show = progress if progress is not None else n >= 100
    bar = tqdm(total=n, disable=not show, desc=f"attribute ({method})", unit="input")
    results: dict[int, tuple] = {}
    with hooks.preserved_state(model):
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        # DeepLift: a model copy with per-call activations, built once (not per batch)
        attributing = _deeplift_scorer(scorer, px, pargs) if method == "deeplift" else scorer
        method_options = _method_options(method, options, prepared, loaded)
        unfit: list[tuple[int, int]] = []  # (n, p) of surrogate fits whose R^2 is not estimable
        try:
            for rows in batches:
                batch_items = [items[i] for i in rows]
                x, b, args, units = collate(prepared, batch_items)
                with torch.no_grad():
                    dist = scorer.distribution(x, *args[:3], position=args[5])
                predicted = dist.argmax(-1)
                for r, it in enumerate(batch_items):
                    if it.target < 0:
                        it.target = int(predicted[r])
                args = (*args[:3], torch.tensor([it.target for it in batch_items]), *args[4:])
                width = x.shape[1] if prepared.kind == "text" else 0
                rows_budget = rows_budget_for(width)
                attr, delta, fit = _with_retry(
                    method, attributing, x, b, args, units, n_steps=n_steps, rows_budget=rows_budget,
                    options=method_options, layer=layer_module,
                    seed=content_seed(seed, method, batch_items[0]) if per_item else None)
                r2 = float("nan") if fit is None else fit.r2
                if fit is not None and math.isnan(fit.r2):
                    unfit.append((fit.n_samples, fit.p))
                rows_index = torch.arange(len(batch_items))
                f_x = dist[rows_index, args[3]] - torch.where(
                    args[4] >= 0, dist[rows_index, args[4].clamp(min=0)], torch.zeros(()))
                if method in ("integrated_gradients", "layer"):
                    with torch.no_grad():
                        f_b = scorer(b, *args)
                    total = attr.reshape(len(batch_items), -1).double().sum(1)
                    delta = total - (f_x.double() - f_b.double())
                for r, it in enumerate(batch_items):
                    results[id(it)] = (attr[r], None if delta is None else float(delta[r]),
                                       r2, int(predicted[r]), float(dist[r, predicted[r]]),
                                       float(f_x[r]), float(dist[r, it.target]), units[r])
                bar.update(len(batch_items))
        finally:
            bar.close()
    if unfit:
        p = max(p for _, p in unfit)
        warnings.warn(f"{method}: the surrogate fit quality (surrogate_r2) is not estimable for "
                      f"{len(unfit)} of {n} explanations: n_samples={max(n for n, _ in unfit)} "
                      f"perturbations for up to {p} features (a linear fit with an intercept "
                      f"passes through p + 1 samples, so R^2 = 1 says nothing; the attributions "
                      f"are underdetermined too; KernelSHAP's first two samples are its "
                      f"constraints); surrogate_r2 is NaN there. Pass n_samples={10 * (p + 1)} "
                      f"or more", ExplainWarning, stacklevel=3)
    return _assemble(prepared, method, results, keep_elements, n_steps, layer_name)


def _text_batches(items, order, method, n_steps, rows_budget_for) -> list[list[int]]:
    """Length-sorted batches of texts. Integrated gradients and layer attribution put as few
    texts in a batch as fill one internal batch with all their steps (padding costs more than
    small batches do); the other batched methods take up to 32 texts of similar length."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        candidate = [*current, i]
        width = max(items[j].length for j in candidate)
        if method in ("integrated_gradients", "layer"):
            fits = len(candidate) * n_steps <= rows_budget_for(width) or not current
        else:
            fits = len(candidate) <= min(32, rows_budget_for(width)) or not current
        if fits:
            current = candidate
        else:
            batches.append(current)
            current = [i]
    if current:
        batches.append(current)
    return batches


def item_offsets(items: Sequence[Item]) -> list[int]:
    """Per item, its index among the items of its input (several for LM continuations)."""
    seen: dict[int, int] = {}
    offsets = []
    for item in items:
        offsets.append(seen.get(item.input_id, 0))
        seen[item.input_id] = offsets[-1] + 1
    return offsets


def _method_options(method: str, options: Mapping[str, Any], prepared: Prepared, loaded
                    ) -> dict[str, Any]:
    opts = dict(options)
    if method == "occlusion" and prepared.kind == "image":
        height = prepared.items[0].x.shape[1]
        width = prepared.items[0].x.shape[2]
        opts["patch_size"] = _patch_from_units(prepared.items[0].units, height, width)
    return opts


def _patch_from_units(units: torch.Tensor, height: int, width: int) -> int:
    first_row = units[0, 0]
    return int((first_row == first_row[0]).sum())


def _with_retry(method, scorer, x, b, args, units, *, n_steps, rows_budget, options, layer,
                seed):
    """Run the method, halving the internal batch on out-of-memory until one row fails."""
    n = x.shape[0]
    if method in ("integrated_gradients", "layer"):
        # balanced chunks of whole steps: ceil(n_steps / chunks) steps of every input each
        per_chunk = max(1, min(n_steps, rows_budget // n))
        chunks = math.ceil(n_steps / per_chunk)
        internal = max(2 * n, n * math.ceil(n_steps / chunks))
    elif method in _PERTURBATION:
        internal = max(1, min(rows_budget, 256))
    else:
        internal = max(1, rows_budget)
    while True:
        try:
            if seed is not None:
                # Captum draws from torch's and (GradientShap) numpy's global generators:
                # both are seeded here and put back afterwards.
                numpy_state = np.random.get_state()
                try:
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(seed)
                        np.random.seed(seed % (2**32))
                        return run_method(method, scorer, x, b, args, units, n_steps=n_steps,
                                          internal=internal, options=options, layer=layer)
                finally:
                    np.random.set_state(numpy_state)
            return run_method(method, scorer, x, b, args, units, n_steps=n_steps,
                              internal=internal, options=options, layer=layer)
        except (RuntimeError, MemoryError) as error:
            if not is_oom(error):
                raise
            floor = 2 * n if method in ("integrated_gradients", "layer") else 1
            if internal <= floor:
                raise MemoryError(f"{method} ran out of memory even with an internal batch of "
                                  f"{internal} rows; lower batch_size or max_length") from None
            internal = max(floor, internal // 2)
            warnings.warn(f"{method} ran out of memory; retrying with an internal batch of "
                          f"{internal} rows", ExplainWarning, stacklevel=4)


def content_seed(seed: int, purpose: str, item: Item) -> int:
    """A 63-bit seed from ``seed``, ``purpose`` (the method, or the faithfulness random
    ranking) and a stable hash (BLAKE2b) of what ``item`` is: its token ids and token types
    (text) or values (tabular, image), its baseline, unit layout, target, contrast and
    position. Not its index in the list: the same input gets the same seed wherever it is."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{int(seed)}|{purpose}|{item.kind}|{item.target}|{item.contrast}|"
                  f"{item.position}".encode())
    tensors = [item.extra[k] for k in sorted(item.extra)]
    if item.kind != "text":
        tensors += [item.x, item.baseline, item.units]
    elif item.x is not None:  # an explicit (perturbed) embedding tensor
        tensors.append(item.x)
    for tensor in tensors:
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return int.from_bytes(digest.digest(), "little") % (2**63 - 1)


def _assemble(prepared: Prepared, method: str, results: dict, keep_elements: bool, n_steps: int,
              layer_name: str | None) -> Run:
    run = Run(prepared, method, [], [], [], [], [], [], [], [], [], [] if keep_elements else None,
              [], layer_name)
    for it in prepared.items:
        attr, delta, r2, pred, pred_p, f_x, target_p, units = results[id(it)]
        if prepared.kind == "text":
            attr = attr[:it.length]
            units = units[:it.length]
        if method == "layer":
            values = attr
            if prepared.kind == "text":
                values = values[:it.length].sum(0)
            elif values.dim() == 3:
                values = values.sum((1, 2))
            run.layer_scores.append(values.double().numpy().reshape(-1))
            run.unit_scores.append(np.zeros(0))
            run.pixel_scores.append(None)
        elif method == "gradcam":
            pixel = attr[0].double().numpy()
            run.pixel_scores.append(pixel)
            patch_sum = torch.zeros(len(it.unit_labels), dtype=torch.float64)
            patch_sum.index_add_(0, it.units[0].reshape(-1), torch.from_numpy(pixel).reshape(-1))
            run.unit_scores.append(patch_sum.numpy())
            run.layer_scores.append(None)
        else:
            n_units = len(it.unit_labels)
            scores = reduce_units(method, attr, units, n_units)
            if prepared.kind == "image":
                if method in _GROUPED:
                    grid = it.units[0]
                    counts = torch.bincount(grid.reshape(-1), minlength=n_units).double()
                    pixel = (torch.from_numpy(scores)[grid] / counts[grid]).numpy()
                else:
                    pixel = attr.double().sum(0).numpy()
                run.pixel_scores.append(pixel)
            else:
                run.pixel_scores.append(None)
            run.unit_scores.append(scores)
            run.layer_scores.append(None)
        run.deltas.append(float("nan") if delta is None else delta)
        run.surrogate_r2.append(r2)
        run.predicted.append(pred)
        run.predicted_score.append(pred_p)
        run.f_x.append(f_x)
        run.target_score.append(target_p)
        run.n_steps.append(n_steps if method in ("integrated_gradients", "layer") else 0)
        if keep_elements:
            run.elements.append(attr)
    return run


def attribute(
    model,
    inputs,
    *,
    method: str = "integrated_gradients",
    target=None,
    text_pairs: Sequence[str] | None = None,
    continuation: str | Sequence[str] | None = None,
    baseline=None,
    n_steps: int | str = 50,
    tolerance: float = 0.01,
    batch_size: int | None = None,
    memory_budget: int | str | None = DEFAULT_MEMORY_BUDGET,
    output: str = "probability",
    layer: str | None = None,
    patch_size: int | None = None,
    faithfulness: str | bool = "aopc",
    seed: int = 0,
    progress: bool | None = None,
    max_length: int | None = None,
    **method_options,
):
    """Explain which inputs made ``model`` produce its output, with Captum ``method``.

    ``model``: an ``explain.LoadedModel``. ``inputs``: texts (str or list of str) for text
    models; a DataFrame or ``(N, F)`` array/tensor for tabular models; an ``(N, C, H, W)``
    tensor for image models. ``method``: a key of ``METHODS``. ``target``: the explained output:
    ``None`` (the predicted class; for a masked LM the predicted token at the mask, for a causal
    LM the predicted next token), a label name or index, a contrast ``"A-B"`` or ``("A", "B")``
    (score of A minus score of B), a token string for LMs, or a list with one target per input.
    ``continuation`` (causal LMs): explain each token of this continuation given everything
    before it (one explanation per continuation token). ``text_pairs``: second texts of a pair
    classifier. ``baseline``: the reference input (text: a token that replaces every non-special
    token, default the pad token; tabular/image: a broadcastable tensor, default zeros).
    ``n_steps``: integration steps (integrated gradients, layer; sample count default of
    GradientSHAP), or ``"auto"``: start at 8 steps and double only for the inputs whose
    completeness error exceeds ``tolerance`` x |f(x) - f(baseline)| (up to 512).
    ``batch_size``: inputs per padded batch of the batched methods (default 8 texts, 64 rows or
    images); ``memory_budget``: bytes (or ``"2GB"``) for one internal batch of forward+backward
    rows; ``output``: a key of ``OUTPUTS``; ``layer``: the layer of ``gradcam``/``layer``;
    ``patch_size``: image patch side in pixels for perturbation methods and faithfulness
    (default: a 8x8 grid; image models only); ``faithfulness``: the definition of
    comprehensiveness and sufficiency measured against a random ranking, a key of
    ``explain.attribution.FAITHFULNESS_DEFINITIONS`` (``"aopc"``, ours, the default;
    ``"eraser"``, DeYoung et al. 2020 as ferret computes it, text only), ``True`` for the
    default, ``False`` to skip (forward passes only; deletion/insertion curves come with
    either); ``seed``: seeds every sampling method (and the random ranking) per input, with the
    input's content (see the module docstring); ``progress``: a tqdm bar (default: on for 100
    inputs or more); ``max_length``: tokens per text (longer texts are truncated, warned about
    and marked; text models only). ``method_options``: the options of ``method`` listed in
    ``METHOD_OPTIONS`` (e.g. ``n_samples``, ``stdevs``, ``abs``, ``alpha`` for LIME), passed to
    Captum; any other is a ValueError. Every count (``n_steps``, ``n_samples``,
    ``batch_size``, ``max_length``, ``patch_size``) must be a positive integer, checked before
    any work.

    Returns an ``AttributionResult``.
    """
    import time

    from .result import AttributionResult
    from .trust import check_faithfulness, measure_faithfulness

    loaded = model
    if not hasattr(loaded, "task") or not hasattr(loaded, "model"):
        raise TypeError(f"attribute() takes an explain.LoadedModel (explain.load_model(...)), got "
                        f"{type(model).__name__}")
    check_method(method, loaded.task)
    method_options = check_method_options(method, method_options)
    kind = _modality(loaded.task)
    _check_modality_options(kind, loaded.task, patch_size=patch_size, max_length=max_length,
                            text_pairs=text_pairs, continuation=continuation)
    definition = check_faithfulness(faithfulness, kind)
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; valid: {', '.join(OUTPUTS)}")
    adaptive = n_steps == "auto"
    if not adaptive:
        if isinstance(n_steps, str):
            raise ValueError(f"n_steps must be a positive integer or 'auto', got {n_steps!r}")
        n_steps = check_count("n_steps", n_steps, 50)
    if batch_size is not None:
        batch_size = check_count("batch_size", batch_size, 8)
    if adaptive and method not in ("integrated_gradients", "layer"):
        raise ValueError("n_steps='auto' applies to integrated_gradients and layer only")
    if not (isinstance(tolerance, (int, float)) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive fraction, got {tolerance!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    budget = parse_budget(memory_budget)
    start = time.perf_counter()
    prepared = prepare(loaded, inputs, target=target, text_pairs=text_pairs, baseline=baseline,
                       max_length=max_length, patch_size=patch_size, continuation=continuation)
    common = dict(batch_size=batch_size, memory_budget=budget, seed=seed, progress=progress,
                  output=output, options=method_options, layer=layer)
    if adaptive:
        run = adaptive_ig(loaded, prepared, method, tolerance=tolerance, **common)
    else:
        run = compute(loaded, prepared, method, n_steps=n_steps, **common)
    seconds = time.perf_counter() - start
    trust = None
    if definition is not None and method != "layer":
        trust = measure_faithfulness(loaded, run, output=output, seed=seed,
                                     memory_budget=budget, definition=definition)
    parameters = {"n_steps": n_steps, "tolerance": tolerance if adaptive else None,
                  "batch_size": batch_size, "memory_budget": budget, "output": output,
                  "layer": run.layer_name, "patch_size": patch_size, "max_length": max_length,
                  "faithfulness": definition,
                  "baseline": baseline if isinstance(baseline, (str, int, type(None)))
                  else "tensor", "target": target if isinstance(target, (str, int, tuple,
                                                                          type(None))) else
                  "per-input", "continuation": continuation, **method_options}
    return AttributionResult(loaded, run, trust=trust, parameters=parameters, seed=seed,
                             seconds=seconds)


def adaptive_ig(loaded, prepared: Prepared, method: str, *, tolerance: float, batch_size,
                memory_budget, seed, progress, output, options, layer,
                start_steps: int = 8, max_steps: int = 512) -> Run:
    """Integrated gradients with per-input step counts: inputs whose completeness error is above
    ``tolerance`` x |f(x) - f(baseline)| are redone with twice the steps."""
    steps = start_steps
    todo = list(range(len(prepared.items)))
    final: dict[int, tuple] = {}
    run = None
    while todo:
        sub = replace(prepared, items=[prepared.items[i] for i in todo])
        run = compute(loaded, sub, method, n_steps=steps, batch_size=batch_size,
                      memory_budget=memory_budget, seed=seed, progress=progress, output=output,
                      options=options, layer=layer)
        remaining = []
        for k, i in enumerate(todo):
            scores = run.unit_scores[k] if method != "layer" else run.layer_scores[k]
            total = float(np.sum(scores))
            delta = run.deltas[k]
            gap = abs(total - delta)  # |f(x) - f(baseline)|
            if abs(delta) <= tolerance * max(gap, 1e-12) or steps >= max_steps:
                final[i] = _run_row(run, k)
            else:
                remaining.append(i)
        todo = remaining
        steps *= 2
    merged = Run(prepared, method, [], [], [], [], [], [], [], [], [], None, [],
                 run.layer_name if run is not None else None)
    for i in range(len(prepared.items)):
        row = final[i]
        for key, value in row.items():
            getattr(merged, key).append(value)
    return merged


_ROW_FIELDS = ("unit_scores", "pixel_scores", "layer_scores", "deltas", "f_x", "predicted",
               "predicted_score", "target_score", "surrogate_r2", "n_steps")


def _run_row(run: Run, k: int) -> dict:
    return {name: getattr(run, name)[k] for name in _ROW_FIELDS}


def scorer_for(loaded, prepared: Prepared, output: str) -> Scorer:
    return Scorer(loaded.model, kind=prepared.kind, task=loaded.task, output=output,
                  embedding_name=prepared.embedding_name)


def applicable_methods(task: str) -> tuple[str, ...]:
    """The methods of ``METHODS`` that apply to a model of ``task``."""
    return _APPLICABLE[_modality(task)]

