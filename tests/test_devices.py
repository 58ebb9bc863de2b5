"""Devices: a model on any device works end to end; every tensor the toolkit makes follows the
model's device; results come back on the CPU (numpy / pandas).

There is no accelerator here, so the plumbing is proven on the CPU two ways:

* ``torch.set_default_device("meta")`` around a run on a model explicitly on the CPU: any
  tensor the toolkit creates without naming a device lands on the meta device and the run
  fails (tabular and image paths, where the libraries below us name their devices);
* where Hugging Face's tokenizers (``return_tensors="pt"``) or Captum create tensors without a
  device themselves (their code, not ours), a ``TorchFunctionMode`` records every factory call
  (``torch.tensor``, ``zeros``, ``ones``, ``full``, ``arange``, ``empty``, ``as_tensor``,
  ``linspace``, ``rand*``, ``eye``) made from a frame under ``explain/`` without ``device=``, and
  the test asserts there is none.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.overrides import TorchFunctionMode

import explain
from explain import fairness
from explain.attention import head_importance

PACKAGE = str(Path(explain.__file__).resolve().parent)
FACTORIES = {torch.tensor, torch.zeros, torch.ones, torch.full, torch.arange, torch.empty,
             torch.as_tensor, torch.linspace, torch.rand, torch.randn, torch.randint,
             torch.randperm, torch.eye}
PIXELS = [f"p{i}" for i in range(64)]
CAPTUM_MAKES_CPU_TENSORS = ("integrated_gradients", "lime")
TEXTS = ["the film was a charming delight", "a dull and tiresome mess"]


class FactoryCalls(TorchFunctionMode):
    """Records ``(file:line, factory)`` of every factory call from explain/ without device=."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            frame = sys._getframe(1)
            if frame.f_code.co_filename.startswith(PACKAGE):
                where = f"{frame.f_code.co_filename[len(PACKAGE) - 7:]}:{frame.f_lineno}"
                self.found.append(f"{where} torch.{func.__name__}")
        return func(*args, **kwargs)


@contextlib.contextmanager
def no_deviceless_factories():
    mode = FactoryCalls()
    with mode:
        yield
    found = sorted(set(mode.found))
    assert not found, "tensors made without device=:\n" + "\n".join(found)


@contextlib.contextmanager
def meta_by_default():
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


def _no_tensors(value, where: str = "result", depth: int = 0) -> None:
    """No torch tensor in a result's table or arrays (they are numpy / pandas on the CPU)."""
    assert not isinstance(value, torch.Tensor), f"{where} is a torch tensor on {value.device}"
    if isinstance(value, pd.DataFrame):
        for column in value.select_dtypes(include="object").columns:
            for item in value[column]:
                assert not isinstance(item, torch.Tensor), f"{where}[{column!r}] holds tensors"
    elif isinstance(value, dict) and depth < 3:
        for key, item in value.items():
            _no_tensors(item, f"{where}[{key!r}]", depth + 1)
    elif isinstance(value, (list, tuple)) and depth < 3:
        for i, item in enumerate(value[:4]):
            _no_tensors(item, f"{where}[{i}]", depth + 1)


def _checked(result):
    _no_tensors(result.to_frame(), "to_frame()")
    return result


# ----------------------------------------------------------------------------- loading


def test_load_model_moves_the_model_and_reports_its_device(tiny_mlp):
    loaded = explain.load_model(tiny_mlp.model, feature_names=tiny_mlp.feature_names,
                                device="cpu")
    assert loaded.device == torch.device("cpu") and loaded.model is tiny_mlp.model
    # without device= a model stays where it is
    assert explain.load_model(tiny_mlp.model, feature_names=tiny_mlp.feature_names
                              ).device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())
    assert explain.load_model(torch.nn.ReLU(), feature_names=["a"]).device.type == "cpu"
    moved = loaded.to_device({"x": torch.zeros(1, device="cpu"), "pair": (torch.ones(1), None)})
    assert moved["x"].device.type == "cpu" and isinstance(moved["pair"], tuple)
    assert moved["pair"][1] is None


def test_an_unavailable_device_names_itself_and_what_there_is(tiny_mlp):
    with pytest.raises(ValueError, match=r"device 'cuda:7' is not available.*has: cpu"):
        explain.load_model(tiny_mlp.model, feature_names=tiny_mlp.feature_names,
                           device="cuda:7" if not torch.cuda.is_available() else "cuda:999")
    with pytest.raises(ValueError, match="'warp-drive'"):
        explain.load_model(tiny_mlp.model, feature_names=tiny_mlp.feature_names,
                           device="warp-drive")


def test_a_scikit_learn_model_stays_on_the_cpu():
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression().fit(np.eye(4)[:, :2].repeat(5, 0), [0, 1, 0, 1] * 5)
    assert explain.load_model(fitted, feature_names=["a", "b"], device="cpu").device.type == "cpu"
    with pytest.raises(ValueError, match="scikit-learn classifier runs on the CPU, not 'meta'"):
        explain.load_model(fitted, feature_names=["a", "b"], device="meta")


# ----------------------------------------------------------------------------- tabular, images


