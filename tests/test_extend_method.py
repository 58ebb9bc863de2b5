"""Adding an attribution method from outside the package: one ``MethodSpec`` through
``register_method``, then ``attribute(..., method=name)`` runs it end to end (batching, units,
the result, faithfulness), and the registry refuses what it cannot run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from explain.attribution import (
    METHODS,
    Attributions,
    MethodCall,
    MethodSpec,
    applicable_methods,
    attribute,
    register_method,
)
from explain.hooks import count_hooks


def _gradient_times_two(call: MethodCall) -> Attributions:
    """Twice the signed gradient of the explained output (a gradient method: ``inputs``
    requires grad)."""
    (gradient,) = torch.autograd.grad(call.scorer(call.inputs, *call.args).sum(), call.inputs)
    return Attributions(2 * gradient)


def _ablate_each_unit(call: MethodCall) -> Attributions:
    """A hand-written feature ablation: the drop of the output when one unit is set to the
    baseline, given to every element of the unit (a grouped perturbation method)."""
    x, baseline = call.inputs, call.baselines
    with torch.no_grad():
        full = call.scorer(x, *call.args)
        out = torch.zeros_like(x)
        for unit in range(int(call.units.max()) + 1):
            mask = call.units == unit
            drop = full - call.scorer(torch.where(mask, baseline, x), *call.args)
            out = torch.where(mask, drop.view(-1, *[1] * (x.dim() - 1)).expand_as(x), out)
    return Attributions(out)


TIMES_TWO = MethodSpec(
    name="gradient_times_two", description="twice the signed gradient (a toy)",
    family="gradient", runner=_gradient_times_two)
ABLATE = MethodSpec(
    name="ablate_each_unit", description="feature ablation, hand-written (a toy)",
    family="perturbation", runner=_ablate_each_unit, grouped=True,
    modalities=("tabular", "image"), why_not={"text": "a toy for feature vectors and images"})


@pytest.fixture
def registered():
    """Register the toy methods for one test and take them out again (the registry is global
    on purpose: a user registers once per session)."""
    import explain.attribution.methods as methods

    for spec in (TIMES_TWO, ABLATE):
        register_method(spec)
    try:
        yield
    finally:
        for spec in (TIMES_TWO, ABLATE):
            methods._REGISTRY.pop(spec.name, None)


def _rows(n=6):
    return torch.randn(n, 5, generator=torch.Generator().manual_seed(3))


def test_a_registered_gradient_method_runs_end_to_end(registered, tiny_mlp):
    assert METHODS["gradient_times_two"] is TIMES_TWO
    assert "gradient_times_two" in applicable_methods(tiny_mlp.task)
    x = _rows()
    toy = attribute(tiny_mlp, x, method="gradient_times_two")
    saliency = attribute(tiny_mlp, x, method="saliency", abs=False)
    assert count_hooks(tiny_mlp) == 0
    ours, theirs = toy.to_frame(), saliency.to_frame()
    assert (ours.method == "gradient_times_two").all() and toy.meta["method"] == TIMES_TWO.name
    np.testing.assert_allclose(ours.score, 2 * theirs.score, rtol=1e-5, atol=1e-7)
    # the same ranking gets the same faithfulness, against the same random rankings
    columns = ["comprehensiveness", "sufficiency", "random_comprehensiveness"]
    np.testing.assert_allclose(toy.explanations()[columns], saliency.explanations()[columns],
                               rtol=1e-6, atol=1e-9)
    assert toy.summary().startswith("gradient times two attributions of 6 explanations")
    # its title (the name with spaces unless the spec gives one) names it in prose and figures
    import explain.attribution.methods as methods

    methods._REGISTRY["gradient_times_two"] = dataclasses.replace(TIMES_TWO, title="2 x gradient")
    assert toy.summary().startswith("2 x gradient attributions of 6 explanations")


def test_built_in_methods_have_their_published_names():
    from explain.attribution.methods import LAYER_METHOD, method_title

    assert [method_title(m) for m in ("integrated_gradients", "deeplift", "kernel_shap", "lime",
                                      "input_x_gradient", "gradcam")] == [
        "integrated gradients", "DeepLIFT", "KernelSHAP", "LIME", "input × gradient", "GradCAM"]
    assert method_title(LAYER_METHOD.name) == "layer integrated gradients"
    assert method_title("not_a_method") == "not a method"


def test_a_registered_perturbation_method_matches_captums_feature_ablation(registered, tiny_mlp,
                                                                           tiny_cnn):
    x = _rows()
    ours = attribute(tiny_mlp, x, method="ablate_each_unit", faithfulness=False)
    captum = attribute(tiny_mlp, x, method="feature_ablation", faithfulness=False)
    np.testing.assert_allclose(ours.to_frame().score, captum.to_frame().score, rtol=1e-5,
                               atol=1e-7)
    images = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = attribute(tiny_cnn, images, method="ablate_each_unit", patch_size=4)
    captum = attribute(tiny_cnn, images, method="feature_ablation", patch_size=4)
    np.testing.assert_allclose(ours.to_frame("pixel").score, captum.to_frame("pixel").score,
                               rtol=1e-5, atol=1e-7)
    assert ours.explanations().comprehensiveness.notna().all()


def test_a_registered_method_is_refused_where_it_does_not_apply(registered, tiny_bert):
    with pytest.raises(ValueError, match="'ablate_each_unit' does not apply.*a toy for feature"):
        attribute(tiny_bert, ["a fine film"], method="ablate_each_unit")
    with pytest.raises(ValueError, match="option 'n_samples' does not apply to method "
                                         "'gradient_times_two'"):
        attribute(tiny_bert, ["a fine film"], method="gradient_times_two", n_samples=3)


def test_register_method_checks_the_spec(registered):
    with pytest.raises(ValueError, match="'saliency' is already registered"):
        register_method(dataclasses.replace(TIMES_TWO, name="saliency"))
    with pytest.raises(ValueError, match="'gradient_times_two' is already registered"):
        register_method(TIMES_TWO)
    with pytest.raises(ValueError, match="'layer' is already registered"):
        register_method(dataclasses.replace(TIMES_TWO, name="layer"))
    with pytest.raises(ValueError, match="identifier"):
        register_method(dataclasses.replace(TIMES_TWO, name="my method"))
    with pytest.raises(ValueError, match="unknown method family 'magic'.*gradient, perturbation"):
        register_method(dataclasses.replace(TIMES_TWO, name="toy", family="magic"))
    with pytest.raises(ValueError, match="does not apply to text: say why in why_not"):
        register_method(dataclasses.replace(TIMES_TWO, name="toy",
                                            modalities=("tabular", "image")))
    with pytest.raises(ValueError, match="modalities must be some of"):
        register_method(dataclasses.replace(TIMES_TWO, name="toy", modalities=("audio",)))
    with pytest.raises(TypeError, match="runner must be callable"):
        register_method(dataclasses.replace(TIMES_TWO, name="toy", runner=None))
    with pytest.raises(TypeError, match="takes an explain.attribution.MethodSpec"):
        register_method({"name": "toy"})
    assert "toy" not in METHODS


def test_specs_and_the_registry_are_read_only():
    spec = METHODS["lime"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.stochastic = False
    with pytest.raises(TypeError):
        spec.options["n_samples"] = "changed"
    with pytest.raises(TypeError):
        METHODS["mine"] = spec
    assert spec.per_input and spec.grouped and not spec.integrates
    assert METHODS["integrated_gradients"].integrates and METHODS["integrated_gradients"] \
        .completeness
