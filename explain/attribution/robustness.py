"""Captum's robustness metrics of an attribution result: ``infidelity`` (against random
attributions under the same perturbations) and ``sensitivity_max``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..checks import positive_int
from .compute import compute
from .inputs import collate
from .methods import METHODS
from .scorer import scorer_for

__all__ = ["robustness"]


def robustness(loaded, result, *, n_perturb_samples: int = 8, max_inputs: int = 8,
               seed: int = 0, noise: float = 0.1) -> dict[str, float]:
    """Captum's ``infidelity`` (normalised; also for random Gaussian attributions under the same
    perturbations: ``random_infidelity``) and ``sensitivity_max`` of ``result``'s method, mean
    over the first ``max_inputs`` explanations. Perturbations are Gaussian with standard
    deviation ``noise`` x the std of (input - baseline) for infidelity, and uniform within
    ``perturb_radius = noise`` x that std for sensitivity; both seeded."""
    from captum.metrics import infidelity, sensitivity_max

    positive_int(n_perturb_samples, "n_perturb_samples", fix="pass e.g. n_perturb_samples=8")
    positive_int(max_inputs, "max_inputs", fix="pass e.g. max_inputs=8")
    run = result._run
    prepared = run.prepared
    spec = METHODS[run.method]
    scorer = scorer_for(loaded, prepared, result.meta["parameters"]["output"])
    options = {k: v for k, v in result.meta["parameters"].items()
               if k in spec.options}
    n_steps = result.meta["parameters"]["n_steps"]
    n_steps = 16 if n_steps == "auto" else int(n_steps)
    infid, sens, random_infid = [], [], []
    for k, item in enumerate(prepared.items[:max_inputs]):
        x, b, args, _ = collate(prepared, [item], device=loaded.device)
        scale = float((x - b).std()) or 1.0
        element = _element_attr(run, k, item).to(x.device)
        # the device's generator too, which its perturbations draw from (seeded, put back)
        devices = [x.device] if x.device.type == "cuda" else []

        def perturb(inputs, baselines=None, _scale=scale):
            noise_t = torch.randn_like(inputs) * noise * _scale
            return noise_t, inputs - noise_t

        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed * 1_000_003 + k)
            value = infidelity(scorer, perturb, x, element[None], additional_forward_args=args,
                               n_perturb_samples=n_perturb_samples, normalize=True)
            # the same perturbations scored against random attributions of the same shape
            torch.manual_seed(seed * 1_000_003 + k)
            generator = torch.Generator().manual_seed(seed * 7_919 + k)
            noise_attr = torch.randn(element.shape, generator=generator,
                                     device="cpu")[None].to(x.device)
            random_value = infidelity(scorer, perturb, x, noise_attr,
                                      additional_forward_args=args,
                                      n_perturb_samples=n_perturb_samples, normalize=True)
        infid.append(float(value.mean()))
        random_infid.append(float(random_value.mean()))

        def explain_fn(xs, _item=item, _b=b):
            packed = isinstance(xs, tuple)
            xs = xs[0] if packed else xs
            outs = []
            for row in range(xs.shape[0]):
                clone = _clone_item(_item, xs[row], prepared.kind)
                sub = replace(prepared, items=[clone])
                sub_run = compute(loaded, sub, spec, n_steps=n_steps, batch_size=1,
                                  memory_budget=1 << 30, seed=seed, progress=False,
                                  output=result.meta["parameters"]["output"], options=options,
                                  keep_elements=True, layer=result.meta["parameters"]["layer"])
                outs.append(_element_attr(sub_run, 0, clone))
            outs = torch.stack(outs).to(xs.device)
            return (outs,) if packed else outs

        def perturb_sens(inputs, perturb_radius=noise * scale):
            if isinstance(inputs, tuple):
                return tuple(v + torch.empty_like(v).uniform_(-perturb_radius, perturb_radius)
                             for v in inputs)
            return inputs + torch.empty_like(inputs).uniform_(-perturb_radius, perturb_radius)

        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed * 1_000_003 + k + 17)
            value = sensitivity_max(explain_fn, x, perturb_func=perturb_sens,
                                    n_perturb_samples=max(2, n_perturb_samples // 2),
                                    max_examples_per_batch=max(2, n_perturb_samples // 2))
        sens.append(float(value.mean()))
    return {"infidelity": float(np.mean(infid)) if infid else float("nan"),
            "random_infidelity": float(np.mean(random_infid)) if random_infid
            else float("nan"),
            "sensitivity_max": float(np.mean(sens)) if sens else float("nan")}


def _clone_item(item, x, kind):
    return replace(item, x=x.detach().cpu().clone())


def _element_attr(run, k, item) -> torch.Tensor:
    """Element-level attributions of item ``k``: kept ones, else unit scores spread evenly
    over each unit's elements (so sums per unit are preserved)."""
    if run.elements is not None and len(run.elements) > k:
        attr = run.elements[k]
        if item.kind == "text":
            attr = attr[:item.length]
        if attr.shape == item.units.shape:
            return attr.float()
    units = item.units
    scores = torch.from_numpy(np.asarray(run.unit_scores[k], dtype=np.float64))
    counts = torch.bincount(units.reshape(-1).clamp(min=0), minlength=len(scores)).double()
    spread = scores[units.clamp(min=0)] / counts[units.clamp(min=0)]
    return torch.where(units >= 0, spread, torch.zeros_like(spread)).float()
