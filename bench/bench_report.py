"""Report assembly for 100 examples: where the time goes once the analyses are done.

Runs the analyses once (not timed), builds a report that shows 100 examples (predictions,
selected-examples table, attention with the interactive view, word attributions with their
summaries, global importance), then times ``Report.save`` (figure drawing, PNG encoding,
tables, views, CSV, HTML, manifest) over ``--repeats`` runs and prints the split.

The floor, measured in the same run: drawing + encoding the same figures with matplotlib and
writing the same tables with ``DataFrame.to_csv``, nothing else. The ratio assembly / floor is
what the report adds on top (HTML, escaping, data URIs, manifest, atomic rename).

    python bench/bench_report.py                # reference sentiment model (trained on first use)
    python bench/bench_report.py --tiny         # tiny random BERT (seconds; for a quick check)
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build(n_examples: int, tiny: bool):
    import numpy as np
    import pandas as pd

    import explain
    from explain.report import Report, predict, select_examples

    if tiny:
        from explain_models import tiny as tiny_models

        model = tiny_models.bert_classifier()
        rng = np.random.default_rng(0)
        words = ["good", "bad", "film", "plot", "warm", "dull", "acting", "story", "funny",
                 "boring", "the", "a", "and", "was", "is"]
        data = pd.DataFrame({"text": [" ".join(rng.choice(words, size=rng.integers(6, 20)))
                                      for _ in range(n_examples)],
                             "label": rng.choice(["neg", "pos"], n_examples)})
    else:
        import explain_models

        model = explain.load_model(explain_models.ensure("sentiment"))
        data = pd.read_csv(explain_models.path("sentiment") / "heldout.csv").head(n_examples)
    start = time.perf_counter()
    predictions = predict(model, data, label="label")
    chosen = select_examples(predictions.confidence, predicted=predictions.predicted,
                             labels=predictions.labels, n_examples=n_examples)
    texts = [data["text"].iloc[r] for r in chosen["row"]]
    attention = explain.attention(model, texts)
    attributions = explain.attribute(model, texts, method="saliency", faithfulness=False,
                                     progress=False)
    analyses_seconds = time.perf_counter() - start

    report = Report(name="bench", title="Report assembly benchmark", seed=0)
    report.add_model(model)
    report.add_dataset("bench rows", data)
    report.add(predictions, section="predictions", title="Predictions", plots="all")
    report.add(chosen.assign(text=texts), section="predictions", title="Examples",
               max_rows=n_examples)
    report.add(attention, section="attention", title="Attention", plots="head_summary",
               data=attention.head_statistics(), view=True)
    for k in range(3):
        rollout = attention.rollout(k)
        report.add(attention, section="attention", title=f"Rollout {k}", plots="rollout",
                   plot_options={"text_id": k}, view=False,
                   data=pd.DataFrame({"word_index": range(len(rollout)), "rollout": rollout}))
    report.add(attributions, section="attributions", title="Word attributions", plots="text",
               plot_options={"max_inputs": 8}, frame_options={"level": "word"})
    explanations = attributions.explanations()
    report.add(explanations[["input_id", "input", "predicted_label", "summary"]],
               section="attributions", title="Summaries", max_rows=n_examples)
    report.add(attributions, section="attributions", title="Global importance", plots="global",
               data=attributions.global_importance())
    return report, analyses_seconds


def floor(report) -> float:
    """Draw + encode the same figures and write the same tables, with nothing around them."""

    start = time.perf_counter()
    for item in report._items:
        if item.kind == "result":
            for kind in item.plots:
                fig = item.payload.plot(kind, **item.plot_options)
                fig.savefig(io.BytesIO(), format="png", dpi=150)
            frame = item.data if item.data is not None else \
                item.payload.to_frame(**item.frame_options)
            frame.to_csv(io.StringIO(), index=False)
        elif item.kind == "table":
            item.payload.to_csv(io.StringIO(), index=False)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="tiny random BERT instead of the "
                                                             "reference sentiment model")
    args = parser.parse_args(argv)
    import explain

    report, analyses = build(args.examples, args.tiny)
    totals, splits, floors, sizes = [], [], [], []
    with tempfile.TemporaryDirectory() as root:
        for repeat in range(args.repeats):
            start = time.perf_counter()
            path = report.save(Path(root) / str(repeat))
            totals.append(time.perf_counter() - start)
            import json

            manifest = json.loads((path / "manifest.json").read_text())
            splits.append({k.removeprefix("report."): v
                           for k, v in manifest["run"]["timings_seconds"].items()
                           if k.startswith("report.")})
            sizes.append((path / "index.html").stat().st_size)
            floors.append(floor(report))
    total = statistics.median(totals)
    split = {k: statistics.median(s[k] for s in splits) for k in splits[0]}
    figures = split["draw_figures"] + split["encode_png"]
    print(f"report assembly, {args.examples} examples ({'tiny BERT' if args.tiny else 'reference sentiment model'}); "
          f"median of {args.repeats}")
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python "
          f"{platform.python_version()}, explain {explain.__version__}; analyses (not timed "
          f"below) took {analyses:.1f} s")
    print(f"  total save()            {total:7.3f} s   index.html {sizes[0] / 1e6:.2f} MB")
    for key in ("draw_figures", "encode_png", "tables", "views", "write_figures", "write_data",
                "write_html"):
        print(f"  {key:<22}  {split[key]:7.3f} s   {100 * split[key] / total:5.1f}%")
    other = total - split["render"] - split["write_figures"] - split["write_data"] - \
        split["write_html"]
    print(f"  {'manifest + rename':<22}  {other:7.3f} s   {100 * other / total:5.1f}%")
    n_figures = sum(len(i.plots) if i.kind == "result" else i.kind == "figure"
                    for i in report._items)
    print(f"figure rendering (draw + encode, {n_figures} figures: a fixed number, whatever the "
          f"number of examples) share: {100 * figures / total:.1f}% of assembly; with the "
          f"attention view (which draws a static fallback picture): "
          f"{100 * (figures + split['views']) / total:.1f}%; of the whole run (analyses + "
          f"assembly): {100 * (figures + split['views']) / (total + analyses):.1f}%")
    print(f"floor (matplotlib savefig + to_csv of the same figures and tables): "
          f"{statistics.median(floors):.3f} s; assembly / floor = "
          f"{total / statistics.median(floors):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
