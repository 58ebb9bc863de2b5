"""The attribution methods, one frozen ``MethodSpec`` each, registered in ``METHODS``.

A spec says what ``compute`` needs to know about a method (how it is batched, seeded, reduced
to units and checked) and holds the runner that calls Captum for one batch
(``explain.attribution.runners``). ``register_method(spec)`` adds a method from outside the
package; ``attribute(..., method=spec.name)`` then runs it like a built-in one.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from ..checks import positive_int
from . import runners
from .inputs import modality
from .runners import Attributions, MethodCall

__all__ = ["COMPLETENESS_GAP_WARNING", "FAMILIES", "LAYER_METHOD", "METHODS", "MODALITIES",
           "MethodSpec", "applicable_methods", "default_output", "method_title",
           "register_method"]

#: Method family -> what its methods do; ``MethodSpec.family`` is one of these.
FAMILIES: Mapping[str, str] = MappingProxyType({
    "gradient": "gradients of the explained output with respect to the input (or, GradCAM, a "
                "layer), reported per input element; units sum their elements",
    "perturbation": "forward passes on inputs with groups of elements (tokens, feature groups, "
                    "patches) replaced by the baseline; every element of a group carries the "
                    "group's value; one input at a time, its perturbations batched",
    "layer": "attributions to the neurons or channels of a layer (``attribute_layer``)",
})

#: Modalities a method can apply to (``MethodSpec.modalities``).
MODALITIES = ("text", "tabular", "image")

#: Gap ``|1 - sum(attributions) / (f(x) - f(baseline))|`` (median over inputs) that a method
#: may have through modules its rule does not handle exactly (``MethodSpec.inexact_modules``)
#: before ``attribute`` warns: ten times the 1% that ``n_steps="auto"`` holds integrated
#: gradients to (``tolerance=0.01``), and far above the float error (~1e-6) of an exact rule.
COMPLETENESS_GAP_WARNING = 0.1

_INTEGRATION = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
                "riemann_trapezoid")


@dataclass(frozen=True)
class MethodSpec:
    """One attribution method.

    ``name``: the key in ``METHODS`` (``attribute(..., method=name)``). ``description``: what
    it computes, one sentence. ``family``: a key of ``FAMILIES``. ``runner``: ``runner(call:
    MethodCall) -> Attributions``, one batch. ``modalities``: the modalities it applies to
    (of ``MODALITIES``); ``why_not``: modality -> why it does not apply, for every other
    modality. ``stochastic``: it samples (seeded per input from its content; run one input at
    a time). ``integrates``: it takes ``n_steps`` integration steps (batches are filled with
    whole steps; ``n_steps="auto"`` applies). ``nests``: its runner integrates over a part of
    the path when given the internal option ``segment=(a, c)`` (see
    ``runners.integrated_gradients``), so ``n_steps="auto"`` refines nested rules that reuse
    every gradient (``adaptive.adaptive_ig``). ``completeness``: its attributions should sum to
    ``f(x) - f(baseline)``; the caller reports the error as ``convergence_delta``.
    ``grouped``: every element of a unit carries the unit's value (perturbation group values)
    instead of a contribution to sum. ``options``: option name -> meaning, the keyword options
    ``attribute(..., **options)`` passes to the runner (any other is refused); ``n_samples``
    is checked as a count (its example is the ``(default N)`` of its meaning), ``stdevs`` and
    ``alpha`` as numbers >= 0, ``abs`` and ``relu_attributions`` as bools, ``integration`` as
    one of Captum's rules; other names reach the runner as given. ``layer``: the purpose
    (``"gradcam"``, ``"layer"``) for which the model family chooses the default layer when
    the method runs on a layer, else ``None``; ``layer_type``: the module type that layer must
    be. ``prepare_scorer``: ``(scorer, x, args) -> module`` built once per call and given to
    the runner instead of the scorer (DeepLift's model copy), else ``None``.
    ``inexact_modules``: ``(loaded) -> names`` of the module types of the loaded model that the
    method's rule does not handle exactly (DeepLift's rescale rule treats GELU, LayerNorm and
    softmax attention as linear), else ``None``; when there are some and the attributions are
    off by more than ``COMPLETENESS_GAP_WARNING`` of ``f(x) - f(baseline)`` (median over
    inputs, from the convergence deltas the runner returns), ``attribute`` warns
    (``ExplainWarning``). ``default_output``: the output (a key of
    ``explain.attribution.OUTPUTS``) that ``attribute(..., output=None)`` explains;
    ``family_outputs``: model-family name (``explain.families.FAMILIES``) -> the default there
    instead (see ``default_output()``). ``title``: how captions, findings and figures name it
    (``"DeepLIFT"``; default: the name with spaces, ``"integrated gradients"``).
    """

    name: str
    description: str
    family: str
    runner: Callable[[MethodCall], Attributions]
    modalities: tuple[str, ...] = MODALITIES
    why_not: Mapping[str, str] = field(default_factory=dict)
    stochastic: bool = False
    integrates: bool = False
    nests: bool = False
    completeness: bool = False
    grouped: bool = False
    options: Mapping[str, str] = field(default_factory=dict)
    layer: str | None = None
    layer_type: type | None = None
    prepare_scorer: Callable[..., nn.Module] | None = None
    inexact_modules: Callable[[Any], tuple[str, ...]] | None = None
    default_output: str = "probability"
    family_outputs: Mapping[str, str] = field(default_factory=dict)
    title: str = ""

    def __post_init__(self) -> None:
        # read-only copies, so a registered spec cannot change under the registry
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "family_outputs", MappingProxyType(dict(self.family_outputs)))
        object.__setattr__(self, "why_not", MappingProxyType(dict(self.why_not)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def per_input(self) -> bool:
        """Run one input at a time (sampling and perturbation methods batch their samples)."""
        return self.stochastic or self.family == "perturbation"


def _spec(name: str, description: str, family: str, runner, **fields) -> MethodSpec:
    return MethodSpec(name, description, family, runner, **fields)


_GRADCAM_WHY_NOT = "GradCAM needs a convolutional layer over an image"
# The gradient of a confident softmax is p(1 - p) times that of the logit: on the digits CNN
# (median top probability 0.998) input-x-gradient covers 0.6% of the probability's change from
# the baseline and 36% of the logit's (tests/test_default_outputs.py), so the local-gradient
# methods explain the logit there; on the COMPAS MLP the probability keeps 74% and stays.
_CNN_LOGIT = {"cnn": "logit"}

_BUILT_IN = (
    _spec("integrated_gradients",
          "IntegratedGradients on features/pixels; for text on the word embeddings "
          "(= LayerIntegratedGradients), with the completeness error",
          "gradient", runners.integrated_gradients, integrates=True, nests=True,
          completeness=True,
          options={"integration": "Captum's integration rule (default 'gausslegendre'; "
                                  "'riemann_left', 'riemann_right', 'riemann_middle', "
                                  "'riemann_trapezoid', whose weights Captum makes sum to "
                                  "1 - 1/n_steps: its convergence_delta shows it)"}),
    _spec("saliency", "Saliency: |d output / d input| (abs=False for the signed gradient)",
          "gradient", runners.saliency, options={"abs": "absolute gradients (default True)"},
          family_outputs=_CNN_LOGIT),
    _spec("input_x_gradient", "InputXGradient: input times gradient", "gradient",
          runners.input_x_gradient, family_outputs=_CNN_LOGIT, title="input × gradient"),
    _spec("deeplift", "DeepLift (rescale rule) relative to the baseline", "gradient",
          runners.deeplift, prepare_scorer=runners.deeplift_scorer,
          inexact_modules=runners.deeplift_inexact_modules, family_outputs=_CNN_LOGIT,
          title="DeepLIFT"),
    _spec("gradient_shap",
          "GradientShap: expected gradients over random points between the baseline and the "
          "input (n_samples, stdevs)", "gradient", runners.gradient_shap, stochastic=True,
          options={"n_samples": "random points per input (default n_steps)",
                   "stdevs": "standard deviation of the noise added to each point (default 0)"},
          title="GradientSHAP"),
    _spec("smoothgrad",
          "NoiseTunnel(Saliency), smoothgrad: gradients averaged over noisy copies "
          "(n_samples, stdevs)", "gradient", runners.smoothgrad, stochastic=True,
          options={"n_samples": "noisy copies per input (default 20)",
                   "stdevs": "noise standard deviation (default 0.1 x std(input - baseline))",
                   "abs": "absolute gradients (default True)"}, family_outputs=_CNN_LOGIT,
          title="SmoothGrad"),
    _spec("occlusion",
          "Occlusion: output drop when a sliding window (a token; an image patch) is replaced "
          "by the baseline", "perturbation", runners.occlusion, grouped=True,
          modalities=("text", "image"),
          why_not={"tabular": "occlusion slides a window over neighbouring positions, which "
                              "tabular features do not have; use feature_ablation"}),
    _spec("feature_ablation",
          "FeatureAblation: output drop when one feature (token, one-hot group, patch) is "
          "replaced by the baseline", "perturbation", runners.feature_ablation, grouped=True),
    _spec("shapley_sampling", "ShapleyValueSampling over features (n_samples permutations)",
          "perturbation", runners.shapley_sampling, stochastic=True, grouped=True,
          options={"n_samples": "feature permutations (default 25)"},
          title="Shapley value sampling"),
    _spec("lime",
          "Lime: a sparse linear surrogate (Lasso) fitted to perturbed inputs (n_samples); its "
          "fit quality is reported as surrogate_r2 (adjusted R^2 on its samples)",
          "perturbation", runners.lime, stochastic=True, grouped=True,
          options={"n_samples": "perturbed inputs the surrogate is fitted to (default 200)",
                   "alpha": "Lasso regularisation of the surrogate (default 0.01)"}, title="LIME"),
    _spec("kernel_shap",
          "KernelShap: Shapley values from a weighted linear fit (n_samples); its fit quality "
          "is surrogate_r2 (adjusted R^2 on the sampled coalitions, without the full and empty "
          "coalitions it is constrained to pass through)",
          "perturbation", runners.kernel_shap, stochastic=True, grouped=True,
          options={"n_samples": "perturbed inputs the weighted linear fit uses (default 200)"},
          title="KernelSHAP"),
    _spec("gradcam",
          "LayerGradCam on a convolutional layer (layer=, default: the last Conv2d), upsampled "
          "to the image", "gradient", runners.gradcam, modalities=("image",),
          why_not={"text": _GRADCAM_WHY_NOT, "tabular": _GRADCAM_WHY_NOT},
          layer="gradcam", layer_type=nn.Conv2d, default_output="logit",
          options={"relu_attributions": "keep only positive GradCAM values (default False)"},
          title="GradCAM"),
)

#: The method of ``attribute_layer``: integrated gradients over a layer's output (not in
#: ``METHODS``: its scores belong to neurons, not inputs).
LAYER_METHOD = _spec(
    "layer_integrated_gradients",
    "LayerIntegratedGradients over a named layer's output (layer=): which neurons or channels "
    "carry the decision", "layer", runners.layer_integrated_gradients, integrates=True,
    completeness=True, layer="layer")

_REGISTRY: dict[str, MethodSpec] = {spec.name: spec for spec in _BUILT_IN}

#: Method name -> its ``MethodSpec`` (read-only; ``register_method`` adds to it).
METHODS: Mapping[str, MethodSpec] = MappingProxyType(_REGISTRY)

#: Names that are no longer methods of ``attribute`` -> where they went.
_MOVED = {"layer": "layer attribution has its own entry point: "
                   "explain.attribution.attribute_layer(model, inputs, layer=...)"}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to ``METHODS`` so that ``attribute(..., method=spec.name)`` runs it.

    Checked: ``spec`` is a ``MethodSpec``; its name is a new identifier (a clash with a
    registered method is a ValueError: pick another name); its family is a key of
    ``FAMILIES`` other than ``"layer"``; its modalities are of ``MODALITIES`` and every other
    modality has a ``why_not``; its default outputs are keys of ``OUTPUTS``; ``runner`` (and
    ``prepare_scorer``, ``inexact_modules``) are callable. Returns ``spec``."""
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"register_method takes an explain.attribution.MethodSpec, got "
                        f"{type(spec).__name__}")
    if not isinstance(spec.name, str) or not spec.name.isidentifier():
        raise ValueError(f"a method name is an identifier such as 'my_method', got "
                         f"{spec.name!r}")
    if spec.name in _REGISTRY or spec.name in _MOVED or spec.name == LAYER_METHOD.name:
        raise ValueError(f"method {spec.name!r} is already registered; give yours another name")
    if spec.family not in FAMILIES or spec.family == "layer":
        raise ValueError(f"unknown method family {spec.family!r} for {spec.name!r}; valid: "
                         f"{', '.join(f for f in FAMILIES if f != 'layer')}")
    if not isinstance(spec.description, str) or not spec.description.strip():
        raise ValueError(f"method {spec.name!r} needs a description (one sentence)")
    unknown = [m for m in spec.modalities if m not in MODALITIES]
    if unknown or not spec.modalities:
        raise ValueError(f"method {spec.name!r}: modalities must be some of "
                         f"{', '.join(MODALITIES)}, got {spec.modalities!r}")
    missing = [m for m in MODALITIES if m not in spec.modalities and m not in spec.why_not]
    if missing:
        raise ValueError(f"method {spec.name!r} does not apply to {', '.join(missing)}: say why "
                         f"in why_not={{{', '.join(f'{m!r}: ...' for m in missing)}}}")
    from .scorer import OUTPUTS

    for output in (spec.default_output, *spec.family_outputs.values()):
        if output not in OUTPUTS:
            raise ValueError(f"method {spec.name!r}: unknown default output {output!r}; valid: "
                             f"{', '.join(OUTPUTS)}")
    for name in ("runner", "prepare_scorer", "inexact_modules"):
        value = getattr(spec, name)
        if not callable(value) and not (name != "runner" and value is None):
            raise TypeError(f"method {spec.name!r}: {name} must be callable, got {value!r}")
    _REGISTRY[spec.name] = spec
    return spec


