"""Faithfulness evaluates the masked copies of all inputs together, sorted by length, in
batches within the memory budget: its numbers equal those of each input measured alone (the
per-input loop it replaced), whatever the batch size and the order of the inputs, on the
reference sentiment (text), COMPAS (tabular) and digits (image) models."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import explain
from explain.attribution.compute import Run
from explain.attribution.trust import measure_faithfulness

TOLERANCE = 1e-5
PIXELS = [f"p{i}" for i in range(64)]
_ROW_FIELDS = ("unit_scores", "pixel_scores", "deltas", "f_x", "predicted", "predicted_score",
               "target_score", "surrogate_r2", "n_steps")


def _load(name: str):
    import explain_models

    path = explain_models.ensure(name)
    model = explain.load_model(path, device="cpu")
    if name == "sentiment":
        # different lengths (padded together), one of a single word (its masks repeat)
        return model, ["Dull.", "A gorgeous, witty film.", "It never quite finds its footing, "
                                                          "but the cast is a joy to watch."]
    frame = pd.read_csv(path / "heldout.csv").head(3)
    if name == "digits":
        return model, torch.from_numpy(frame[PIXELS].to_numpy(np.float32)).reshape(-1, 1, 8, 8)
    return model, frame


@pytest.fixture(scope="module", params=["sentiment", "compas", "digits"])
def explained(request):
    """The model, a result, and its faithfulness with the default memory budget and with a
    small one (text: 8 MB, a few masked copies per forward pass; else one byte: one copy),
    each with its count of forward passes."""
    model, inputs = _load(request.param)
    result = explain.attribute(model, inputs, method="saliency", faithfulness=False)
    calls = []
    handle = model.model.register_forward_hook(lambda module, args, output: calls.append(1))
    measured = {}
    small = 8 << 20 if request.param == "sentiment" else 1
    try:
        for name, budget in (("default", 1 << 30), ("small", small)):
            calls.clear()
            measured[name] = (_measure(model, result, memory_budget=budget), len(calls))
    finally:
        handle.remove()
    return model, result, measured


def _subset(run: Run, picked) -> Run:
    """The run of the items ``picked`` (in that order) alone."""
    fields = {name: [getattr(run, name)[k] for k in picked] for name in _ROW_FIELDS}
    return replace(run, prepared=replace(run.prepared, items=[run.prepared.items[k]
                                                              for k in picked]), **fields)


def _measure(model, result, run=None, *, memory_budget=1 << 30, definition="aopc"):
    return measure_faithfulness(model, result._run if run is None else run,
                                output=result.output, seed=0, memory_budget=memory_budget,
                                definition=definition)


def _assert_same(a, b) -> None:
    left, right = pd.DataFrame(a.metrics), pd.DataFrame(b.metrics)
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=0, atol=TOLERANCE)
    assert a.n_units == b.n_units
    for name in ("deletion", "insertion", "random_deletion", "random_insertion"):
        for x, y in zip(getattr(a, name), getattr(b, name), strict=True):
            np.testing.assert_allclose(x, y, rtol=0, atol=TOLERANCE)


def _definitions(model) -> list[str]:
    return ["aopc", "eraser"] if model.task == "sequence-classification" else ["aopc"]


def test_batched_equals_each_input_alone(explained):
    model, result, measured = explained
    n = len(result._run.prepared.items)
    for definition in _definitions(model):
        together = measured["default"][0] if definition == "aopc" else \
            _measure(model, result, definition=definition)
        alone = [_measure(model, result, _subset(result._run, [k]), definition=definition)
                 for k in range(n)]
        merged = replace(together, metrics=[a.metrics[0] for a in alone],
                         deletion=[a.deletion[0] for a in alone],
                         insertion=[a.insertion[0] for a in alone],
                         random_deletion=[a.random_deletion[0] for a in alone],
                         random_insertion=[a.random_insertion[0] for a in alone],
                         n_units=[a.n_units[0] for a in alone])
        _assert_same(together, merged)
        assert np.isfinite(pd.DataFrame(together.metrics).comprehensiveness).all()


def test_batch_size_and_order_do_not_change_the_numbers(explained):
    model, result, measured = explained
    n = len(result._run.prepared.items)
    together = measured["default"][0]
    _assert_same(measured["small"][0], together)
    backwards = _measure(model, result, _subset(result._run, list(range(n))[::-1]))
    reordered = replace(backwards, metrics=backwards.metrics[::-1],
                        deletion=backwards.deletion[::-1], insertion=backwards.insertion[::-1],
                        random_deletion=backwards.random_deletion[::-1],
                        random_insertion=backwards.random_insertion[::-1],
                        n_units=backwards.n_units[::-1])
    _assert_same(reordered, together)


def test_copies_of_all_inputs_share_forward_passes(explained):
    _, result, measured = explained
    batched, small = measured["default"][1], measured["small"][1]
    n = len(result._run.prepared.items)
    rows = 3 * 2 * 11  # (ranking + 2 random) x (deletion, insertion) x 11 fractions
    # identical copies are evaluated once (the full input and the all-baseline one recur)
    assert small < n * rows
    assert small > 10
    # the memory probe, then every copy of every input at once (text: these texts' copies,
    # under 20 tokens each, fit in one forward pass of FORWARD_TOKENS)
    assert batched == 2


def test_faithfulness_shows_its_progress(explained, capsys):
    """A long faithfulness measure is never silent: with progress on, a bar counts the masked
    copies it evaluates (and it is off by default for fewer than 100 inputs)."""
    model, result, _ = explained
    quiet = measure_faithfulness(model, result._run, output=result.output, seed=0,
                                 memory_budget=1 << 30)
    assert "faithfulness" not in capsys.readouterr().err
    shown = measure_faithfulness(model, result._run, output=result.output, seed=0,
                                 memory_budget=1 << 30, progress=True)
    err = capsys.readouterr().err
    copies = int(re.findall(r"faithfulness: 100%\|[^|]*\| (\d+)/\1", err)[-1])
    assert copies > 0 and shown.metrics == quiet.metrics
