"""``explain attribute MODEL --data FILE``: attribution scores and figures for a dataset.

``MODEL``: a checkpoint directory, or a reference model name (``sentiment``, ``compas``,
``adult``, ``digits``; trained on first use). ``--data``: a ``.csv``, ``.tsv``, ``.parquet``,
``.jsonl`` or ``.txt`` (one text per line) file; text models read ``--text-column`` (and
``--pair-column``), tabular models every column the model needs; an image model reads a
``.npy`` array ``(N, C, H, W)``.

Writes the directory ``--out`` (default ``attributions``; an existing one only with
``--overwrite``): the result's ``tables()`` in ``--table-format``: ``scores``
(``to_frame()``, one row per word, feature or patch), ``explanations`` (one row per
input: prediction, trust numbers, summary sentence), ``global_importance`` (text and
tabular); and each of its ``applicable_plots()`` in ``--format`` (default PNG; text: ``text``, ``bar``,
``waterfall``, ``global``; tabular: ``waterfall``, ``bar``, ``global``; image: ``image``,
``bar``, ``waterfall``; and ``deletion`` unless ``--no-faithfulness``). ``--method layer`` runs
``attribute_layer`` and writes ``scores`` and the ``layer`` figure. Everything is written at
once (``_output.Outputs``), so an error never leaves a half-written directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "attribute"
HELP = "attribution scores (CSV/Parquet), trust numbers, summaries and figures for a dataset"

#: ``--method layer``: ``explain.attribution.attribute_layer`` (neurons of a layer, not inputs).
LAYER = "layer"
#: The built-in methods and faithfulness definitions, named here so that ``--help`` imports no
#: torch (tests/test_cli_fast.py holds them equal to ``explain.attribution``'s); ``run`` checks
#: ``--method`` against ``METHODS``, registered methods included.
METHOD_NAMES = ("integrated_gradients", "saliency", "input_x_gradient", "deeplift",
                "gradient_shap", "smoothgrad", "occlusion", "feature_ablation",
                "shapley_sampling", "lime", "kernel_shap", "gradcam")
FAITHFULNESS_NAMES = ("aopc", "eraser")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="a checkpoint directory or a reference model name (sentiment, "
                             "compas, adult, digits)")
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="inputs: .csv, .tsv, .parquet, .jsonl, .txt (one text per line) or .npy "
                             "(images)")
    parser.add_argument("--method", default="integrated_gradients",
                        help=f"one of: {', '.join(METHOD_NAMES)} (or a registered method), or "
                             f"{LAYER} (the neurons of a layer: attribute_layer) (default: "
                             f"integrated_gradients)")
    parser.add_argument("--target", default=None,
                        help="label to explain, or a contrast 'A-B' (default: the prediction)")
    parser.add_argument("--text-column", default="text", help="text column (default: text)")
    parser.add_argument("--pair-column", default=None,
                        help="column of second texts for pair classifiers")
    parser.add_argument("--limit", type=int, default=None,
                        help="explain only the first N rows")
    parser.add_argument("--n-steps", default="50",
                        help="integration steps, or 'auto' (adaptive; default: 50)")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs per batch")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per text")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling methods")
    parser.add_argument("--faithfulness", default="aopc", choices=FAITHFULNESS_NAMES,
                        help="definition of comprehensiveness and sufficiency: aopc (ours: the "
                             "top 10-50%% of words, features or patches by signed score replaced "
                             "by the baseline) or eraser (DeYoung et al. 2020 as ferret computes "
                             "it; text only) (default: aopc)")
    parser.add_argument("--no-faithfulness", action="store_true",
                        help="skip the faithfulness measures")
    from ._output import add_output_arguments

    add_output_arguments(parser, default_out="attributions", tables=True)


def _read(path: Path, loaded, args):
    import numpy as np
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {str(path)!r}")
    suffix = path.suffix.lower()
    if loaded.task == "image-classification":
        if suffix != ".npy":
            raise ValueError(f"an image model reads a .npy array (N, C, H, W), got {path.name!r}")
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            first = str(error).split(".")[0]
            raise ValueError(f"cannot read {str(path)!r} as a NumPy array ({first}); write the "
                             f"images with numpy.save(path, array) as a plain (N, C, H, W) "
                             f"float array (explain never loads pickled arrays)") from None
        return data[:args.limit] if args.limit else data, None
    if suffix == ".txt":
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"cannot read {str(path)!r}: it is not UTF-8 text (byte "
                             f"{error.start}); save it as UTF-8") from None
        lines = [line for line in text.splitlines() if line.strip()]
        frame = pd.DataFrame({args.text_column: lines})
    elif suffix in (".csv", ".tsv", ".parquet", ".jsonl"):
        from ..report.data import read_table_file

        frame = read_table_file(path)
    else:
        raise ValueError(f"unknown data format {suffix!r}; use .csv, .tsv, .parquet, .jsonl, .txt "
                         f"or .npy")
    if args.limit:
        frame = frame.head(args.limit)
    if frame.empty:
        raise ValueError(f"{str(path)!r} holds no rows")
    if loaded.is_text:
        from ..checks import check_columns
        from ..text import read_texts

        check_columns(frame, {"--text-column": args.text_column,
                              "--pair-column": args.pair_column}, where=repr(str(path)))
        pairs = None
        if args.pair_column is not None:
            pairs = read_texts(frame, args.pair_column)
        return read_texts(frame, args.text_column), pairs
    return frame, None


def run(args: argparse.Namespace) -> int:
    from ..attribution import METHODS, attribute, attribute_layer
    from ..checks import one_of, positive_int
    from ._output import Outputs, figure_formats
    from ._resolve import resolve_model

    one_of(args.method, (*METHODS, LAYER), "method")
    n_steps: int | str = args.n_steps
    if n_steps != "auto":
        try:
            n_steps = int(n_steps)
        except ValueError:
            raise ValueError(f"--n-steps must be an integer or 'auto', got {args.n_steps!r}"
                             ) from None
    if args.limit is not None:
        positive_int(args.limit, "--limit", fix="pass the number of rows to explain")
    outputs = Outputs(args.out, overwrite=args.overwrite, formats=figure_formats(args.format),
                      table_format=args.table_format)
    loaded = resolve_model(args.model, progress=not args.quiet)
    inputs, pairs = _read(Path(args.data), loaded, args)
    common = {"target": args.target, "n_steps": n_steps, "batch_size": args.batch_size,
              "max_length": args.max_length, "progress": False if args.quiet else None}
    if pairs is not None:
        common["text_pairs"] = pairs
    if args.method == LAYER:
        result = attribute_layer(loaded, inputs, **common)
    else:
        result = attribute(loaded, inputs, method=args.method, seed=args.seed,
                           faithfulness=False if args.no_faithfulness else args.faithfulness,
                           **common)

    for name, table in result.tables().items():
        outputs.table(name, table)
    for kind in result.applicable_plots():
        outputs.figure(kind, result.plot(kind))
    written = [p.name for p in outputs.write()]
    print(result.summary())
    if args.method != LAYER:
        for sentence in result.sentences()[:3]:
            print(f"  {sentence}")
    print(f"wrote {len(written)} files to {args.out}/: {', '.join(written)}")
    return 0