def method_title(method: str) -> str:
    """How prose and figures name ``method``: its spec's ``title`` (``"DeepLIFT"``), else the
    name with spaces."""
    spec = _REGISTRY.get(method) or (LAYER_METHOD if method == LAYER_METHOD.name else None)
    return (spec.title if spec is not None and spec.title else str(method).replace("_", " "))


def check_method(method: Any, task: str) -> MethodSpec:
    """The spec of ``method`` for a model of ``task``; the errors list the valid choices."""
    if isinstance(method, str) and method in _MOVED:
        raise ValueError(f"method {method!r} is not a method of attribute(): {_MOVED[method]}")
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; valid methods: "
                         f"{', '.join(METHODS)}")
    spec = METHODS[method]
    kind = modality(task)
    if kind not in spec.modalities:
        raise ValueError(f"method {method!r} does not apply to a {task!r} model "
                         f"({spec.why_not[kind]}); methods that do: "
                         f"{', '.join(applicable_methods(task))}")
    return spec


def check_family(spec: MethodSpec, loaded: Any) -> None:
    """``ValueError`` when ``spec`` cannot run on ``loaded``'s family: an opaque family (a
    scikit-learn classifier) is only called, so only perturbation methods apply; the message
    names the method and lists those that do."""
    family = loaded.family
    if getattr(family, "opaque", False) and spec.family != "perturbation":
        working = [name for name in applicable_methods(loaded.task)
                   if METHODS[name].family == "perturbation"]
        raise ValueError(f"method {spec.name!r} needs gradients (a {spec.family} method), but "
                         f"{loaded.name} is a {family.name!r} model ({family.description}); "
                         f"methods that work on it: {', '.join(working)}")


