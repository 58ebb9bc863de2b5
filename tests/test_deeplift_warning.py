"""DeepLift's rescale rule is exact through ReLU and treats GELU, LayerNorm and softmax attention
as linear: ``attribute`` warns, with the measured share of the output change its attributions
cover, when a model holds such modules and the share is far from 100%
(``MethodSpec.inexact_modules``, ``COMPLETENESS_GAP_WARNING``)."""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pytest
import torch

from explain import ExplainWarning
from explain.attribution import METHODS, attribute, register_method
from explain.attribution.methods import COMPLETENESS_GAP_WARNING
from explain.attribution.runners import Attributions, deeplift

TEXTS = ["the plot was dull", "a wonderful film", "boring and far too long", "great acting"]


def _shares(result) -> np.ndarray:
    """Per input: sum of the attributions over f(x) - f(baseline) (= sum - convergence_delta)."""
    frame = result.to_frame().groupby("input_id")
    total = frame.score.sum()
    return (total / (total - frame.convergence_delta.first())).to_numpy()


def _rows(n=8):
    return torch.randn(n, 5, generator=torch.Generator().manual_seed(0))


def test_deeplift_on_bert_warns_with_the_measured_coverage(tiny_bert):
    with pytest.warns(ExplainWarning, match="deeplift") as record:
        result = attribute(tiny_bert, TEXTS, method="deeplift", batch_size=1,
                           faithfulness=False)
    messages = [str(w.message) for w in record if "output change" in str(w.message)]
    assert len(messages) == 1
    message = messages[0]
    for module in ("BertSelfAttention", "GELUActivation", "LayerNorm"):
        assert module in message
    assert "integrated_gradients" in message
    assert f"median over {len(TEXTS)} inputs" in message
    share = float(re.search(r"cover (-?[0-9.]+)% of", message).group(1)) / 100
    expected = float(np.median(_shares(result)))
    assert abs(share - expected) <= 5e-4  # printed to 0.1 percentage point
    gap = float(re.search(r"median gap ([0-9.]+)%", message).group(1)) / 100
    assert abs(gap - float(np.median(np.abs(1 - _shares(result))))) <= 5e-4
    assert gap > COMPLETENESS_GAP_WARNING


def test_integrated_gradients_on_bert_does_not_warn(tiny_bert):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*output change", category=ExplainWarning)
        attribute(tiny_bert, TEXTS, method="integrated_gradients", n_steps=8,
                  faithfulness=False)


@pytest.mark.parametrize("output", ["logit", "probability"])
def test_deeplift_on_a_relu_mlp_is_complete_and_silent(tiny_mlp, output):
    assert METHODS["deeplift"].inexact_modules(tiny_mlp) == ()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=ExplainWarning)
        result = attribute(tiny_mlp, _rows(), method="deeplift", output=output,
                           faithfulness=False)
    shares = _shares(result)
    # exact through ReLU; the probability's softmax (in the scorer, outside the model) is not
    tolerance = 1e-4 if output == "logit" else COMPLETENESS_GAP_WARNING / 2
    assert np.all(np.abs(shares - 1) < tolerance), shares


@pytest.fixture
def halved():
    """A registered DeepLift that returns half its attributions and names an inexact module."""
    import explain.attribution.methods as methods

    def half(call):
        out = deeplift(call)
        return Attributions(out.values / 2, out.delta - out.values.reshape(
            out.values.shape[0], -1).sum(1) / 2)

    spec = dataclasses.replace(METHODS["deeplift"], name="half_deeplift", runner=half,
                               inexact_modules=lambda loaded: ("Toy",))
    register_method(spec)
    try:
        yield spec
    finally:
        methods._REGISTRY.pop(spec.name, None)


def test_the_warning_comes_from_the_spec_field(tiny_mlp, halved):
    with pytest.warns(ExplainWarning, match=r"half_deeplift: its attributions cover 50\.0% of "
                                            r"the output change .*median gap 50\.0%.* as "
                                            r"linear: Toy\."):
        attribute(tiny_mlp, _rows(), method="half_deeplift", output="logit",
                  faithfulness=False)
    silent = dataclasses.replace(halved, name="silent_half", inexact_modules=None)
    register_method(silent)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", category=ExplainWarning)
            attribute(tiny_mlp, _rows(), method="silent_half", output="logit",
                      faithfulness=False)
    finally:
        import explain.attribution.methods as methods

        methods._REGISTRY.pop(silent.name, None)
