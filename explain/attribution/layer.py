"""``LayerAttributionResult``: the result of ``attribute_layer``, one score per input and neuron
(or channel) of the attributed layer."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..checks import positive_int
from ..results import Result, make_meta
from .inputs import item_offsets
from .result import _labeler

__all__ = ["LayerAttributionResult"]


class LayerAttributionResult(Result):
    """Layer integrated gradients of many inputs: which neurons or channels of ``layer`` carry
    the decision.

    ``to_frame()`` columns, one row per input and neuron: ``input_id`` (position of the input
    in the call), ``step`` (0, or the continuation token index for causal LMs), ``layer`` (the
    dotted module name), ``neuron`` (index of the neuron or channel in the layer's output),
    ``label`` (``"layer[neuron]"``), ``score`` (signed attribution to the explained output,
    summed over positions: tokens or pixels), ``target``, ``predicted_label``,
    ``predicted_score`` (under ``output``, by default the probability), ``target_score``,
    ``convergence_delta`` (sum of the scores minus f(x) - f(baseline)), ``n_steps`` and
    ``truncated``. ``scores()``: the ``(n_explanations, n_neurons)`` matrix. ``plot("layer")``:
    the top neurons by mean |score|.
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "layer": "top neurons/channels of the attributed layer, mean over inputs (± std)",
    })
    #: ``top_k``: the neurons shown.
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({"layer": ("top_k",)})

    def __init__(self, loaded, run, *, parameters: Mapping[str, Any], seconds: float) -> None:
        self._run = run
        self.layer = run.layer_name
        self.method = run.method
        self.output = parameters.get("output", "probability")
        self.seconds = float(seconds)
        self._labels = _labeler(loaded)
        self.meta = make_meta(loaded, method=run.method, parameters=parameters, seed=None)
        self.meta["seconds"] = self.seconds
        self.meta["n_explanations"] = len(run.prepared.items)
        self.meta["modality"] = run.prepared.kind
        self._freeze()

    def __len__(self) -> int:
        return len(self._run.prepared.items)

    def scores(self) -> np.ndarray:
        """``(n_explanations, n_neurons)`` attribution of each neuron, per explanation."""
        return np.stack([np.asarray(s, dtype=np.float64) for s in self._run.unit_scores])

    def neuron_labels(self) -> list[str]:
        """``"layer[j]"`` for each neuron ``j``."""
        n = len(self._run.unit_scores[0]) if len(self) else 0
        return [f"{self.layer}[{j}]" for j in range(n)]

    def _target_label(self, k: int) -> str:
        item = self._run.prepared.items[k]
        return self._labels(item.target, item.contrast)

    def to_frame(self) -> pd.DataFrame:
        """Tidy scores, one row per input and neuron (columns in the class docstring)."""
        run = self._run
        labels = self.neuron_labels()
        steps = item_offsets(run.prepared.items)
        frames = []
        for k, item in enumerate(run.prepared.items):
            scores = np.asarray(run.unit_scores[k], dtype=np.float64)
            frames.append(pd.DataFrame({
                "input_id": item.input_id, "step": steps[k], "layer": self.layer,
                "neuron": np.arange(len(scores)), "label": labels, "score": scores,
                "target": self._target_label(k),
                "predicted_label": self._labels(run.predicted[k], -1),
                "predicted_score": run.predicted_score[k], "target_score": run.target_score[k],
                "convergence_delta": run.deltas[k], "n_steps": run.n_steps[k],
                "truncated": bool(item.truncated)}))
        frame = pd.concat(frames, ignore_index=True)
        return frame.astype({"input_id": "int64", "step": "int64", "neuron": "int64",
                             "score": "float64", "n_steps": "int64", "truncated": "bool"})

    def summary(self) -> str:
        mean = np.abs(self.scores()).mean(0)
        top = int(np.argmax(mean))
        n = len(self)
        return (f"layer integrated gradients of {n} {'explanation' if n == 1 else 'explanations'}"
                f" over {self.layer} "
                f"({len(mean)} units), {self.meta['model'].get('name', 'model')}; largest mean "
                f"|score|: {self.neuron_labels()[top]} ({mean[top]:.3g})")

    def relative_deltas(self) -> np.ndarray:
        """|completeness error| / |f(x) - f(baseline)| per explanation (NaN where 0)."""
        out = []
        for scores, delta in zip(self._run.unit_scores, self._run.deltas, strict=True):
            gap = abs(float(np.sum(scores)) - delta)
            out.append(abs(delta) / gap if gap > 0 else math.nan)
        return np.asarray(out)

    def tables(self) -> dict[str, pd.DataFrame]:
        """``scores`` (``to_frame()``)."""
        return {"scores": self.to_frame()}

    def _plot(self, kind: str, *, ax=None, top_k: int = 10):
        positive_int(top_k, "top_k", fix="pass e.g. top_k=10")
        from .figures import plot_layer

        return plot_layer(self, ax=ax, top_k=top_k)
