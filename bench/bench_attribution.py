"""Benchmark: batched integrated gradients against a plain-torch floor and the usual Captum loop.

On the reference sentiment model (MiniLM fine-tuned on Rotten Tomatoes) with real review
sentences, measured in one run:

* floor: ``n_steps`` x (forward + backward to the word embeddings) over the same inputs, plain
  torch: length-sorted texts, all interpolation points of a few texts stacked in one forward,
  at the best number of texts per batch (probed on the first 16 sentences), parameters frozen:
  the arithmetic every integrated-gradients implementation must do;
* ours: ``explain.attribution.attribute(..., n_steps=50, faithfulness=False)``;
* the one-sentence-at-a-time Captum loop most users write (``LayerIntegratedGradients`` on the
  word embeddings, one ``attribute`` call per sentence, default settings);
* adaptive steps: ``n_steps="auto"`` (nested trapezoid rules of 8, 16, ... intervals per
  input until |delta| <= 1% of |f(x) - f(baseline)|) against the fixed 50 steps: gradients
  evaluated, time, share of inputs within the tolerance;
* the scorecard's time and peak memory per method (a smaller set of sentences).

Each timing is the best of ``--repeats`` runs; ratios are to the floor of the same run. The
machine is shared, so torch runs on ``--threads`` threads (default 1) and both wall time and
process CPU time are printed; the ratios use CPU time, which other processes disturb least.
Usage: ``python bench/bench_attribution.py [--sentences 64] [--steps 50]``.

``--floors`` (issue 13; its setting: ``--floors --sentences 32``) measures instead, with
torch's default threads and wall time, each variant in a fresh process, best of ``--rounds``:

* integrated gradients against its floor: the same forward and backward passes (the texts
  of each of our batches, the same steps per pass, Gauss-Legendre points, the probability of
  one class), plain torch on ``inputs_embeds``, no bookkeeping; ``n_steps=50`` and
  ``n_steps="auto"`` (1% completeness), both as ratios to the fixed-50 floor;
* faithfulness (``"aopc"``, of saliency scores) against its floor: the same forward passes
  (the lengths of every row our evaluation ran, recorded from the attention masks), sorted
  by length, at the best number of tokens per pass (probed), plain torch, no bookkeeping.

``--rules`` (the choice of ``n_steps="auto"``'s rule) computes, per sentence, d/d alpha of the
explained output along the path at 129 evenly spaced points and at the Gauss-Legendre points of
8-64 steps, then the gradients each schedule evaluates until |delta| <= 1% of |f(x) -
f(baseline)|: nested trapezoid rules (9, 17, 33, ... points, each reusing the last), Romberg
extrapolation of the same points, and Gauss-Legendre rounds of 16, 32, 64 (and from 8), whose
points do not nest (a round costs all its points).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load():
    import explain_models

    import explain

    return explain.load_model(explain_models.ensure("sentiment"))


def sentences(n: int, seed: int = 0) -> list[str]:
    from explain import datasets

    frame = datasets.rotten_tomatoes()
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(frame), size=n, replace=False)
    return frame.text.iloc[np.sort(picked)].tolist()


def best_of(fn, repeats: int):
    from explain.attribution.memory import PeakMemory

    times, cpu, peak, out = [], [], 0, None
    for _ in range(repeats):
        with PeakMemory() as memory:
            start, start_cpu = time.perf_counter(), time.process_time()
            out = fn()
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        peak = max(peak, memory.peak)
    return (min(times), min(cpu)), peak / 2**20, out


def floor_run(loaded, texts, n_steps: int, per_batch: int, max_rows: int = 512):
    """n_steps x (forward + backward to the embeddings) over the same inputs, plain torch: the
    texts sorted by length, ``per_batch`` texts padded together, all their interpolation points
    stacked in one forward (split only above ``max_rows`` rows), parameters frozen."""
    model = loaded.model
    batch = loaded.encode_texts(texts)
    order = sorted(range(len(texts)), key=lambda i: batch.lengths[i])
    embedding = model.get_input_embeddings()
    pad = loaded.tokenizer.pad_token_id
    alphas = torch.linspace(0, 1, n_steps)
    from explain.hooks import preserved_state

    with preserved_state(model):
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for start in range(0, len(order), per_batch):
            rows = order[start:start + per_batch]
            width = max(batch.lengths[i] for i in rows)
            ids = batch.input_ids[rows, :width]
            mask = batch.attention_mask[rows, :width]
            types = batch.token_type_ids[rows, :width]
            with torch.no_grad():
                x = embedding(ids)
                b = embedding(torch.full_like(ids, pad))
            steps_per_chunk = max(1, max_rows // len(rows))
            for first in range(0, n_steps, steps_per_chunk):
                chunk = alphas[first:first + steps_per_chunk]
                k = len(chunk)
                points = (b[None] + chunk[:, None, None, None] * (x - b)[None]).reshape(
                    k * len(rows), width, -1).requires_grad_(True)
                logits = model(inputs_embeds=points, attention_mask=mask.repeat(k, 1),
                               token_type_ids=types.repeat(k, 1)).logits
                torch.autograd.grad(torch.softmax(logits, -1)[:, 1].sum(), points)


def captum_loop(loaded, texts, n_steps: int):
    """What most users write: one LayerIntegratedGradients call per sentence."""
    from captum.attr import LayerIntegratedGradients

    model = loaded.model
    tokenizer = loaded.tokenizer

    def forward(ids, mask):
        logits = model(input_ids=ids, attention_mask=mask).logits
        return torch.softmax(logits, -1)

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    out = []
    for text in texts:
        enc = tokenizer(text, return_tensors="pt")
        ids = enc["input_ids"]
        ref = torch.full_like(ids, tokenizer.pad_token_id)
        ref[0, 0], ref[0, -1] = ids[0, 0], ids[0, -1]
        target = int(forward(ids, enc["attention_mask"]).argmax())
        attr = lig.attribute(ids, baselines=ref, target=target,
                             additional_forward_args=(enc["attention_mask"],), n_steps=n_steps)
        out.append(attr.sum(-1)[0].detach())
    return out


# ------------------------------------------------------------------ floors (issue 13)


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall s, process CPU s) since ``start``."""
    return time.perf_counter() - start[0], time.process_time() - start[1]


