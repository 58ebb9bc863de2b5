"""Device check: the same analyses on the CPU and on an accelerator give the same numbers.

On the reference sentiment model (MiniLM fine-tuned on Rotten Tomatoes) and the COMPAS model,
loaded once with ``device="cpu"`` and once with ``device=DEVICE`` (default ``cuda``), this runs

* attention of 16 review sentences (every layer and head),
* integrated gradients (50 steps) of the same sentences, with faithfulness,
* the scorecard (integrated gradients, saliency, occlusion) of 8 sentences,
* the COMPAS audit (group metrics with permutation tests) of the held-out rows scored by the model,

and prints, for each, the largest absolute difference between the CPU and device results
(attention maps, attributions, completeness errors, scorecard table without its time and
memory columns, audit table) against a float tolerance, then the throughput of integrated
gradients batched (the default) against one sentence at a time on the device. Results must
come back on the CPU (numpy / pandas). ``--device cpu`` is the smoke test of the script
itself: CPU against CPU, every difference 0.

Without the device (no CUDA build or no GPU), it says so and exits 0 without measuring.
Usage: ``python bench/device_check.py [--device cuda] [--sentences 16]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: Largest difference accepted between CPU and device results (float32 kernels differ).
TOLERANCE = {"attention": 1e-4, "attributions": 1e-3, "completeness": 1e-3,
             "scorecard": 1e-2, "audit": 1e-6}


def _sentences(n: int) -> list[str]:
    from explain import datasets

    frame = datasets.rotten_tomatoes()
    rng = np.random.default_rng(0)
    return frame.text.iloc[np.sort(rng.choice(len(frame), size=n, replace=False))].tolist()


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def _max_difference(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return float("inf")
    both = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float("inf")
    return float(np.max(np.abs(a[both] - b[both]), initial=0.0))


#: Columns that measure the run (wall time, memory), not the model: never compared.
MEASUREMENTS = ("seconds", "peak_memory_mb")


def _numeric(frame):
    return frame.select_dtypes("number").drop(columns=list(MEASUREMENTS), errors="ignore"
                                              ).to_numpy()


def run_all(device: str, texts: list[str]) -> dict:
    import explain_models

    import explain
    from explain.attribution import scorecard

    sentiment = explain.load_model(explain_models.ensure("sentiment"), device=device)
    compas = explain.load_model(explain_models.ensure("compas"), device=device)
    heldout = pd.read_csv(explain_models.path("compas") / "heldout.csv")
    out, seconds = {}, {}
    attention, seconds["attention"] = _timed(lambda: explain.attention(sentiment, texts))
    out["attention"] = attention.to_frame()["weight"].to_numpy()
    ig, seconds["integrated gradients"] = _timed(
        lambda: explain.attribute(sentiment, texts, n_steps=50, progress=False))
    frame = ig.to_frame()
    out["attributions"] = frame["score"].to_numpy()
    out["completeness"] = ig.explanations()["convergence_delta"].to_numpy()
    card, seconds["scorecard"] = _timed(lambda: scorecard(
        sentiment, texts[:8], methods=["integrated_gradients", "saliency", "occlusion"]))
    out["scorecard"] = _numeric(card.to_frame())
    audit, seconds["audit"] = _timed(lambda: explain.audit(
        compas, heldout, label="two_year_recid", sensitive_features=["race", "sex"],
        n_permutations=999))
    out["audit"] = _numeric(audit.to_frame())
    for name, value in out.items():
        if isinstance(value, torch.Tensor):
            raise AssertionError(f"{name} came back as a torch tensor on {value.device}, not "
                                 f"as CPU numpy/pandas")
    _, seconds["IG one at a time"] = _timed(lambda: [
        explain.attribute(sentiment, [t], n_steps=50, progress=False, faithfulness=False)
        for t in texts])
    _, seconds["IG batched"] = _timed(lambda: explain.attribute(
        sentiment, texts, n_steps=50, progress=False, faithfulness=False))
    return {"values": out, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sentences", type=int, default=16)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"device_check: no CUDA device here (torch {torch.__version__}, "
              f"cuda build: {torch.version.cuda}); nothing measured")
        return 0
    texts = _sentences(args.sentences)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"device {args.device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    cpu = run_all("cpu", texts)
    accelerated = run_all(args.device, texts)
    failed = 0
    print(f"{'analysis':<16} {'max |cpu - device|':>20} {'tolerance':>10}  cpu s  device s")
    for name, limit in TOLERANCE.items():
        difference = _max_difference(cpu["values"][name], accelerated["values"][name])
        ok = difference <= limit
        failed += not ok
        key = {"attributions": "integrated gradients", "completeness": "integrated gradients"
               }.get(name, name)
        print(f"{name:<16} {difference:>20.3g} {limit:>10.0e}  {cpu['seconds'][key]:5.2f}  "
              f"{accelerated['seconds'][key]:7.2f}  {'ok' if ok else 'DIFFERENT'}")
    n = len(texts)
    for label in ("IG one at a time", "IG batched"):
        print(f"{label:<16} {n / accelerated['seconds'][label]:8.1f} sentences/s on "
              f"{args.device} ({n / cpu['seconds'][label]:.1f} on cpu)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
