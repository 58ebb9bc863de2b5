"""Benchmark of attention capture on the reference sentiment model (MiniLM, 6 layers x 12 heads).

Prints, all measured in this run:

* capture time for 32 Rotten Tomatoes sentences (``explain.attention``, batch 32, all layers and
  heads) divided by the time of a plain forward pass of the same padded batch, eager and sdpa
  (target: within 1.3x of the eager forward);
* rollout time for the 32 sentences divided by the capture time (target: negligible), and the
  time of one attention-flow row at the ``FLOW_MAX_TOKENS`` limit;
* peak resident memory added by capturing one 512-token input with every layer and head, float32
  vs float16 (each in a fresh subprocess; the kernel peak-RSS mark VmHWM is reset just before), and the bytes the
  result keeps; the same for 8 such inputs (batch 1), where what is kept dominates.

Run: ``python bench/bench_attention.py`` (trains the reference model on first use).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import warnings

REPEATS = 7
ROUNDS = 12


def _median_time(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark (Linux: write 5 to clear_refs); return current RSS KiB."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return _status_kib("VmRSS")


def _memory_child(dtype: str, n_texts: int) -> None:
    """Run in a subprocess: capture ``n_texts`` 512-token texts (batch 1), print peak RSS growth
    and the bytes kept as JSON."""

    import explain_models
    import torch

    import explain
    import explain.datasets
    import explain.provenance

    torch.set_num_threads(2)
    model = explain.load_model(explain_models.ensure("sentiment", progress=False))
    sentences = list(explain.datasets.rotten_tomatoes()["text"])
    texts = [" ".join(sentences[60 * k:60 * (k + 1)]) for k in range(n_texts)]
    text = texts[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = model.encode_texts([text], max_length=512)
        # Warm up allocator and kernels on a short input so the baseline includes them.
        explain.attention(model, ["warm up"], dtype=dtype)
    assert batch.lengths[0] == 512
    before = _reset_peak_rss()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = explain.attention(model, texts, dtype=dtype, max_length=512, batch_size=1)
    peak = _status_kib("VmHWM")
    kept = sum(a.nbytes for a in result.maps["self"])
    print(json.dumps({"dtype": dtype, "texts": n_texts,
                      "tokens": int(result.maps["self"][0].shape[-1]),
                      "peak_rss_growth_mib": (peak - before) / 1024, "kept_mib": kept / 2**20}))


def main() -> None:
    import explain_models
    import numpy as np
    import torch

    import explain
    import explain.datasets
    import explain.provenance
    from explain.attention import FLOW_MAX_TOKENS, attention_flow

    torch.set_num_threads(2)
    path = explain_models.ensure("sentiment")
    eager = explain.load_model(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdpa = explain.load_model(path, attn_implementation="sdpa")
    assert eager.model.config._attn_implementation == "eager"
    assert sdpa.model.config._attn_implementation == "sdpa"

    texts = list(explain.datasets.rotten_tomatoes()["text"].head(32))
    batch = eager.encode_texts(texts)
    inputs = batch.model_inputs()
    print(f"32 sentences, {sum(batch.lengths)} tokens, padded to {inputs['input_ids'].shape[1]}; "
          f"torch threads {torch.get_num_threads()}")

    def forward(model):
        def run():
            with torch.inference_mode():
                model.model(**inputs)
        return run

    def capture():
        return explain.attention(eager, texts, batch_size=32)

    # Machine load varies (2 shared cores): time the three back to back in each round and take
    # the median of the per-round ratios (paired), plus the fastest time of each.
    for run in (forward(eager), forward(sdpa), capture):
        run()
    times = {"eager": [], "sdpa": [], "capture": []}
    for _ in range(ROUNDS):
        for name, run in (("eager", forward(eager)), ("capture", capture),
                          ("sdpa", forward(sdpa))):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    ratio_eager = statistics.median(c / e for c, e in zip(times["capture"], times["eager"],
                                                          strict=True))
    ratio_sdpa = statistics.median(c / e for c, e in zip(times["capture"], times["sdpa"],
                                                         strict=True))
    t_capture = statistics.median(times["capture"])
    for name in ("eager", "sdpa", "capture"):
        label = {"eager": "plain forward, eager", "sdpa": "plain forward, sdpa",
                 "capture": "capture (explain.attention)"}[name]
        print(f"{label:28s} median {statistics.median(times[name]) * 1000:7.1f} ms, "
              f"fastest {min(times[name]) * 1000:7.1f} ms")
    print(f"capture / eager forward      {ratio_eager:6.2f}x (median of {ROUNDS} paired rounds; "
          f"fastest/fastest {min(times['capture']) / min(times['eager']):.2f}x; target <= 1.3x)")
    print(f"capture / sdpa forward       {ratio_sdpa:6.2f}x (fastest/fastest "
          f"{min(times['capture']) / min(times['sdpa']):.2f}x)")

    result = capture()

    def rollouts():
        for i in range(len(texts)):
            result.rollout_matrix(i)

    t_rollout = _median_time(rollouts)
    print(f"rollout, 32 texts          {t_rollout * 1000:8.1f} ms = {t_rollout / t_capture:.3f} "
          f"x capture")

    rng = np.random.default_rng(0)
    toy = rng.random((6, 12, FLOW_MAX_TOKENS, FLOW_MAX_TOKENS))
    toy /= toy.sum(-1, keepdims=True)
    t_flow = _median_time(lambda: attention_flow(toy, query=0), 3)
    print(f"flow, one row at {FLOW_MAX_TOKENS} tokens  {t_flow * 1000:8.1f} ms "
          f"(dense random maps, 6 layers: the worst case)")

    for n_texts in (1, 8):
        for dtype in ("float32", "float16"):
            output = subprocess.run([sys.executable, __file__, "--memory", dtype, str(n_texts)],
                                    check=True, capture_output=True, text=True).stdout
            found = json.loads(output.strip().splitlines()[-1])
            print(f"{n_texts} x {found['tokens']}-token input, all layers, {dtype}: peak RSS +"
                  f"{found['peak_rss_growth_mib']:.0f} MiB, result keeps "
                  f"{found['kept_mib']:.0f} MiB")
    print("versions:", {k: v for k, v in explain.provenance.versions().items()
                        if k in ("python", "torch", "transformers", "numpy", "scipy")})


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--memory":
        _memory_child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