def ig_floor(loaded, texts, n_steps: int) -> tuple[float, float]:
    """The forward and backward passes of our batched integrated gradients, nothing else: the
    batches and steps per pass of ``explain.attribution.compute`` (same memory budget rule),
    on ``inputs_embeds``, parameters frozen. Planning the batches is not timed."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    from explain.attribution import compute as c
    from explain.attribution.inputs import collate, prepare
    from explain.attribution.methods import METHODS
    from explain.attribution.scorer import scorer_for
    from explain.hooks import preserved_state

    prepared = prepare(loaded, texts)
    items, spec = prepared.items, METHODS["integrated_gradients"]
    scorer = scorer_for(loaded, prepared, "probability")
    longest = max(items, key=lambda it: it.length)
    px, _, pargs, _ = collate(prepared, [longest], device=loaded.device)
    pargs = (*pargs[:3], torch.zeros(1, dtype=torch.long), *pargs[4:])
    probe = c.bytes_per_row(scorer, px, pargs)

    def rows_budget_for(width: int) -> int:
        return max(1, int(c.DEFAULT_MEMORY_BUDGET / (probe * width / longest.length)))

    order = sorted(range(len(items)), key=lambda i: (items[i].length, i))
    batches = []
    for rows in c._text_batches(items, order, spec, n_steps, rows_budget_for):
        x, b, args, _ = collate(prepared, [items[i] for i in rows], device=loaded.device)
        n = len(rows)
        per_chunk = max(1, min(n_steps, rows_budget_for(x.shape[1]) // n))
        per_pass = max(2 * n, n * math.ceil(n_steps / math.ceil(n_steps / per_chunk))) // n
        batches.append((x, b, args[1], args[2], per_pass))
    alphas = torch.tensor(approximation_parameters("gausslegendre")[1](n_steps))
    model = loaded.model
    start = clock()
    with preserved_state(model):
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for x, b, mask, types, per_pass in batches:
            n = x.shape[0]
            for first in range(0, n_steps, per_pass):
                a = alphas[first:first + per_pass].float()
                k = len(a)
                points = (b[None] + a[:, None, None, None] * (x - b)[None]).reshape(
                    k * n, *x.shape[1:]).requires_grad_(True)
                logits = model(inputs_embeds=points, attention_mask=mask.repeat(k, 1),
                               token_type_ids=types.repeat(k, 1)).logits
                torch.autograd.grad(torch.softmax(logits, -1)[:, 1].sum(), points)
    return since(start)


def faithfulness_floor(loaded, lengths: list[int], tokens: int) -> tuple[float, float]:
    """Forward passes of rows of these lengths, sorted, ``tokens`` tokens (rows x padded
    length) per pass, plain torch, no gradients."""
    lengths = sorted(lengths)
    model, pad = loaded.model, loaded.tokenizer.pad_token_id
    start = clock()
    with torch.no_grad():
        first = 0
        while first < len(lengths):
            last = first + 1
            while last < len(lengths) and (last + 1 - first) * lengths[last] <= tokens:
                last += 1
            rows = lengths[first:last]
            width = rows[-1]
            mask = (torch.arange(width)[None] < torch.tensor(rows)[:, None]).long()
            model(input_ids=torch.full((len(rows), width), pad + 1), attention_mask=mask)
            first = last
    return since(start)


def variant(name: str, n_sentences: int, n_steps: int, lengths_file: str, threads: int
            ) -> dict:
    """One measurement, in this (fresh) process (``threads`` 0: torch's default)."""
    from explain.attribution import attribute
    from explain.attribution.trust import measure_faithfulness

    if threads:
        torch.set_num_threads(threads)
    loaded = load()
    texts = sentences(n_sentences)
    attribute(loaded, texts[:2], n_steps=4, faithfulness=False)  # warm-up
    if name == "ig_floor":
        return {"seconds": ig_floor(loaded, texts, n_steps)}
    if name in ("ig_ours", "ig_auto"):
        steps = "auto" if name == "ig_auto" else n_steps
        start = clock()
        result = attribute(loaded, texts, n_steps=steps, tolerance=0.01, faithfulness=False)
        seconds = since(start)
        table = result.explanations()
        return {"seconds": seconds, "steps": int(table.n_steps.sum()),  # gradients evaluated
                "within": float((table.relative_delta <= 0.01).mean())}
    result = attribute(loaded, texts, method="saliency", faithfulness=False)
    if name == "faithfulness_ours":
        lengths: list[int] = []

        def record(_module, _args, kwargs):
            lengths.extend(kwargs["attention_mask"].sum(1).tolist())

        handle = loaded.model.register_forward_pre_hook(record, with_kwargs=True)
        try:
            start = clock()
            measure_faithfulness(loaded, result._run, output=result.output, seed=0,
                                 memory_budget=1 << 30)
            seconds = since(start)
        finally:
            handle.remove()
        lengths = lengths[1:]  # the first forward is the memory probe
        with open(lengths_file, "w") as handle:
            json.dump(lengths, handle)
        return {"seconds": seconds, "rows": len(lengths), "tokens": int(sum(lengths))}
    with open(lengths_file) as handle:
        lengths = json.load(handle)
    probe = {t: faithfulness_floor(loaded, lengths[::4], t) for t in (512, 1024, 2048, 4096,
                                                                       8192)}
    best = min(probe, key=lambda t: probe[t][0])
    return {"seconds": faithfulness_floor(loaded, lengths, best), "tokens_per_pass": best,
            "probe": probe}


def floors(args) -> None:
    import subprocess
    import sys
    import tempfile

    order = ("ig_floor", "ig_ours", "ig_auto", "faithfulness_ours", "faithfulness_floor")
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name in order:
                out = subprocess.run(
                    [sys.executable, __file__, "--variant", name, "--sentences",
                     str(args.sentences), "--steps", str(args.steps), "--lengths-file",
                     os.path.join(tmp, "lengths.json"), "--threads", str(args.floor_threads)],
                    check=True, capture_output=True, text=True).stdout
                numbers = json.loads(out.strip().splitlines()[-1])
                print(f"round {round_ + 1} {name}: {numbers['seconds'][0]:.2f} s wall, "
                      f"{numbers['seconds'][1]:.2f} s CPU", flush=True)
                if name not in best or numbers["seconds"][0] < best[name]["seconds"][0]:
                    best[name] = numbers
    ig, faith = best["ig_floor"]["seconds"], best["faithfulness_floor"]["seconds"]
    threads = args.floor_threads or f"{torch.get_num_threads()} (default)"
    print(f"\n{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{threads} threads, load average {os.getloadavg()[0]:.1f}; {args.sentences} "
          f"sentences; best wall time of {args.rounds} rounds, fresh process per variant")
    print(f"{'run':<56}{'wall s':>8}{'x floor':>8}{'CPU s':>8}{'x floor':>8}")
    for label, name, floor in (
            (f"IG floor ({args.steps} steps, our batches)", "ig_floor", ig),
            (f"explain.attribute, n_steps={args.steps}", "ig_ours", ig),
            ("explain.attribute, n_steps='auto' (vs the fixed floor)", "ig_auto", ig),
            (f"faithfulness floor ({best['faithfulness_floor']['tokens_per_pass']} tokens "
             f"per pass)", "faithfulness_floor", faith),
            ("measure_faithfulness (aopc, batched)", "faithfulness_ours", faith)):
        wall, cpu = best[name]["seconds"]
        print(f"{label:<56}{wall:>8.2f}{wall / floor[0]:>8.2f}{cpu:>8.2f}{cpu / floor[1]:>8.2f}")
    auto = best["ig_auto"]
    print(f"auto: {auto['steps']} steps evaluated vs {args.steps * args.sentences} fixed; "
          f"within 1%: {100 * auto['within']:.0f}% (fixed: "
          f"{100 * best['ig_ours']['within']:.0f}%); faithfulness: "
          f"{best['faithfulness_ours']['rows']} forward rows, "
          f"{best['faithfulness_ours']['tokens']} tokens; floor probe (s by tokens per pass): "
          + ", ".join(f"{k}: {v[0]:.2f}" for k, v in best["faithfulness_floor"]["probe"].items()))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(best, handle, indent=2)


def _slopes(scorer, x, b, args, alphas) -> np.ndarray:
    """(texts, alphas): d/d alpha of the explained output at ``b + alpha (x - b)``."""
    out = []
    for alpha in alphas:
        point = (b + float(alpha) * (x - b)).requires_grad_(True)
        grad, = torch.autograd.grad(scorer(point, *args).sum(), point)
        out.append((grad * (x - b)).reshape(len(x), -1).sum(1).double())
    return torch.stack(out, 1).numpy()


def rules(n_sentences: int) -> None:
    """Gradients evaluated until 1% completeness by each adaptive schedule (``--rules``)."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    from explain.attribution.compute import _endpoints
    from explain.attribution.inputs import collate, prepare
    from explain.attribution.methods import METHODS
    from explain.attribution.scorer import scorer_for

    loaded = load()
    prepared = prepare(loaded, sentences(n_sentences))
    scorer = scorer_for(loaded, prepared, "probability")
    for parameter in loaded.model.parameters():
        parameter.requires_grad_(False)
    weights, points = approximation_parameters("gausslegendre")
    rows = []  # per sentence: f(x) - f(baseline), d/dalpha on the grid, GL estimates
    for first in range(0, n_sentences, 16):
        batch = prepared.items[first:first + 16]
        x, b, args, _ = collate(prepared, batch, device=loaded.device)
        ends = _endpoints(scorer, METHODS["integrated_gradients"], batch, x, b, args, {})
        args = (*args[:3], torch.tensor([it.target for it in batch]), *args[4:])

        grid = _slopes(scorer, x, b, args, np.linspace(0, 1, 129))
        gauss = {n: _slopes(scorer, x, b, args, points(n)) @ np.asarray(weights(n)) for n in (8, 16, 32, 64)}
        change = (ends[:, 2] - ends[:, 4]).numpy()
        rows += [(change[r], grid[r], {n: g[r] for n, g in gauss.items()})
                 for r in range(len(batch))]

    def trapezoid(values, level):  # 2**level intervals of the 129-point grid
        v = values[::128 // 2 ** level]
        return (v.sum() - 0.5 * (v[0] + v[-1])) / 2 ** level

    def romberg(values, level):
        table = [trapezoid(values, k) for k in range(level + 1)]
        for k in range(1, level + 1):
            table = [table[i + 1] + (table[i + 1] - table[i]) / (4 ** k - 1)
                     for i in range(len(table) - 1)]
        return table[-1]

    schedules = {
        "nested trapezoid, 9, 17, 33, ... points": lambda g, G: [
            (2 ** k + 1, trapezoid(g, k)) for k in range(3, 8)],
        "Romberg on the same nested points": lambda g, G: [
            (2 ** k + 1, romberg(g, k)) for k in range(3, 8)],
        "Gauss-Legendre rounds of 16, 32, 64": lambda g, G: [
            (16, G[16]), (48, G[32]), (112, G[64])],
        "Gauss-Legendre rounds of 8, 16, 32, 64": lambda g, G: [
            (8, G[8]), (24, G[16]), (56, G[32]), (120, G[64])]}
    print(f"{n_sentences} sentences, the sentiment model's probability, 1% completeness")
    for name, schedule in schedules.items():
        spent, missed = [], 0
        for change, grid_values, gauss_values in rows:
            steps = schedule(grid_values, gauss_values)
            within = [cost for cost, estimate in steps
                      if abs(estimate - change) <= 0.01 * max(abs(change), 1e-12)]
            missed += not within
            spent.append(within[0] if within else steps[-1][0])
        print(f"{name:<42} {np.mean(spent):6.1f} gradients per sentence; "
              f"{missed} not within 1% at the last rule")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--scorecard-sentences", type=int, default=4)
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared machine, multi-threaded "
                             "CPU time includes spin-waiting and is not comparable)")
    parser.add_argument("--floors", action="store_true",
                        help="issue 13: IG and faithfulness against their floors, default "
                             "threads, wall time, a fresh process per variant")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--floor-threads", type=int, default=0,
                        help="torch threads of --floors (default 0: torch's default)")
    parser.add_argument("--rules", action="store_true",
                        help="gradients per sentence of each adaptive schedule at 1%% "
                             "completeness (the choice of n_steps='auto')")
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--lengths-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(variant(args.variant, args.sentences, args.steps,
                                 args.lengths_file, args.threads)))
        return
    if args.floors:
        floors(args)
        return
    if args.rules:
        rules(args.sentences)
        return
    torch.set_num_threads(args.threads)

    from explain.attribution import attribute, scorecard

    loaded = load()
    texts = sentences(args.sentences)
    lengths = [len(loaded.tokenizer(t)["input_ids"]) for t in texts]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"model: {loaded.name}; {len(texts)} sentences, tokens min/mean/max "
          f"{min(lengths)}/{np.mean(lengths):.1f}/{max(lengths)}; {args.steps} IG steps")
    numbers: dict = {"sentences": len(texts), "steps": args.steps,
                     "tokens_mean": float(np.mean(lengths))}

    # warm-up (first calls allocate and load kernels)
    attribute(loaded, texts[:2], n_steps=4, faithfulness=False)
    probe = {}
    probe_texts = texts[:16]
    for size in (1, 2, 4, 8, 16):
        start = time.process_time()
        floor_run(loaded, probe_texts, args.steps, size)
        probe[size] = time.process_time() - start
    best = min(probe, key=probe.get)
    print(f"floor probe (first {len(probe_texts)} sentences, {args.steps} steps, CPU s by texts "
          f"per batch): " + ", ".join(f"{k}: {v:.2f}" for k, v in probe.items())
          + f" -> best {best}")

    floor_s, floor_mb, _ = best_of(lambda: floor_run(loaded, texts, args.steps, best),
                                   args.repeats)
    ours_s, ours_mb, ours = best_of(
        lambda: attribute(loaded, texts, n_steps=args.steps, faithfulness=False), args.repeats)
    loop_s, loop_mb, loop = best_of(lambda: captum_loop(loaded, texts, args.steps),
                                    args.repeats)
    # same scores as the loop (target = predicted class in both)
    frame = ours.to_frame("token")
    diffs = [float(np.abs(frame[frame.input_id == i].score.to_numpy() - loop[i].double().numpy()
                          ).max()) for i in range(len(texts))]
    rows = [(f"floor (plain torch, {best} texts x {args.steps} steps)", floor_s, floor_mb),
            ("explain.attribute (batched IG)", ours_s, ours_mb),
            ("Captum loop, one sentence at a time", loop_s, loop_mb)]
    print(f"\n{'run':<44}{'wall s':>9}{'CPU s':>9}{'x floor':>9}{'peak MB':>9}")
    for name, (wall, cpu), mb in rows:
        print(f"{name:<44}{wall:>9.2f}{cpu:>9.2f}{cpu / floor_s[1]:>9.2f}{mb:>9.0f}")
    print(f"max |ours - Captum loop| token score: {max(diffs):.2e}")
    numbers.update({"floor_batch": best, "floor_s": floor_s, "ours_s": ours_s, "loop_s": loop_s,
                    "ours_ratio": ours_s[1] / floor_s[1], "loop_ratio": loop_s[1] / floor_s[1],
                    "floor_mb": floor_mb, "ours_mb": ours_mb, "loop_mb": loop_mb,
                    "max_diff_vs_loop": max(diffs)})

    fixed = ours.explanations()
    within = float((fixed.relative_delta <= 0.01).mean())
    start = time.process_time()
    adaptive = attribute(loaded, texts, n_steps="auto", tolerance=0.01, faithfulness=False)
    adaptive_s = time.process_time() - start
    table = adaptive.explanations()
    spent = int(table.n_steps.sum())  # gradients evaluated (the rules nest)
    print(f"\nadaptive IG (tolerance |delta| <= 1% of |f(x) - f(baseline)|): "
          f"{spent} steps evaluated vs {args.steps * len(texts)} fixed; {adaptive_s:.2f} CPU s "
          f"({adaptive_s / floor_s[1]:.2f}x floor); within tolerance: "
          f"{100 * (table.relative_delta <= 0.01).mean():.0f}% (fixed {args.steps} steps: "
          f"{100 * within:.0f}%); gradients per input: "
          f"{dict(sorted(table.n_steps.value_counts().to_dict().items()))}")
    numbers.update({"adaptive_steps": spent, "fixed_steps": args.steps * len(texts),
                    "adaptive_s": adaptive_s,
                    "adaptive_within": float((table.relative_delta <= 0.01).mean()),
                    "fixed_within": within})

    small = texts[:args.scorecard_sentences]
    card = scorecard(loaded, small, n_steps=20,
                     method_options={"shapley_sampling": {"n_samples": 4},
                                     "lime": {"n_samples": 100},
                                     "kernel_shap": {"n_samples": 100},
                                     "smoothgrad": {"n_samples": 10},
                                     "gradient_shap": {"n_samples": 20}})
    frame = card.to_frame()
    print(f"\nscorecard on {len(small)} sentences (20 IG steps; sampling methods at their "
          f"benchmark sample counts):")
    print(frame[["method", "comprehensiveness", "random_comprehensiveness", "sufficiency",
                 "stability", "agreement", "seconds", "peak_memory_mb"]]
          .to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    numbers["scorecard"] = frame.to_dict(orient="records")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(numbers, handle, indent=2, default=float)


if __name__ == "__main__":
    main()
