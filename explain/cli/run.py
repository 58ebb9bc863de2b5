"""``explain run ANALYSIS MODEL --data PATH --out DIR``: one analysis over a whole dataset, in
resumable Parquet shards (``explain.run``).

``ANALYSIS``: ``predict``, ``score``, ``attribute``, ``attention`` or ``counterfactual`` (the
keys of ``explain.run.RUN_ANALYSES``). ``MODEL``: a checkpoint directory or a reference model
name (trained on first use). ``--data``: a ``.csv``/``.tsv``/``.parquet`` file, a directory of
``.parquet`` files or a built-in dataset name. Rerun the same command to resume a run that was
stopped; ``--overwrite`` starts the run in ``--out`` again. The analysis's options
(``--n-steps``, ``--target``, ...) are passed only when given, so the analysis's defaults apply
(and an option the analysis does not take is an error naming the ones it does).
"""

from __future__ import annotations

import argparse

NAME = "run"
HELP = "one analysis over every row of a dataset: resumable Parquet shards and a manifest"

#: flag destination -> option name of ``explain.run``, passed only when the flag is given.
_OPTIONS = ("n_steps", "faithfulness", "target", "batch_size", "max_length", "seed", "swaps")


#: The built-in run analyses and engines, named here so that ``--help`` imports no torch
#: (tests/test_cli_fast.py holds them equal to ``explain.run``'s; ``run`` checks the analysis
#: against ``RUN_ANALYSES``, registered ones included).
ANALYSIS_NAMES = ("predict", "score", "attribute", "attention", "counterfactual")
ENGINE_NAMES = ("local", "ray")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("analysis", metavar="ANALYSIS",
                        help=f"one of: {', '.join(ANALYSIS_NAMES)} (or a registered run "
                             f"analysis)")
    parser.add_argument("model", metavar="MODEL",
                        help="a checkpoint directory or a reference model name")
    parser.add_argument("--data", required=True, metavar="PATH",
                        help="a .csv, .tsv or .parquet file, a directory of .parquet files, or "
                             "a dataset name")
    parser.add_argument("--out", required=True, metavar="DIR", help="the run directory")
    parser.add_argument("--engine", default="local", choices=ENGINE_NAMES,
                        help="local (this process) or ray (Ray Data actors) (default: local)")
    parser.add_argument("--chunk-size", type=int, default=None, metavar="N",
                        help="rows per shard (default: 256)")
    parser.add_argument("--method", nargs="+", action="extend", default=None, metavar="M",
                        help="attribution methods of 'attribute' (default: "
                             "integrated_gradients)")
    parser.add_argument("--text-column", default=None, metavar="C",
                        help="the column of texts (default: the model card's, else 'text')")
    parser.add_argument("--label", default=None, metavar="C",
                        help="a column of true labels copied into the tables")
    parser.add_argument("--keep", nargs="+", action="extend", default=None, metavar="C",
                        help="columns copied into the tables (default: none; for 'score' every "
                             "column but the text and label)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="Ray actors (--engine ray)")
    parser.add_argument("--address", default=None, metavar="A",
                        help="Ray cluster address (--engine ray; default: RAY_ADDRESS, else a "
                             "local instance)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the explain run in --out (never a directory with other "
                             "files)")
    parser.add_argument("--quiet", action="store_true",
                        help="one line per shard on stderr instead of the progress bar")
    options = parser.add_argument_group("options of the analyses (passed only when given)")
    options.add_argument("--n-steps", default=None,
                         help="attribute: integration steps, or 'auto' (default: 50)")
    options.add_argument("--faithfulness", default=None,
                         help="attribute: faithfulness definition (default: aopc)")
    options.add_argument("--no-faithfulness", action="store_const", const=False,
                         dest="faithfulness", help="attribute: skip the faithfulness measures")
    options.add_argument("--target", default=None,
                         help="attribute, counterfactual: the explained or scored class")
    options.add_argument("--batch-size", type=int, default=None, help="inputs per batch")
    options.add_argument("--max-length", type=int, default=None, help="tokens per text")
    options.add_argument("--seed", type=int, default=None, help="seed of sampling methods")
    options.add_argument("--swaps", default=None,
                         help="counterfactual: the swap list (default: gender)")


def _n_steps(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--n-steps must be an integer or 'auto', got {value!r}") from None


def run(args: argparse.Namespace) -> int:
    from ..checks import one_of
    from ..run import DEFAULT_CHUNK_SIZE, RUN_ANALYSES
    from ..run import run as run_analysis
    from ._resolve import resolve_model

    one_of(args.analysis, RUN_ANALYSES, "run analysis")   # before a model is loaded or trained

    options = {name: getattr(args, name) for name in _OPTIONS
               if getattr(args, name) is not None}
    if "n_steps" in options:
        options["n_steps"] = _n_steps(options["n_steps"])
    model = resolve_model(args.model, progress=not args.quiet)
    result = run_analysis(
        args.analysis, model, args.data, args.out, engine=args.engine,
        chunk_size=DEFAULT_CHUNK_SIZE if args.chunk_size is None else args.chunk_size,
        methods=args.method, text_column=args.text_column, label=args.label, keep=args.keep,
        overwrite=args.overwrite, progress=False if args.quiet else None,
        workers=args.workers, address=args.address, **options)
    print(result.summary())
    return 0
