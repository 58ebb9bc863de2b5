"""``explain models``: train (on first use) or load the reference models and print their cards.

The recipes live in the ``explain_models`` package (the repository's ``models/`` directory);
checkpoints are cached under ``$EXPLAIN_CACHE/models``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

NAME = "models"
HELP = "train (first use) or load the reference models and print their model cards"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="reference models to show: sentiment, compas, adult, digits, lm, "
                             "mlm, seq2seq, vit, imagenet (default: all)")
    parser.add_argument("--retrain", action="store_true",
                        help="train again even when a cached checkpoint exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars while training")


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _number(value: Any) -> str:
    """A metric: a whole number with thousands separators, else four significant digits."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{int(value):,}" if float(value).is_integer() else f"{value:.4g}"
    return str(value)


def format_card(card: Mapping[str, Any], *, path: str, weights_sha256: str | None = None) -> str:
    """A model card as a readable block of text (one ``key  value`` line per section)."""
    data = card.get("data", {})
    split = card.get("split", {})
    metrics = card.get("metrics", {})
    title = f"== {card.get('name', '?')} "
    lines = [title + "=" * max(0, 78 - len(title)), str(card.get("description", ""))]

    source = data.get("source_package", "?")
    lines.append(f"  data      {data.get('loader', '?')} ({source}): "
                 f"{_count(data.get('rows', '?'))} rows; label column: {data.get('label', '?')}")
    lines.append(f"            licence: {data.get('licence', '?')}")
    used = split.get("train_rows_used")
    train = _count(split.get("train_rows", "?"))
    if used is not None and used != split.get("train_rows"):
        train += f" ({_count(used)} used)"
    lines.append(f"  split     {split.get('method', '?')}: {train} train / "
                 f"{_count(split.get('heldout_rows', '?'))} held-out, seed {card.get('seed')}")
    encoding = card.get("feature_encoding")
    if encoding:
        lines.append(f"  features  numeric {', '.join(encoding['numeric']['columns'])}; "
                     f"one-hot {', '.join(encoding['categorical']['columns'])} "
                     f"-> {encoding['n_features']} inputs")
        excluded = encoding.get("not_features", {}).get("protected", [])
        if excluded:
            lines.append(f"            not inputs (kept for audits): {', '.join(excluded)}")
    accuracy = metrics.get("heldout_accuracy")
    baseline = metrics.get("majority_baseline_accuracy")
    if accuracy is not None and baseline is not None:
        text = (f"held-out accuracy {accuracy:.3f} vs majority baseline {baseline:.3f} "
                f"({100 * (accuracy - baseline):+.1f} points)")
        if "heldout_auc" in metrics:
            text += f", AUC {metrics['heldout_auc']:.3f}"
        lines.append(f"  metrics   {text}")
    elif metrics:  # language models, the seq2seq, ImageNet: each metric with its baseline
        shown = [f"{key.replace('_', ' ')} {_number(value)}" for key, value in metrics.items()]
        lines.append(f"  metrics   {'; '.join(shown)}")
    lines.append(f"  training  {card.get('training_time_seconds', '?')} s")
    lines.append(f"  path      {path}")
    if weights_sha256:
        lines.append(f"  weights   sha256 {weights_sha256[:16]}...")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .. import load_model
    from ._resolve import reference_checkpoint, reference_names

    names = list(args.names) or list(reference_names())
    unknown = [n for n in names if n not in reference_names()]
    if unknown:
        raise ValueError(f"unknown reference model(s) {', '.join(map(repr, unknown))}; valid: "
                         f"{', '.join(reference_names())}")
    for index, name in enumerate(dict.fromkeys(names)):
        path = reference_checkpoint(name, retrain=args.retrain, progress=not args.quiet)
        loaded = load_model(path)
        if index:
            print()
        print(format_card(loaded.card, path=str(path),
                          weights_sha256=loaded.provenance.get("weights_sha256")), flush=True)
    return 0