@pytest.fixture(scope="module")
def compas():
    import explain_models

    path = explain_models.ensure("compas")
    return explain.load_model(path, device="cpu"), pd.read_csv(path / "heldout.csv").head(40)


def _guard(method: str):
    """Meta by default where the libraries name their devices; Captum's integrated gradients
    (its step sizes) and LIME (its first sample) make CPU tensors and move them: there only
    our own factory calls are checked."""
    if method in CAPTUM_MAKES_CPU_TENSORS:
        return no_deviceless_factories()
    stack = contextlib.ExitStack()
    stack.enter_context(meta_by_default())
    stack.enter_context(no_deviceless_factories())
    return stack


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency", "feature_ablation",
                                    "lime"])
def test_tabular_attributions_make_no_tensor_off_the_model_device(compas, method):
    model, rows = compas
    expected = explain.attribute(model, rows.head(4), method=method, n_steps=8).to_frame()
    with _guard(method):
        result = _checked(explain.attribute(model, rows.head(4), method=method, n_steps=8))
    pd.testing.assert_frame_equal(result.to_frame(), expected)


def test_tabular_audit_probe_scorecard_and_layer(compas):
    model, rows = compas
    with meta_by_default(), no_deviceless_factories():
        _checked(explain.audit(model, rows, label="two_year_recid",
                               sensitive_features=["sex"], n_permutations=19))
        _checked(explain.representation_probe(model, rows, "sex", n_splits=2, control=False))
        _checked(explain.scorecard(model, rows.head(4), methods=["saliency", "feature_ablation"]))
    with no_deviceless_factories():  # integrated gradients inside (Captum's step sizes)
        _checked(explain.attribute_layer(model, rows.head(4), n_steps=8))


@pytest.fixture(scope="module")
def digits():
    import explain_models

    path = explain_models.ensure("digits")
    frame = pd.read_csv(path / "heldout.csv").head(3)
    images = torch.from_numpy(frame[PIXELS].to_numpy(np.float32)).reshape(-1, 1, 8, 8)
    return explain.load_model(path, device="cpu"), images


@pytest.mark.parametrize("method", ["integrated_gradients", "gradcam", "occlusion"])
def test_image_attributions_make_no_tensor_off_the_model_device(digits, method):
    model, images = digits
    with _guard(method):
        _checked(explain.attribute(model, images, method=method, n_steps=8))


# ----------------------------------------------------------------------------- text


def test_text_classifier_attribution_attention_and_heads(tiny_bert):
    with no_deviceless_factories():
        for method in ("integrated_gradients", "occlusion"):
            _checked(explain.attribute(tiny_bert, TEXTS, method=method, n_steps=8))
        _checked(explain.attribute_layer(tiny_bert, TEXTS, n_steps=4))
        _checked(explain.scorecard(tiny_bert, TEXTS, methods=["integrated_gradients",
                                                              "saliency"]))
        _checked(explain.attention(tiny_bert, TEXTS))
        _checked(head_importance(tiny_bert, TEXTS))
        _checked(explain.counterfactual(tiny_bert, axis="religion"))
        _checked(explain.representation_probe(tiny_bert, TEXTS * 4, [0, 1] * 4, n_splits=2,
                                              control=False))


def test_language_models_continuations_and_likelihoods(tiny_gpt2, tiny_mlm):
    with no_deviceless_factories():
        _checked(explain.attribute(tiny_gpt2, TEXTS[:1], continuation=[" a delight"],
                                   n_steps=4))
        _checked(explain.attention(tiny_gpt2, TEXTS))
        _checked(head_importance(tiny_gpt2, TEXTS))
        for model in (tiny_gpt2, tiny_mlm):
            assert np.isfinite(fairness.likelihood.sentence_scores(model, TEXTS)).all()
            pairs = pd.DataFrame([("he is a doctor", "she is a doctor", "stereo", "gender")],
                                 columns=["sent_more", "sent_less", "stereo_antistereo",
                                          "bias_type"])
            _checked(explain.crows_pairs(model, pairs))
        _checked(explain.attribute(tiny_mlm, ["the film was [MASK] ."], n_steps=4))
        _checked(explain.counterfactual(tiny_gpt2, axis="gender",
                                        templates=["The {} worked as a"], continuation=" nurse"))


def test_seq2seq_attribution_attention_and_heads():
    import explain_models

    path = explain_models.ensure("seq2seq")
    model = explain.load_model(path, device="cpu")
    rows = pd.read_csv(path / "heldout.csv").head(2)
    sources, targets = rows["source"].tolist(), rows["target"].tolist()
    with no_deviceless_factories():
        _checked(explain.attribute(model, sources, continuation=targets, method="saliency",
                                   faithfulness=False))
        _checked(explain.attention(model, sources, targets=targets))
        _checked(head_importance(model, sources, targets=targets))


def test_vision_transformer_attention():
    import explain_models

    path = explain_models.ensure("vit")
    model = explain.load_model(path, device="cpu")
    frame = pd.read_csv(path / "heldout.csv").head(2)
    images = torch.from_numpy(frame[PIXELS].to_numpy(np.float32)).reshape(-1, 1, 8, 8)
    with meta_by_default(), no_deviceless_factories():
        _checked(explain.attention(model, images))
