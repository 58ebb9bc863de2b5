"""Representation probes: at which layer is a sensitive attribute linearly decodable?

For each layer, the layer's output is captured with ``explain.hooks.record`` (token states are
mean-pooled under the attention mask), and a logistic regression (scikit-learn, standardised
features) predicts the attribute from it. Accuracy is **held out**: every input is predicted
once, by the probe of the ``n_splits``-fold stratified cross-validation that did not train on
it. Its interval is the corrected resampled t interval of Nadeau and Bengio (2003) over the
fold accuracies, which allows for the variance that the training folds add (a binomial
interval on the ``n`` predictions alone covered 87% at a nominal 95% for a 16-feature probe of
a label with no signal), never narrower than the Wilson interval of the ``n`` predictions;
``tests/test_fairness_representation.py`` measures its coverage on data whose accuracy is
known.

Every layer is read against three baselines:

* the **raw-input probe**: the same probe on what the model reads, before any layer: the
  encoded input vector of a tabular (or image, flattened) model, and for a text model a bag of
  tokens (counts of the model's own tokens, special tokens left out, after the same
  truncation). A layer can only re-express what its inputs hold; the raw-input probe says how
  much of the attribute is in the words or columns already.
* the **majority baseline**: always guess the most frequent value.
* the **control task**: the same probe trained on the attribute values permuted with ``seed``
  (shuffled labels), so ``control_accuracy`` is the held-out accuracy this probe reaches when
  the attribute carries no information, and ``selectivity`` = accuracy - control accuracy.
  Hewitt and Liang (2019) assign random labels per word type instead; a probe of whole inputs
  has no types, and shuffled labels are the analogue.

A probed attribute that is itself an input of a tabular model (a raw column, a one-hot group
or an encoded feature of that name) is flagged ``is_model_input``: the probe then recovers it
trivially, and ``summary()`` says so instead of reporting it as something the network learned.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..checks import check_columns, positive_int
from ..loading import LoadedModel
from ..results import TableResult, make_meta
from ._common import check_confidence, loaded_model
from .intervals import interval_errors

__all__ = ["INPUT_BASELINES", "ProbeResult", "default_layers", "representation_probe"]

#: What the raw-input probe reads, by kind of model.
INPUT_BASELINES: Mapping[str, str] = MappingProxyType({
    "text": "bag of tokens",
    "tensor": "encoded input vector",
})


def default_layers(model: Any) -> list[str]:
    """The module paths probed by default: what the model's family reads as its
    representations (``Family.representation_names``; for the built-in families the embedding
    module of a Hugging Face model, then every outermost block, or without blocks every
    ``nn.Linear``). ``model``: a ``LoadedModel`` (its ``family``) or an ``nn.Module``."""
    from ..families import family_of

    if isinstance(model, LoadedModel):
        family, module = model.family, model.model
    else:
        module = model
        family = family_of(module)
    names = list(family.representation_names(module))
    if not names:
        raise ValueError(f"family {family.name!r} finds no layers in {type(module).__name__}; "
                         f"pass layers=[...] (dotted names from model.named_modules())")
    return names


def _layer_tensor(output: Any) -> torch.Tensor:
    """The tensor of a recorded layer output (``explain.hooks``' rule: the first tensor)."""
    from ..hooks import _first_tensor

    tensor = _first_tensor(output)
    if tensor is None:
        raise TypeError(f"a probed layer returned {type(output).__name__}, which holds no tensor")
    return tensor


def _pool(tensor: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray:
    tensor = tensor.double()
    if tensor.ndim == 3 and mask is not None and mask.shape == tensor.shape[:2]:
        m = mask.double()[..., None]
        tensor = (tensor * m).sum(1) / m.sum(1).clamp(min=1)
    elif tensor.ndim > 2:
        tensor = tensor.flatten(2).mean(-1) if tensor.ndim == 4 else tensor.mean(1)
    return tensor.reshape(len(tensor), -1).cpu().numpy()


def _input_matrix(model: Any, inputs: Any) -> torch.Tensor:
    if isinstance(inputs, pd.DataFrame):
        return model.encode_frame(inputs)
    if isinstance(inputs, torch.Tensor):
        return inputs.detach().cpu().float()
    return torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device="cpu")


def _bag_of_tokens(batches: Sequence[Any]) -> np.ndarray:
    """``(n_texts, n_distinct_tokens)`` counts of the non-special tokens the model read."""
    documents = [[int(t) for t, special in zip(batch.input_ids[i, :length].tolist(),
                                               batch.special[i], strict=True) if not special]
                 for batch in batches for i, length in enumerate(batch.lengths)]
    vocabulary = {token: j for j, token in enumerate(sorted({t for d in documents for t in d}))}
    counts = np.zeros((len(documents), max(1, len(vocabulary))))
    for i, document in enumerate(documents):
        for token in document:
            counts[i, vocabulary[token]] += 1
    return counts


def _collect_states(model: Any, inputs: Any, layers: Sequence[str], *,
                    batch_size: int = 32) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Pooled output of every layer for every input (layer -> ``(n_inputs, width)``), and the
    raw-input features ``(n_inputs, n_raw)`` (bag of tokens, or the flattened input matrix)."""
    from ..hooks import preserved_state, record

    if model.is_text:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        batches = [model.encode_texts(texts[i:i + batch_size])
                   for i in range(0, len(texts), batch_size)]
        calls = [(model.to_device(b.model_inputs()), model.to_device(b.attention_mask))
                 for b in batches]
        raw = _bag_of_tokens(batches)
    else:
        matrix = _input_matrix(model, inputs)
        calls = [((model.to_device(matrix[i:i + batch_size]),), None)
                 for i in range(0, len(matrix), batch_size)]
        raw = matrix.double().reshape(len(matrix), -1).numpy()
    states: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    with preserved_state(model), torch.no_grad():
        model.model.eval()
        for arguments, mask in calls:
            with record(model, layers) as recording:
                if isinstance(arguments, dict):
                    model.model(**arguments)
                else:
                    model.model(*arguments)
            for name in layers:
                states[name].append(_pool(_layer_tensor(recording.outputs[name]), mask))
    return {name: np.concatenate(parts) for name, parts in states.items()}, raw


def _held_out(x: np.ndarray, y: np.ndarray, folds: Any, *, regularization: float,
              max_iter: int, confidence: float) -> tuple[float, float, float]:
    """Cross-validated accuracy of the probe, every input predicted by the fold that did not
    train on it: ``(accuracy, ci_low, ci_high)``.

    The interval is the Nadeau and Bengio (2003) corrected resampled t interval over the fold
    accuracies (variance ``(1/k + n_test/n_train) * s**2``, ``k - 1`` degrees of freedom),
    widened where needed to the Wilson interval of the ``n`` pooled held-out predictions, which
    stays honest when every fold scores the same (all correct: ``s = 0``)."""
    from scipy import stats
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    probe = make_pipeline(StandardScaler(),
                          LogisticRegression(C=regularization, max_iter=max_iter))
    # One BLAS thread: these fits are tiny, and threads only contend with each other.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # convergence chatter on separable data
        predicted = cross_val_predict(probe, x, y, cv=folds)
    hits = predicted == y
    splits = [test for _, test in folds.split(x, y)]
    scores = np.array([hits[test].mean() for test in splits])
    k, n_test = len(splits), len(y) / len(splits)
    accuracy = float(hits.mean())
    half = (stats.t.ppf(0.5 + confidence / 2, k - 1)
            * np.sqrt((1 / k + n_test / (len(y) - n_test)) * scores.var(ddof=1)))
    wilson = stats.binomtest(int(hits.sum()), len(y)).proportion_ci(
        confidence_level=confidence, method="wilson")
    return (accuracy, float(max(0.0, min(accuracy - half, wilson.low))),
            float(min(1.0, max(accuracy + half, wilson.high))))


def _model_input_columns(model: Any) -> set[str]:
    """Names under which a tabular model reads its inputs: raw columns, one-hot groups and
    encoded feature names."""
    names = set(model.feature_names or ()) | set(model.feature_groups or {})
    if model.encoder is not None:
        names |= set(model.encoder.columns)
    return names


def representation_probe(
    model: Any,
    inputs: Any,
    attribute: Any,
    *,
    layers: Sequence[str] | None = None,
    n_splits: int = 5,
    control: bool = True,
    confidence: float = 0.95,
    regularization: float = 1.0,
    max_iter: int = 2000,
    seed: int = 0,
    batch_size: int = 32,
) -> ProbeResult:
    """Linear probes, layer by layer, predicting ``attribute`` (one value per input).

    ``inputs``: texts for a text model; a raw ``DataFrame`` (through ``model.encode_frame``) or
    a float matrix for a tabular model. ``attribute``: the values (a sequence, or a named
    ``pandas.Series``), or the name of a column of the ``inputs`` frame. Its name, when it has
    one, is checked against the model's inputs (``is_model_input``). ``layers``: dotted module
    paths (default: ``default_layers(model)``). ``n_splits``-fold stratified cross-validation
    (shuffled with ``seed``), ``confidence`` for the Wilson intervals; ``regularization`` is the
    inverse strength ``C`` of scikit-learn's ``LogisticRegression``. ``control``: also probe the
    attribute values permuted with ``seed``. A scikit-learn model (an opaque family) has no
    layers: ``ValueError``.
    """
    from sklearn.model_selection import StratifiedKFold

    model = loaded_model(model, analysis="representation_probe")
    if model.family.opaque:
        raise ValueError(f"{model.name} is a {model.family.name!r} model "
                         f"({model.family.description}): it has no hidden layers for a probe to "
                         f"read; audit its predictions with explain.audit(model, table, ...) or "
                         f"explain its inputs with a perturbation method of explain.attribute")
    n_splits = positive_int(n_splits, "n_splits", minimum=2)
    confidence = check_confidence(confidence)
    name = None
    if isinstance(attribute, str):
        if not isinstance(inputs, pd.DataFrame):
            raise TypeError(f"attribute={attribute!r} names a column, which needs inputs to be "
                            f"a pandas.DataFrame; pass the attribute's values instead")
        name = check_columns(inputs, {"attribute": attribute}, where="the data")[0]
        attribute = inputs[attribute]
    elif isinstance(attribute, pd.Series) and isinstance(attribute.name, str):
        name = attribute.name
    labels = pd.Series(list(attribute))
    n_inputs = len(inputs) if not isinstance(inputs, str) else 1
    if len(labels) != n_inputs:
        raise ValueError(f"got {n_inputs} inputs but {len(labels)} attribute values; pass one "
                         f"value per input")
    if labels.isna().any():
        raise ValueError(f"attribute has {int(labels.isna().sum())} missing values; drop those "
                         f"inputs")
    counts = labels.astype(str).value_counts()
    if len(counts) < 2:
        raise ValueError(f"the attribute has one value ({counts.index[0]!r}); a probe needs at "
                         f"least two")
    if counts.min() < n_splits:
        raise ValueError(f"value {counts.idxmin()!r} of the attribute occurs {counts.min()} "
                         f"times, fewer than n_splits={n_splits}; add inputs or lower n_splits")
    # Text models read words, not columns: "is it an input" does not apply (None). So it does
    # not for an unnamed attribute either, which cannot be looked up.
    is_model_input = (None if model.is_text or name is None
                      else name in _model_input_columns(model))
    y = pd.factorize(labels.astype(str), sort=True)[0]
    layers = list(layers) if layers is not None else default_layers(model)
    states, raw = _collect_states(model, inputs, layers, batch_size=batch_size)
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    shuffled = np.random.default_rng(seed).permutation(y)
    options = {"regularization": regularization, "max_iter": max_iter, "confidence": confidence}
    majority = float(counts.max() / counts.sum())
    input_accuracy, input_low, input_high = _held_out(raw, y, folds, **options)
    rows = []
    for index, layer in enumerate(layers):
        x = states[layer]
        accuracy, low, high = _held_out(x, y, folds, **options)
        control_accuracy = _held_out(x, shuffled, folds, **options)[0] if control else np.nan
        rows.append({
            "layer": layer, "layer_index": index, "n_features": int(x.shape[1]),
            "accuracy": accuracy, "accuracy_ci_low": low, "accuracy_ci_high": high,
            "control_accuracy": control_accuracy, "selectivity": accuracy - control_accuracy,
            "input_accuracy": input_accuracy, "input_ci_low": input_low,
            "input_ci_high": input_high, "majority_baseline": majority,
            "is_model_input": is_model_input,
        })
    parameters = {"attribute": name, "is_model_input": is_model_input, "layers": layers,
                  "input_baseline": INPUT_BASELINES["text" if model.is_text else "tensor"],
                  "n_input_features": int(raw.shape[1]), "n_splits": n_splits,
                  "control": control, "confidence": confidence,
                  "regularization": regularization, "n_inputs": n_inputs,
                  "attribute_values": list(counts.sort_index().index)}
    return ProbeResult(pd.DataFrame(rows), meta=make_meta(model, method="representation-probe",
                                                          parameters=parameters, seed=seed))


class ProbeResult(TableResult):
    """Held-out probe accuracy per layer, with its baselines.

    ``to_frame()``: one row per layer: ``layer`` (module path), ``layer_index``, ``n_features``,
    ``accuracy`` (held-out, pooled over the cross-validation folds) with its Wilson interval
    ``accuracy_ci_low``, ``accuracy_ci_high``; ``control_accuracy`` (the same probe on shuffled
    attribute values; NaN without ``control``), ``selectivity`` (accuracy - control accuracy);
    the baselines, the same in every row: ``input_accuracy``, ``input_ci_low``,
    ``input_ci_high`` (the probe on the raw inputs, ``meta['parameters']['input_baseline']``),
    ``majority_baseline``; ``is_model_input`` (True when the attribute is an input column of
    the tabular model, False when it is not, None for text models and unnamed attributes).
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "accuracy_by_layer": "held-out probe accuracy per layer against the raw-input probe, "
                             "the control task and the majority baseline",
    })
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({"accuracy_by_layer": ()})

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"probe_accuracy": self.table.copy()}

    def summary(self) -> str:
        table = self.table
        parameters = self.meta["parameters"]
        name = repr(parameters["attribute"]) if parameters["attribute"] else "the attribute"
        best = table.iloc[int(table["accuracy"].argmax())]
        ci = round(parameters["confidence"] * 100)
        layer = (f"best layer {best.layer} (accuracy {best.accuracy:.3f}, {ci}% CI "
                 f"[{best.accuracy_ci_low:.3f}, {best.accuracy_ci_high:.3f}]"
                 + (f", control {best.control_accuracy:.3f}, selectivity "
                    f"{best.selectivity:.3f}" if np.isfinite(best.control_accuracy) else "")
                 + ")")
        baselines = (f"raw-input probe {best.input_accuracy:.3f} "
                     f"({parameters['input_baseline']}), majority baseline "
                     f"{best.majority_baseline:.3f}")
        if parameters["is_model_input"]:
            return (f"Representation probe: {name} is an input of the model, so the probe "
                    f"recovers it trivially ({baselines}); the layers show where it survives "
                    f"({layer}), not that the network inferred it.")
        text = f"Representation probe of {name}: {layer}; {baselines}."
        if best.accuracy_ci_low <= best.majority_baseline:
            text += " No layer is decodable clearly above the majority baseline."
        elif best.accuracy <= best.input_ci_high:
            text += " The raw inputs reveal it about as well as the best layer."
        if parameters["attribute"] is None and parameters["input_baseline"] != \
                INPUT_BASELINES["text"]:
            text += (" (The attribute has no name, so whether it is a model input was not "
                     "checked: pass a named pandas.Series or a column name.)")
        return text

    def _plot(self, kind: str, *, ax=None):
        from ..plotting import axes_or_new, style

        table = self.table
        parameters = self.meta["parameters"]
        fig, ax = axes_or_new(ax, max(5.0, 0.6 * len(table) + 3.1), 4.0)
        with style():
            x = table["layer_index"].to_numpy()
            accuracy = table["accuracy"].to_numpy(float)
            ax.errorbar(x, accuracy, yerr=interval_errors(accuracy, table["accuracy_ci_low"],
                                                          table["accuracy_ci_high"]),
                        marker="o", capsize=3, label="probe (attribute)", color="#4C72B0")
            if table["control_accuracy"].notna().any():
                ax.plot(x, table["control_accuracy"], marker="s", label="control (shuffled "
                        "attribute)", color="#DD8452", linestyle="--")
            first = table.iloc[0]
            ax.errorbar([-1], [first.input_accuracy],
                        yerr=interval_errors(np.array([first.input_accuracy]),
                                             [first.input_ci_low], [first.input_ci_high]),
                        marker="D", capsize=3, color="#55A868", linestyle="none",
                        label=f"raw input ({parameters['input_baseline']})")
            ax.axhline(first.majority_baseline, color="grey", linestyle=":",
                       label="majority baseline")
            ticks = ["raw input", *(_short(n) for n in table["layer"])]
            ax.set_xticks([-1, *x], ticks, rotation=30 if len(ticks) > 4 else 0,
                          ha="right" if len(ticks) > 4 else "center")
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("layer")
            ax.set_ylabel(f"held-out accuracy ({parameters['n_splits']}-fold CV, "
                          f"{round(parameters['confidence'] * 100)}% CI)")
            name = parameters["attribute"] or "the attribute"
            ax.set_title(f"Where is {name} linearly decodable?"
                         + (" (an input of the model)" if parameters["is_model_input"] else ""))
            ax.legend(frameon=False, loc="lower right", fontsize=7)
        return fig


def _short(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else name
