"""Benchmark: dataset-scale runs (``explain.run``) against the in-memory API and each other.

On the reference sentiment model (MiniLM fine-tuned on Rotten Tomatoes) and Rotten Tomatoes
sentences, in one run, each ratio against a peer measured in the same run:

* faithfulness: batched across inputs, against its floor (the same forward passes,
  length-sorted, at the best batch size, no bookkeeping; ``bench_attribution.faithfulness``),
  target <= 1.3x;
* the local engine against the in-memory ``explain.attribute`` on the same rows, for saliency,
  integrated gradients at 50 steps and ``n_steps="auto"`` (faithfulness off on both sides: the
  engine's own cost is what is measured), target <= 1.05x;
* the Ray engine on this machine against the local engine (a local Ray instance started
  before the timing; its start-up printed apart), with 1 and 2 workers, target <= 1.15x;
* peak RSS of a fresh process running ``explain.run("predict", ...)`` over 1,000 and 10,000
  rows, target: within 10%;
* the cost of a resume that has nothing left to do: ``explain.run`` on a finished directory
  (model already loaded) and the whole ``explain run`` command, target < 2 s.

Each timing is the best of ``--repeats`` rounds (wall time, default torch threads), variants
alternating within a round. Usage: ``python bench/bench_scale.py [--rows 64] [--ray-rows 256]
[--repeats 2] [--skip-ray] [--skip-rss] 2>/dev/null`` (stderr has the runs' progress lines).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent


def _data(directory: Path, n: int) -> Path:
    """The first ``n`` Rotten Tomatoes sentences (cycled for more than the corpus) as Parquet."""
    import pandas as pd

    from explain import datasets

    frame = datasets.rotten_tomatoes()
    frame = pd.concat([frame] * (n // len(frame) + 1), ignore_index=True).iloc[:n]
    path = directory / f"rt-{n}.parquet"
    frame.to_parquet(path, index=False)
    return path


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _best(variants: dict, repeats: int) -> dict[str, float]:
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for name, fn in variants.items():
            best[name] = min(best[name], _timed(fn))
    return best


def engine_vs_memory(loaded, data: Path, texts: list[str], work: Path, repeats: int) -> None:
    import explain

    print("\n## local engine vs in-memory explain.attribute "
          f"({len(texts)} rows, faithfulness off, target <= 1.05x)")
    print(f"{'method':28s} {'in-memory s':>11s} {'engine s':>9s} {'ratio':>6s} {'rows/s':>7s}")
    for label, method, steps in (("saliency", "saliency", 50),
                                 ("integrated_gradients 50", "integrated_gradients", 50),
                                 ("integrated_gradients auto", "integrated_gradients", "auto")):
        def memory(method=method, steps=steps):
            result = explain.attribute(loaded, texts, method=method, n_steps=steps,
                                       faithfulness=False, progress=False)
            result.to_frame()
            result.explanations()

        def engine(method=method, steps=steps):
            out = work / "engine"
            shutil.rmtree(out, ignore_errors=True)
            explain.run("attribute", loaded, data, out, methods=[method], n_steps=steps,
                        faithfulness=False, chunk_size=len(texts), progress=False)

        best = _best({"memory": memory, "engine": engine}, repeats)
        print(f"{label:28s} {best['memory']:11.2f} {best['engine']:9.2f} "
              f"{best['engine'] / best['memory']:6.3f} {len(texts) / best['engine']:7.1f}")


def ray_vs_local(loaded, data: Path, n_rows: int, work: Path, repeats: int) -> None:
    import ray

    import explain

    print(f"\n## Ray engine vs local engine (saliency, {n_rows} rows, chunks of "
          f"{n_rows // 4}, faithfulness off, target <= 1.15x)")
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"ray.init of a local instance (2 CPUs): {time.perf_counter() - start:.1f} s")
    try:
        def job(engine, workers=None):
            out = work / f"ray-{engine}-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            extra = {} if engine == "local" else {"workers": workers}
            explain.run("attribute", loaded, data, out, methods=["saliency"],
                        faithfulness=False, chunk_size=max(1, n_rows // 4), progress=False,
                        engine=engine, **extra)

        best = _best({"local": lambda: job("local"), "ray 1 worker": lambda: job("ray", 1),
                      "ray 2 workers": lambda: job("ray", 2)}, repeats)
        for name, seconds in best.items():
            print(f"{name:14s} {seconds:7.2f} s  {n_rows / seconds:6.1f} rows/s  "
                  f"{seconds / best['local']:5.3f}x local")
    finally:
        ray.shutdown()


_RSS_CHILD = """
import json, resource, sys
import explain
loaded = explain.load_model(sys.argv[1])
explain.run("predict", loaded, sys.argv[2], sys.argv[3], chunk_size=256, progress=False)
print(json.dumps({"max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def peak_rss(checkpoint: str, work: Path, sizes=(1_000, 10_000)) -> None:
    print("\n## peak RSS of explain.run('predict') in a fresh process (chunks of 256; "
          "target: within 10%)")
    found = {}
    for n in sizes:
        data = _data(work, n)
        out = work / f"rss-{n}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _RSS_CHILD, checkpoint, str(data),
                               str(out)], capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - start
        found[n] = json.loads(done.stdout.strip().splitlines()[-1])["max_rss_kb"] / 1024
        print(f"{n:>6d} rows: peak RSS {found[n]:7.1f} MiB ({seconds:.0f} s, "
              f"{n / seconds:.0f} rows/s with start-up)")
    small, large = found[sizes[0]], found[sizes[-1]]
    print(f"ratio {sizes[-1]} / {sizes[0]} rows: {large / small:.3f}")


def noop_resume(loaded, checkpoint: str, data: Path, work: Path, n_rows: int) -> None:
    import explain

    print("\n## a resume with nothing left to do (target < 2 s)")
    out = work / "resume"
    shutil.rmtree(out, ignore_errors=True)
    explain.run("predict", loaded, data, out, chunk_size=max(1, n_rows // 8), progress=False)
    seconds = _timed(lambda: explain.run("predict", loaded, data, out,
                                         chunk_size=max(1, n_rows // 8), progress=False))
    print(f"explain.run (model loaded): {seconds:.3f} s")
    command = [str(Path(sys.executable).parent / "explain"), "run", "predict", checkpoint, "--data",
               str(data), "--out", str(out), "--chunk-size", str(max(1, n_rows // 8)),
               "--quiet"]
    seconds = _timed(lambda: subprocess.run(command, check=True, capture_output=True))
    print(f"the explain run command (Python start-up, imports, model load): {seconds:.2f} s")


def faithfulness_vs_floor(n_rows: int, repeats: int) -> None:
    """``bench_attribution``'s faithfulness variants, each in a fresh process: ours (batched
    across inputs) and its floor (the same forward passes, sorted, best tokens per pass)."""
    print(f"\n## faithfulness (aopc of saliency), batched across inputs, vs its floor "
          f"({n_rows} sentences; target <= 1.3x)")
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for name in ("faithfulness_ours", "faithfulness_floor"):
                done = subprocess.run(
                    [sys.executable, str(HERE / "bench_attribution.py"), "--variant", name,
                     "--sentences", str(n_rows), "--lengths-file", str(Path(tmp) / "l.json"),
                     "--threads", "0"], check=True, capture_output=True, text=True)
                numbers = json.loads(done.stdout.strip().splitlines()[-1])
                if name not in best or numbers["seconds"][0] < best[name]["seconds"][0]:
                    best[name] = numbers
    ours, floor = best["faithfulness_ours"], best["faithfulness_floor"]
    print(f"ours {ours['seconds'][0]:.2f} s ({ours['rows']} forward rows, {ours['tokens']} "
          f"tokens), floor {floor['seconds'][0]:.2f} s ({floor['tokens_per_pass']} tokens per "
          f"pass): {ours['seconds'][0] / floor['seconds'][0]:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64, help="rows of the timed comparisons")
    parser.add_argument("--ray-rows", type=int, default=256,
                        help="rows of the Ray comparison (Ray's actors start in each run)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()

    import explain_models
    import torch

    import explain

    checkpoint = str(explain_models.ensure("sentiment"))
    loaded = explain.load_model(checkpoint)
    print(f"# bench_scale: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads),"
          f" explain {explain.__version__}, Python {platform.python_version()}")
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        data = _data(work, args.rows)
        import pandas as pd

        texts = pd.read_parquet(data)["text"].tolist()
        faithfulness_vs_floor(args.rows, args.repeats)
        engine_vs_memory(loaded, data, texts, work, args.repeats)
        if not args.skip_ray:
            ray_vs_local(loaded, _data(work, args.ray_rows), args.ray_rows, work, args.repeats)
        if not args.skip_rss:
            peak_rss(checkpoint, work)
        noop_resume(loaded, checkpoint, data, work, args.rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
