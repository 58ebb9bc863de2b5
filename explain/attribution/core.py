"""``attribute`` and ``attribute_layer``: check the arguments, prepare the inputs
(``inputs.py``), compute the method's attributions (``compute.py``), measure faithfulness
(``trust.py``) and wrap it all in a result.

The methods are the specs of ``explain.attribution.METHODS`` (``methods.py``; add one with
``register_method``); how each modality is attributed is in ``inputs.py``, how inputs are batched
and seeded in ``compute.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from ..checks import positive_int
from ..loading import as_loaded
from .adaptive import adaptive_ig
from .compute import DEFAULT_MEMORY_BUDGET, compute, parse_budget
from .inputs import check_modality_options, modality, prepare
from .layer import LayerAttributionResult
from .methods import (
    LAYER_METHOD,
    MethodSpec,
    check_family,
    check_method,
    check_method_options,
    default_output,
)
from .result import AttributionResult
from .scorer import OUTPUTS
from .trust import check_faithfulness, measure_faithfulness

__all__ = ["attribute", "attribute_layer"]


def _loaded(model, function: str):
    if isinstance(model, (str, os.PathLike)):  # a checkpoint directory; a reference name is refused
        return as_loaded(model, analysis=f"{function}()")
    if not hasattr(model, "task") or not hasattr(model, "model"):
        raise TypeError(f"{function}() takes an explain.LoadedModel (explain.load_model(...)), "
                        f"got {type(model).__name__}")
    return model


def _resolve_output(spec: MethodSpec, loaded, output) -> str:
    """``output``, or for ``None`` the method's default on the model's family
    (``methods.default_output``); ``"logit"`` of an opaque family is refused."""
    if output is None:
        return default_output(spec, loaded.family)
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; valid: {', '.join(OUTPUTS)}")
    if output == "logit" and loaded.family.opaque:
        raise ValueError(f"{loaded.name} is a {loaded.family.name!r} model "
                         f"({loaded.family.description}): it has no score before the softmax; "
                         f"pass output='probability' (its predict_proba) or 'log_probability'")
    return output


def _check_run(spec: MethodSpec, *, n_steps, tolerance, batch_size, seed,
               memory_budget) -> tuple[int | str, int | None, int]:
    """The arguments every run shares, checked before any work."""
    adaptive = n_steps == "auto"
    if not adaptive:
        if isinstance(n_steps, str):
            raise ValueError(f"n_steps must be a positive integer or 'auto', got {n_steps!r}")
        n_steps = positive_int(n_steps, "n_steps", fix="pass e.g. n_steps=50")
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size", fix="pass e.g. batch_size=8")
    if adaptive and not spec.integrates:
        raise ValueError(f"n_steps='auto' applies to the integrating methods (integrated_"
                         f"gradients, attribute_layer), not {spec.name!r}")
    if not (isinstance(tolerance, (int, float)) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive fraction, got {tolerance!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return n_steps, batch_size, parse_budget(memory_budget)


def _run(loaded, prepared, spec: MethodSpec, *, n_steps, tolerance, **common):
    if n_steps == "auto":
        return adaptive_ig(loaded, prepared, spec, tolerance=tolerance, **common)
    return compute(loaded, prepared, spec, n_steps=n_steps, **common)


def _described(baseline, target) -> dict[str, Any]:
    return {"baseline": baseline if isinstance(baseline, (str, int, type(None))) else "tensor",
            "target": target if isinstance(target, (str, int, tuple, type(None)))
            else "per-input"}


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
    output: str | None = None,
    layer: str | None = None,
    patch_size: int | None = None,
    faithfulness: str | bool = "aopc",
    seed: int = 0,
    progress: bool | None = None,
    max_length: int | None = None,
    **method_options,
) -> AttributionResult:
    """Explain which inputs made ``model`` produce its output, with Captum ``method``.

    ``model``: an ``explain.LoadedModel``. ``inputs``: texts (str or list of str) for text
    models; a DataFrame or ``(N, F)`` array/tensor for tabular models; an ``(N, C, H, W)``
    tensor for image models. ``method``: a key of ``METHODS`` (attributions to a layer's
    neurons: ``attribute_layer``). ``target``: the explained output:
    ``None`` (the predicted class; for a masked LM the predicted token at the mask, for a causal
    LM the predicted next token), a label name or index, a contrast ``"A-B"`` or ``("A", "B")``
    (score of A minus score of B), a token string for LMs, or a list with one target per input.
    ``continuation``: for a causal LM, explain each token of this continuation given everything
    before it (one explanation per continuation token); for an encoder-decoder (``seq2seq-lm``),
    the target text: each target token explained by the source tokens, given the source and the
    earlier target tokens (teacher forcing; ``None`` explains the model's own greedy output).
    ``text_pairs``: second texts of a pair
    classifier. ``baseline``: the reference input (text: a token that replaces every non-special
    token, default the pad token; tabular/image: a broadcastable tensor, default zeros).
    ``n_steps``: integration steps (integrated gradients; sample count default of
    GradientSHAP), or ``"auto"``: nested trapezoid rules of 8, 16, 32, ... intervals, each
    reusing the last one's gradients, refined only for the inputs whose completeness error
    exceeds ``tolerance`` x |f(x) - f(baseline)| (up to 512 intervals).
    ``batch_size``: inputs per padded batch of the batched methods (default: as many texts
    as fill the memory budget, at most 32; 64 rows or images); ``memory_budget``: bytes (or
    ``"2GB"``) for one internal batch of forward+backward rows; ``output``: a key of
    ``OUTPUTS``, or ``None`` (default) for the one that does not saturate for this method and
    model family (``METHODS[method].default_output`` / ``.family_outputs``), recorded in the
    result's ``meta["parameters"]["output"]``:

    ========================================================  ==========  ===============
    method                                                    family      default output
    ========================================================  ==========  ===============
    ``gradcam`` (Selvaraju et al. 2017: the class score)      every       ``logit``
    ``saliency``, ``input_x_gradient``, ``smoothgrad``,       ``cnn``     ``logit``
    ``deeplift``
    the same                                                  others      ``probability``
    ``integrated_gradients``, ``gradient_shap``, occlusion,   every       ``probability``
    ``feature_ablation``, ``shapley_sampling``, ``lime``,
    ``kernel_shap``
    ========================================================  ==========  ===============

    (a confident softmax scales local gradients by p(1 - p): on the digits CNN GradCAM maps of
    the probability are ~600 times weaker than of the logit; path and perturbation methods
    measure the probability's change itself). A ``"sklearn"`` model (``Family.opaque``) has no
    logit: ``output="logit"`` is refused, and only the perturbation methods apply to it.
    ``layer``: the layer of a method that runs on one (``gradcam``);
    ``patch_size``: image patch side in pixels for perturbation methods and faithfulness
    (default: a 8x8 grid; image models only); ``faithfulness``: the definition of
    comprehensiveness and sufficiency measured against a random ranking, a key of
    ``explain.attribution.FAITHFULNESS_DEFINITIONS`` (``"aopc"``, ours, the default;
    ``"eraser"``, DeYoung et al. 2020 as ferret computes it, text only), ``True`` for the
    default, ``False`` to skip (forward passes only; deletion/insertion curves come with
    either); ``seed``: seeds every sampling method (and the random ranking) per input, with the
    input's content (see ``explain.attribution.compute``); ``progress``: a tqdm bar (default:
    on for 100 inputs or more); ``max_length``: tokens per text (longer texts are truncated,
    warned about and marked; a causal LM keeps the end of its prompt, other models the start;
    text models only). ``method_options``: the options of ``method``
    listed in ``METHODS[method].options`` (e.g. ``n_samples``, ``stdevs``, ``abs``, ``alpha``
    for LIME), passed to Captum; any other is a ValueError. Every count (``n_steps``,
    ``n_samples``, ``batch_size``, ``max_length``, ``patch_size``) must be a positive integer,
    checked before any work.

    Returns an ``AttributionResult``.
    """
    loaded = _loaded(model, "attribute")
    spec = check_method(method, loaded.task)
    check_family(spec, loaded)
    output = _resolve_output(spec, loaded, output)
    method_options = check_method_options(spec, method_options)
    if n_steps == "auto" and "integration" in method_options:
        raise ValueError(f"integration={method_options['integration']!r} applies to a fixed "
                         f"n_steps; n_steps='auto' refines its own nested trapezoid rules: pass "
                         f"n_steps=50 (or another count) with integration=, or drop it")
    kind = modality(loaded.task)
    check_modality_options(kind, loaded.task, patch_size=patch_size, max_length=max_length,
                           text_pairs=text_pairs, continuation=continuation)
    definition = check_faithfulness(faithfulness, kind)
    n_steps, batch_size, budget = _check_run(spec, n_steps=n_steps, tolerance=tolerance,
                                             batch_size=batch_size, seed=seed,
                                             memory_budget=memory_budget)
    start = time.perf_counter()
    prepared = prepare(loaded, inputs, target=target, text_pairs=text_pairs, baseline=baseline,
                       max_length=max_length, patch_size=patch_size, continuation=continuation)
    run = _run(loaded, prepared, spec, n_steps=n_steps, tolerance=tolerance,
               batch_size=batch_size, memory_budget=budget, seed=seed, progress=progress,
               output=output, options=method_options, layer=layer)
    seconds = time.perf_counter() - start
    trust = None
    if definition is not None:
        trust = measure_faithfulness(loaded, run, output=output, seed=seed,
                                     memory_budget=budget, definition=definition,
                                     progress=progress)
    parameters = {"n_steps": n_steps, "tolerance": tolerance if n_steps == "auto" else None,
                  "batch_size": batch_size, "memory_budget": budget, "output": output,
                  "layer": run.layer_name, "patch_size": patch_size, "max_length": max_length,
                  "faithfulness": definition, **_described(baseline, target),
                  "continuation": continuation, **method_options}
    return AttributionResult(loaded, run, trust=trust, parameters=parameters, seed=seed,
                             seconds=seconds)


def attribute_layer(
    model,
    inputs,
    *,
    layer: str | None = None,
    target=None,
    text_pairs: Sequence[str] | None = None,
    continuation: str | Sequence[str] | None = None,
    baseline=None,
    n_steps: int | str = 50,
    tolerance: float = 0.01,
    batch_size: int | None = None,
    memory_budget: int | str | None = DEFAULT_MEMORY_BUDGET,
    output: str | None = None,
    progress: bool | None = None,
    max_length: int | None = None,
) -> LayerAttributionResult:
    """Which neurons or channels of ``layer`` carry the decision: Captum's
    ``LayerIntegratedGradients`` over the layer's output, summed over positions (text: the
    tokens; image: the spatial dimensions), one score per neuron or channel.

    ``layer``: a dotted name of ``model.model.named_modules()`` (default: the model's last
    convolution, else its last block, else its second-to-last linear layer). ``n_steps``:
    integration steps or ``"auto"`` (Gauss-Legendre steps doubled from 16 per input until the
    completeness error is within ``tolerance`` x |f(x) - f(baseline)|, up to 512).
    ``output``: default (``None``) the probability. The other arguments are those of ``attribute``; a model of an opaque family
    (scikit-learn) has no layers and is refused. Returns a ``LayerAttributionResult``.
    """
    loaded = _loaded(model, "attribute_layer")
    kind = modality(loaded.task)
    check_modality_options(kind, loaded.task, patch_size=None, max_length=max_length,
                           text_pairs=text_pairs, continuation=continuation)
    spec = LAYER_METHOD
    if loaded.family.opaque:
        raise ValueError(f"{loaded.name} is a {loaded.family.name!r} model "
                         f"({loaded.family.description}): it has no layers to attribute to; "
                         f"attribute its inputs with explain.attribute(model, inputs, method=...) "
                         f"and a perturbation method")
    output = _resolve_output(spec, loaded, output)
    n_steps, batch_size, budget = _check_run(spec, n_steps=n_steps, tolerance=tolerance,
                                             batch_size=batch_size, seed=0,
                                             memory_budget=memory_budget)
    if layer is not None and not isinstance(layer, str):
        raise TypeError(f"layer must be a dotted module name (str), got {layer!r}")
    start = time.perf_counter()
    prepared = prepare(loaded, inputs, target=target, text_pairs=text_pairs, baseline=baseline,
                       max_length=max_length, continuation=continuation)
    run = _run(loaded, prepared, spec, n_steps=n_steps, tolerance=tolerance,
               batch_size=batch_size, memory_budget=budget, seed=0, progress=progress,
               output=output, options={}, layer=layer)
    seconds = time.perf_counter() - start
    parameters = {"n_steps": n_steps, "tolerance": tolerance if n_steps == "auto" else None,
                  "batch_size": batch_size, "memory_budget": budget, "output": output,
                  "layer": run.layer_name, "max_length": max_length,
                  **_described(baseline, target), "continuation": continuation}
    return LayerAttributionResult(loaded, run, parameters=parameters, seconds=seconds)