def default_output(spec: MethodSpec, family: Any) -> str:
    """The output ``attribute(..., output=None)`` explains with ``spec`` on a model of
    ``family`` (an ``explain.families.Family``): ``spec.family_outputs[family.name]`` when
    given, else ``spec.default_output``; never ``"logit"`` on an opaque family (it has none)."""
    output = spec.family_outputs.get(family.name, spec.default_output)
    return "probability" if output == "logit" and family.opaque else output


def check_method_options(spec: MethodSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the keyword options of ``spec`` (``spec.options``) before any work."""
    valid = spec.options
    checked: dict[str, Any] = {}
    for name, value in options.items():
        if name not in valid:
            takers = [m for m, s in METHODS.items() if name in s.options]
            raise ValueError(f"option {name!r} does not apply to method {spec.name!r} (its "
                             f"options: {', '.join(valid) or 'none'}); remove it"
                             + (f", or use a method that takes it: {', '.join(takers)}"
                                if takers else ""))
        if name == "n_samples":
            example = re.search(r"\(default (\d+)\)", valid[name])
            value = positive_int(value, name, fix=f"pass e.g. {name}="
                                 f"{example.group(1) if example else 25}")
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


def applicable_methods(task: str) -> tuple[str, ...]:
    """The methods of ``METHODS`` that apply to a model of ``task``."""
    kind = modality(task)
    return tuple(name for name, spec in METHODS.items() if kind in spec.modalities)
