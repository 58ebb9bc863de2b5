"""The runners of the built-in attribution methods: each calls Captum for one method on one
batch (``MethodCall``) and returns its ``Attributions``. Also the helpers two of them need: the
surrogate-fit recorder of LIME and KernelSHAP, and DeepLift's model copy with per-call
activations and its list of the modules its rescale rule does not handle exactly."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from .. import hooks
from ..families import ATTENTION_KINDS
from .inputs import _slice_args
from .scorer import Scorer

__all__ = ["Attributions", "MethodCall"]


@dataclass(frozen=True)
class MethodCall:
    """What a runner gets for one batch of ``n`` inputs.

    ``scorer``: the module to explain, ``scorer(inputs, *args) -> (n,)`` (for DeepLift, the
    module of ``MethodSpec.prepare_scorer``). ``inputs``: the attributed tensor ``(n, ...)``
    (``requires_grad`` set unless the method is a perturbation method); ``baselines``: same
    shape. ``args``: Captum's ``additional_forward_args``. ``units``: same shape as ``inputs``,
    int64, element -> unit (token, feature group, image patch; -1 for none): Captum's
    ``feature_mask``. ``n_steps``: integration steps; ``internal_batch_size``: rows of one
    forward/backward pass within the memory budget (Captum's ``internal_batch_size`` or
    ``perturbations_per_eval``). ``options``: the checked options of ``MethodSpec.options``
    given by the user (absent ones take the runner's default). ``layer``: the module of
    ``MethodSpec.layer`` (else ``None``). ``kind``: the modality (``"text"``, ``"tabular"``,
    ``"image"``)."""

    scorer: nn.Module
    inputs: torch.Tensor
    baselines: torch.Tensor
    args: tuple
    units: torch.Tensor
    n_steps: int
    internal_batch_size: int
    options: dict[str, Any]
    layer: nn.Module | None
    kind: str


class Attributions(NamedTuple):
    """What a runner returns: ``values`` with the shape of ``MethodCall.inputs`` (or, with a
    channel-less map such as GradCAM's, ``(n, 1, H, W)``; or the layer output's), ``delta``
    (``(n,)`` convergence deltas the method computes itself, else ``None``) and ``fit`` (the
    surrogate fit with its ``r2``, ``n_samples`` and ``p``, else ``None``)."""

    values: torch.Tensor
    delta: torch.Tensor | None = None
    fit: Any = None


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



def integrated_gradients(call: MethodCall) -> Attributions:
    """Captum's ``IntegratedGradients``. The internal option ``segment=(a, c)`` (set by
    ``adaptive_ig``, never by the user) integrates over the part ``alpha`` in ``[a, c]`` of the
    path ``baseline + alpha (input - baseline)``, scaled to the whole path's difference:
    Captum's rule runs from ``baseline + a d`` to ``baseline + c d`` (``d = input -
    baseline``), so its result is ``(c - a) d`` times the rule's weighted sum of the gradients
    at its points in that part (``c`` may pass 1: a left Riemann rule never evaluates its
    end)."""
    import captum.attr as ca

    # the completeness error is computed by the caller from f(x), already known, and one
    # forward pass on the baseline (Captum's own delta costs two forward passes)
    opts = dict(call.options)
    inputs, baselines = call.inputs, call.baselines
    segment = opts.pop("segment", None)
    if segment is not None:
        start, stop = segment
        with torch.no_grad():
            difference = inputs - baselines
            inputs, baselines = baselines + stop * difference, baselines + start * difference
        inputs.requires_grad_(True)
    attr = ca.IntegratedGradients(call.scorer).attribute(
        inputs, baselines=baselines, additional_forward_args=call.args,
        n_steps=call.n_steps, internal_batch_size=call.internal_batch_size,
        method=opts.pop("integration", "gausslegendre"), **opts)
    return Attributions(attr)


def saliency(call: MethodCall) -> Attributions:
    import captum.attr as ca

    opts = dict(call.options)
    return Attributions(ca.Saliency(call.scorer).attribute(
        call.inputs, additional_forward_args=call.args, abs=opts.pop("abs", True), **opts))


def input_x_gradient(call: MethodCall) -> Attributions:
    import captum.attr as ca

    return Attributions(ca.InputXGradient(call.scorer).attribute(
        call.inputs, additional_forward_args=call.args, **call.options))


def deeplift(call: MethodCall) -> Attributions:
    import captum.attr as ca

    attr, delta = ca.DeepLift(call.scorer).attribute(
        call.inputs, baselines=call.baselines, additional_forward_args=call.args,
        return_convergence_delta=True, **call.options)
    return Attributions(attr, delta)


def gradient_shap(call: MethodCall) -> Attributions:
    import captum.attr as ca

    opts = dict(call.options)
    stdevs = opts.pop("stdevs", 0.0)
    n_samples = opts.pop("n_samples", call.n_steps)
    attr, delta = ca.GradientShap(call.scorer).attribute(
        call.inputs, baselines=call.baselines, additional_forward_args=call.args,
        n_samples=n_samples, stdevs=stdevs, return_convergence_delta=True, **opts)
    return Attributions(attr, delta.reshape(call.inputs.shape[0], -1).mean(1))


def smoothgrad(call: MethodCall) -> Attributions:
    import captum.attr as ca

    opts = dict(call.options)
    x = call.inputs
    n_samples = opts.pop("n_samples", 20)
    stdevs = opts.pop("stdevs", None)
    if stdevs is None:
        stdevs = 0.1 * float((x.detach() - call.baselines).std()) or 0.1
    tunnel = ca.NoiseTunnel(ca.Saliency(call.scorer))
    attr = tunnel.attribute(x, nt_type="smoothgrad", nt_samples=n_samples,
                            nt_samples_batch_size=max(1, call.internal_batch_size
                                                      // max(1, x.shape[0])),
                            stdevs=float(stdevs), additional_forward_args=call.args,
                            abs=opts.pop("abs", True), **opts)
    return Attributions(attr)


def occlusion(call: MethodCall) -> Attributions:
    import captum.attr as ca

    x = call.inputs
    if call.kind == "text":
        window = (1, x.shape[2])
    else:  # one image patch: the side of the square of equal units in the first row
        first_row = call.units[0, 0, 0]
        size = int((first_row == first_row[0]).sum())
        window = (x.shape[1], size, size)
    return Attributions(ca.Occlusion(call.scorer).attribute(
        x, sliding_window_shapes=window, strides=window, baselines=call.baselines,
        additional_forward_args=call.args, perturbations_per_eval=call.internal_batch_size,
        **call.options))


def feature_ablation(call: MethodCall) -> Attributions:
    import captum.attr as ca

    return Attributions(ca.FeatureAblation(call.scorer).attribute(
        call.inputs, baselines=call.baselines, feature_mask=call.units,
        additional_forward_args=call.args, perturbations_per_eval=call.internal_batch_size,
        **call.options))


def shapley_sampling(call: MethodCall) -> Attributions:
    import captum.attr as ca

    opts = dict(call.options)
    return Attributions(ca.ShapleyValueSampling(call.scorer).attribute(
        call.inputs, baselines=call.baselines, feature_mask=call.units,
        additional_forward_args=call.args, n_samples=opts.pop("n_samples", 25),
        perturbations_per_eval=call.internal_batch_size, **opts))


def _surrogate(call: MethodCall, explainer, fit: _RecordingFit, opts: dict) -> Attributions:
    attr = explainer.attribute(call.inputs, baselines=call.baselines, feature_mask=call.units,
                               additional_forward_args=call.args,
                               n_samples=opts.pop("n_samples", 200),
                               perturbations_per_eval=call.internal_batch_size, **opts)
    return Attributions(attr, None, fit)


def lime(call: MethodCall) -> Attributions:
    import captum.attr as ca
    from captum._utils.models.linear_model import SkLearnLasso

    opts = dict(call.options)
    fit = _RecordingFit(SkLearnLasso(alpha=opts.pop("alpha", 0.01)))
    return _surrogate(call, ca.Lime(call.scorer, interpretable_model=fit), fit, opts)


def kernel_shap(call: MethodCall) -> Attributions:
    import captum.attr as ca

    explainer = ca.KernelShap(call.scorer)
    fit = _RecordingFit(explainer.interpretable_model, constraint_weight=explainer.inf_weight)
    explainer.interpretable_model = fit
    return _surrogate(call, explainer, fit, dict(call.options))


def gradcam(call: MethodCall) -> Attributions:
    import captum.attr as ca

    opts = dict(call.options)
    cam = ca.LayerGradCam(call.scorer, call.layer).attribute(
        call.inputs, additional_forward_args=call.args,
        relu_attributions=opts.pop("relu_attributions", False), **opts)
    return Attributions(ca.LayerAttribution.interpolate(cam, tuple(call.inputs.shape[2:]),
                                                         "bilinear"))


def layer_integrated_gradients(call: MethodCall) -> Attributions:
    import captum.attr as ca

    attr = ca.LayerIntegratedGradients(call.scorer, call.layer).attribute(
        call.inputs, baselines=call.baselines, additional_forward_args=call.args,
        n_steps=call.n_steps, internal_batch_size=call.internal_batch_size, **call.options)
    if isinstance(attr, (tuple, list)):
        attr = attr[0]
    return Attributions(attr)


# ------------------------------------------------------------------ DeepLift's model copy


class _PerCall(nn.Module):
    """An activation module that a model calls ``n`` times per forward, split into ``n``
    identical copies used in call order (Captum's DeepLift needs one call per module)."""

    def __init__(self, module: nn.Module, n: int) -> None:
        super().__init__()
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


def deeplift_scorer(scorer: Scorer, x: torch.Tensor, args: tuple) -> nn.Module:
    """The scorer itself, or, when the model calls one non-linear module several times per
    forward (``nets.MLP``'s shared ReLU), a scorer over a copy of the model in which that module
    is split into one copy per call. The user's model is never modified."""
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



# Non-linear torch modules that Captum's DeepLift has no rule for (its SUPPORTED_NON_LINEAR:
# ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, MaxPool, Softmax): it passes plain gradients
# through them, as if they were linear. Normalisations divide by a statistic of the input.
_TORCH_INEXACT = (nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
                  nn.ReLU6, nn.PReLU, nn.SELU, nn.CELU, nn.GLU, nn.Softsign, nn.LogSigmoid,
                  nn.Softmin, nn.LogSoftmax, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
                  nn.MultiheadAttention)


def deeplift_inexact_modules(loaded) -> tuple[str, ...]:
    """The type names of the modules of ``loaded.model`` that DeepLift's rescale rule treats as
    linear although they are not: the non-linear torch modules without a Captum rule
    (``_TORCH_INEXACT``), the activations of ``transformers.activations`` without one (GELU,
    SiLU, ...), and the attention modules of the model family (softmax of a product of two
    input-dependent tensors, computed inside the module). Sorted, each name once."""
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR
    from transformers.activations import ACT2CLS, LinearActivation

    activations = {value[0] if isinstance(value, tuple) else value for value in ACT2CLS.values()}
    inexact = tuple(kind for kind in (*_TORCH_INEXACT, *activations)
                    if kind not in SUPPORTED_NON_LINEAR and kind is not LinearActivation)
    model = loaded.model
    found = {type(m).__name__ for m in model.modules()
             if type(m) not in SUPPORTED_NON_LINEAR and isinstance(m, inexact)}
    for kind in ATTENTION_KINDS:
        found.update(type(model.get_submodule(name)).__name__
                     for name in loaded.family.attention_names(model, kind))
    return tuple(sorted(found))
