"""``compute``: one method (a ``MethodSpec``) over every prepared input, batched within a memory
budget, retried with smaller internal batches on out-of-memory, assembled into a ``Run`` of
per-unit scores (``n_steps="auto"`` calls it once per round: ``adaptive``).

Batching: deterministic methods (integrated gradients, saliency, input x gradient, DeepLift,
GradCAM, layer integrated gradients) run many inputs at once in padded batches sorted by length
(the original order is restored); Captum's ``internal_batch_size`` comes from ``memory_budget``
and is halved and retried on out-of-memory. Stochastic methods (GradientSHAP, SmoothGrad,
Shapley sampling, LIME, KernelSHAP) and the perturbation methods (``MethodSpec.per_input``) run
one input at a time, their perturbations batched instead. Each input's seed is derived from
``seed``, the method and a stable hash of the input's content (token ids or values, baseline,
target), never from its position, so a sampled explanation of an input is the same whatever
else is in the list, in whatever order, and whatever the batch size.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import hooks
from ..checks import memory_size, positive_int
from ..errors import ExplainWarning
from .inputs import Prepared, _slice_args, collate, content_seed
from .methods import COMPLETENESS_GAP_WARNING, METHODS, MethodSpec
from .runners import MethodCall
from .scorer import Scorer, scorer_for

__all__ = ["DEFAULT_MEMORY_BUDGET", "Run", "compute", "parse_budget"]

#: Default memory budget for one internal batch of forward + backward passes, in bytes.
DEFAULT_MEMORY_BUDGET = 1 << 30


@dataclass
class Run:
    """Raw output of ``compute``: per item, the element attributions reduced to units (for a
    ``"layer"`` method: one score per neuron or channel of the layer)."""

    prepared: Prepared
    method: str
    unit_scores: list[np.ndarray]          # per item: score per unit (token / group / patch)
    pixel_scores: list[np.ndarray | None]  # image: (H, W) per item
    deltas: list[float]
    f_x: list[float]
    predicted: list[int]
    predicted_score: list[float]
    target_score: list[float]
    surrogate_r2: list[float]
    elements: list[torch.Tensor] | None
    n_steps: list[int]
    layer_name: str | None = None


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
    return memory_size(memory_budget, "memory_budget", default=DEFAULT_MEMORY_BUDGET)


def _resolve_layer(loaded, spec: MethodSpec, layer: str | None
                   ) -> tuple[str | None, nn.Module | None]:
    if spec.layer is None:
        if layer is not None:
            takers = ", ".join(n for n, s in METHODS.items() if s.layer is not None)
            raise ValueError(f"layer= applies to the methods that run on a layer ({takers}, "
                             f"and attribute_layer), not {spec.name!r}")
        return None, None
    model = loaded.model
    name = layer or loaded.family.default_layer(model, spec.layer)
    if name is None:
        need = f" (it needs an nn.{spec.layer_type.__name__})" if spec.layer_type else ""
        raise ValueError(f"the {loaded.family.name!r} model family chooses no layer of "
                         f"{type(model).__name__} for {spec.name}{need}; pass layer= a dotted "
                         f"name from model.named_modules()")
    module = hooks.resolve_modules(model, [name])[name]
    if spec.layer_type is not None and not isinstance(module, spec.layer_type):
        raise ValueError(f"{spec.name} needs a {spec.layer_type.__name__} layer (GradCAM: a "
                         f"convolutional layer); {name!r} is a {type(module).__name__}")
    return name, module


def reduce_units(spec: MethodSpec, attr: torch.Tensor, units: torch.Tensor, n_units: int
                 ) -> np.ndarray:
    """Element attributions of one item -> one score per unit (sum for gradient methods, the
    group value for grouped methods, whose groups carry one value per element)."""
    flat_attr = attr.reshape(-1).double()
    flat_units = units.reshape(-1)
    keep = flat_units >= 0
    if spec.grouped:
        scores = torch.zeros(n_units, dtype=torch.float64, device=flat_attr.device)
        index = flat_units[keep]
        values = flat_attr[keep]
        # first element of each unit (all elements of a group carry the same value)
        order = torch.arange(index.numel() - 1, -1, -1, device=index.device)
        scores[index[order]] = values[order]
        return scores.cpu().numpy()
    scores = torch.zeros(n_units, dtype=torch.float64, device=flat_attr.device)
    scores.index_add_(0, flat_units[keep], flat_attr[keep])
    return scores.cpu().numpy()


def compute(loaded, prepared: Prepared, spec: MethodSpec, *, n_steps: int,
            batch_size: int | None, memory_budget: int, seed: int, progress, output: str,
            options: Mapping[str, Any], keep_elements: bool = False,
            layer: str | None = None, endpoints: dict | None = None) -> Run:
    """Attribute every prepared item with the method of ``spec``. ``endpoints``: a dict that
    keeps, per item, the model's output distribution on it and, for a complete method,
    f(baseline); ``adaptive.adaptive_ig`` passes the same one to every round, so they are computed
    once."""
    from ..progress import tqdm_class

    tqdm = tqdm_class()

    model = loaded.model
    scorer = scorer_for(loaded, prepared, output)
    layer_name, layer_module = _resolve_layer(loaded, spec, layer)
    items = prepared.items
    n = len(items)
    if batch_size is not None:
        positive_int(batch_size, "batch_size", fix="pass e.g. batch_size=8")
    order = sorted(range(n), key=lambda i: (items[i].length, i))
    # Memory per forward+backward row, probed once on the longest input; rows of a shorter
    # batch are assumed to cost proportionally less (the x3 safety factor covers attention's
    # quadratic part).
    longest = max(items, key=lambda it: it.length)
    px, _, pargs, _ = collate(prepared, [longest], device=loaded.device)
    if longest.target < 0:
        pargs = (*pargs[:3], torch.zeros(1, dtype=torch.long, device=px.device), *pargs[4:])
    probe_bytes = bytes_per_row(scorer, px, pargs)
    probe_width = max(1, longest.length)

    def rows_budget_for(width: int) -> int:
        scale = max(1, width) / probe_width if prepared.kind == "text" else 1.0
        return max(1, int(memory_budget / (probe_bytes * scale)))

    if spec.per_input:
        batches = [[i] for i in order]
    elif batch_size is not None:
        batches = [order[s:s + batch_size] for s in range(0, n, batch_size)]
    elif prepared.kind == "text":
        batches = _text_batches(items, order, spec, n_steps, rows_budget_for)
    else:
        batches = [order[s:s + 64] for s in range(0, n, 64)]
    show = progress if progress is not None else n >= 100
    bar = tqdm(total=n, disable=not show, desc=f"attribute ({spec.name})", unit="input")
    results: dict[int, tuple] = {}
    cache = endpoints if endpoints is not None else {}
    with hooks.preserved_state(model):
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        # e.g. DeepLift: a model copy with per-call activations, built once (not per batch)
        attributing = spec.prepare_scorer(scorer, px, pargs) if spec.prepare_scorer \
            else scorer
        unfit: list[tuple[int, int]] = []  # (n, p) of surrogate fits whose R^2 is not estimable
        try:
            for rows in batches:
                batch_items = [items[i] for i in rows]
                x, b, args, units = collate(prepared, batch_items, device=loaded.device)
                ends = _endpoints(scorer, spec, batch_items, x, b, args, cache)
                args = (*args[:3], torch.tensor([it.target for it in batch_items],
                                                device=x.device), *args[4:])
                width = x.shape[1] if prepared.kind == "text" else 0
                rows_budget = rows_budget_for(width)
                attr, delta, fit = _with_retry(
                    spec, attributing, x, b, args, units, n_steps=n_steps,
                    rows_budget=rows_budget, options=options, layer=layer_module,
                    kind=prepared.kind,
                    seed=content_seed(seed, spec.name, batch_items[0]) if spec.per_input
                    else None)
                r2 = float("nan") if fit is None else fit.r2
                if fit is not None and math.isnan(fit.r2):
                    unfit.append((fit.n_samples, fit.p))
                # Results leave the device here: everything after this works on the CPU.
                attr, units = attr.cpu(), units.cpu()
                if spec.completeness:  # f(x) - f(baseline), both known
                    total = attr.reshape(len(batch_items), -1).double().sum(1)
                    delta = total - (ends[:, 2] - ends[:, 4])
                delta = None if delta is None else delta.cpu()
                for r, it in enumerate(batch_items):
                    results[id(it)] = (attr[r], None if delta is None else float(delta[r]),
                                       r2, int(ends[r, 0]), float(ends[r, 1]),
                                       float(ends[r, 2]), float(ends[r, 3]), units[r])
                bar.update(len(batch_items))
        finally:
            bar.close()
    if unfit:
        p = max(p for _, p in unfit)
        warnings.warn(f"{spec.name}: the surrogate fit quality (surrogate_r2) is not estimable "
                      f"for {len(unfit)} of {n} explanations: n_samples="
                      f"{max(n for n, _ in unfit)} perturbations for up to {p} features (a "
                      f"linear fit with an intercept passes through p + 1 samples, so R^2 = 1 "
                      f"says nothing; the attributions are underdetermined too; KernelSHAP's "
                      f"first two samples are its constraints); surrogate_r2 is NaN there. "
                      f"Pass n_samples={10 * (p + 1)} or more", ExplainWarning, stacklevel=3)
    if spec.inexact_modules is not None:
        _warn_inexact(spec, spec.inexact_modules(loaded), results.values())
    return _assemble(prepared, spec, results, keep_elements, n_steps, layer_name)


def _endpoints(scorer: Scorer, spec: MethodSpec, items, x: torch.Tensor, b: torch.Tensor,
               args: tuple, cache: dict) -> torch.Tensor:
    """Per item of a batch: its predicted class, that class's score, f(x), the target's score
    and f(baseline) (NaN for a method without a completeness error), ``(n, 5)`` float64 on
    the CPU. From ``cache``, else from one forward pass on the inputs and their baselines
    together (f(baseline) for the completeness error, Captum's own costs two forward passes);
    an item without a target gets the predicted class."""
    if all(id(it) in cache for it in items):
        return torch.stack([cache[id(it)] for it in items])
    n, both = len(items), spec.completeness
    rows = torch.cat([x, b]) if both else x
    doubled = tuple(torch.cat([a, a]) if both and isinstance(a, torch.Tensor) else a
                    for a in args)
    with torch.no_grad():
        dist = scorer.distribution(rows, *doubled[:3], position=doubled[5],
                                   decoder_input_ids=_decoder_ids(doubled)).double()
    index = torch.arange(n, device=dist.device)
    predicted = dist[:n].argmax(-1)
    for r, it in enumerate(items):
        if it.target < 0:
            it.target = int(predicted[r])
    target = torch.tensor([it.target for it in items], dtype=torch.long, device=dist.device)
    contrast = args[4].to(dist.device)

    def explained(d: torch.Tensor) -> torch.Tensor:  # Scorer.forward on a distribution
        return d[index, target] - torch.where(contrast >= 0, d[index, contrast.clamp(min=0)],
                                              torch.zeros((), device=d.device, dtype=d.dtype))

    f_b = explained(dist[n:]) if both else torch.full_like(predicted, math.nan,
                                                           dtype=torch.float64)
    values = torch.stack([predicted.double(), dist[index, predicted], explained(dist[:n]),
                          dist[index, target], f_b], 1).cpu()
    for r, it in enumerate(items):
        cache[id(it)] = values[r]
    return values


def _decoder_ids(args: tuple) -> torch.Tensor | None:
    """The decoder prefixes of an encoder-decoder batch (``collate``'s seventh argument)."""
    return args[6] if len(args) > 6 else None


def _warn_inexact(spec: MethodSpec, modules: tuple[str, ...], results) -> None:
    """Warn when the model holds modules the rule of ``spec`` does not handle exactly and its
    attributions are far from complete. Share of one input: the sum of its attributions over
    ``sum - convergence_delta`` (= its ``f(x) - f(baseline)``); its gap: ``|1 - share|``.
    Inputs without a delta or whose output does not change (|change| <= 1e-12) have none. The
    median gap decides (shares of 50% and 150% are both wrong, though their median is 100%)."""
    if not modules:
        return
    shares = []
    for attr, delta, *_ in results:
        if delta is None or math.isnan(delta):
            continue
        total = float(attr.double().sum())
        change = total - delta
        if abs(change) > 1e-12:
            shares.append(total / change)
    if not shares:
        return
    gap = float(np.median(np.abs(1.0 - np.asarray(shares))))
    if gap <= COMPLETENESS_GAP_WARNING:
        return
    warnings.warn(f"{spec.name}: its attributions cover {100 * float(np.median(shares)):.1f}% "
                  f"of the output change f(x) - f(baseline) (median over {len(shares)} inputs; "
                  f"median gap {100 * gap:.1f}% from the 100% of a complete method; see "
                  f"convergence_delta), because its rule treats these modules of the model as "
                  f"linear: {', '.join(modules)}. Its scores are not reliable for this model; "
                  f"use method='integrated_gradients'", ExplainWarning,
                  stacklevel=5)  # the caller of attribute()


def _text_batches(items, order, spec: MethodSpec, n_steps, rows_budget_for) -> list[list[int]]:
    """Length-sorted batches of texts. Integrating methods put as few texts in a batch as fill
    one internal batch with all their steps (padding costs more than small batches do); the
    other batched methods take up to 32 texts of similar length."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        candidate = [*current, i]
        width = max(items[j].length for j in candidate)
        if spec.integrates:
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


def run_method(spec: MethodSpec, scorer: nn.Module, x: torch.Tensor, baseline: torch.Tensor,
               args: tuple, units: torch.Tensor, *, n_steps: int, internal: int,
               options: Mapping[str, Any], layer: nn.Module | None, kind: str):
    """Run the runner of ``spec`` on one batch. Returns ``(attributions, convergence_delta or
    None, the surrogate fit or None)``, detached."""
    if spec.family != "perturbation":
        x = x.detach().requires_grad_(True)
    call = MethodCall(scorer=scorer, inputs=x, baselines=baseline, args=args, units=units,
                      n_steps=n_steps, internal_batch_size=internal, options=dict(options),
                      layer=layer, kind=kind)
    with warnings.catch_warnings():
        # Captum announces (as a UserWarning) the temporary hooks DeepLift sets on activations;
        # they are removed when it returns (tests count them).
        warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
        out = spec.runner(call)
    attr, delta, fit = out.values, out.delta, out.fit
    return attr.detach(), (delta.detach().reshape(-1) if delta is not None else None), fit


def _with_retry(spec: MethodSpec, scorer, x, b, args, units, *, n_steps, rows_budget, options,
                layer, seed, kind):
    """Run the method, halving the internal batch on out-of-memory until one row fails."""
    n = x.shape[0]
    if spec.integrates:
        # balanced chunks of whole steps: ceil(n_steps / chunks) steps of every input each
        per_chunk = max(1, min(n_steps, rows_budget // n))
        chunks = math.ceil(n_steps / per_chunk)
        internal = max(2 * n, n * math.ceil(n_steps / chunks))
    elif spec.family == "perturbation":
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
                    devices = [x.device] if x.device.type == "cuda" else []
                    with torch.random.fork_rng(devices=devices):
                        torch.manual_seed(seed)
                        np.random.seed(seed % (2**32))
                        return run_method(spec, scorer, x, b, args, units, n_steps=n_steps,
                                          internal=internal, options=options, layer=layer,
                                          kind=kind)
                finally:
                    np.random.set_state(numpy_state)
            return run_method(spec, scorer, x, b, args, units, n_steps=n_steps,
                              internal=internal, options=options, layer=layer, kind=kind)
        except (RuntimeError, MemoryError) as error:
            if not is_oom(error):
                raise
            floor = 2 * n if spec.integrates else 1
            if internal <= floor:
                raise MemoryError(f"{spec.name} ran out of memory even with an internal batch "
                                  f"of {internal} rows; lower batch_size or max_length") from None
            internal = max(floor, internal // 2)
            warnings.warn(f"{spec.name} ran out of memory; retrying with an internal batch of "
                          f"{internal} rows", ExplainWarning, stacklevel=4)


def _assemble(prepared: Prepared, spec: MethodSpec, results: dict, keep_elements: bool,
              n_steps: int, layer_name: str | None) -> Run:
    run = Run(prepared, spec.name, [], [], [], [], [], [], [], [], [] if keep_elements else None,
              [], layer_name)
    for it in prepared.items:
        attr, delta, r2, pred, pred_p, f_x, target_p, units = results[id(it)]
        if prepared.kind == "text":
            attr = attr[:it.length]
            units = units[:it.length]
        if spec.family == "layer":
            values = attr
            if prepared.kind == "text":
                values = values[:it.length].sum(0)
            elif values.dim() == 3:
                values = values.sum((1, 2))
            run.unit_scores.append(values.double().numpy().reshape(-1))
            run.pixel_scores.append(None)
        else:
            n_units = len(it.unit_labels)
            if prepared.kind == "image" and attr.shape[0] < units.shape[0]:
                units = units[:attr.shape[0]]  # a channel-less map (GradCAM): one channel
            scores = reduce_units(spec, attr, units, n_units)
            if prepared.kind == "image":
                if spec.grouped:
                    grid = it.units[0]
                    counts = torch.bincount(grid.reshape(-1), minlength=n_units).double()
                    pixel = (torch.from_numpy(scores)[grid] / counts[grid]).numpy()
                else:
                    pixel = attr.double().sum(0).numpy()
                run.pixel_scores.append(pixel)
            else:
                run.pixel_scores.append(None)
            run.unit_scores.append(scores)
        run.deltas.append(float("nan") if delta is None else delta)
        run.surrogate_r2.append(r2)
        run.predicted.append(pred)
        run.predicted_score.append(pred_p)
        run.f_x.append(f_x)
        run.target_score.append(target_p)
        run.n_steps.append(n_steps if spec.integrates else 0)
        if keep_elements:
            run.elements.append(attr)
    return run
