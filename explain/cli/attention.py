"""``explain attention MODEL TEXT...``: attention figures and the standalone interactive view.

Writes the directory ``--out`` (default ``attention``; an existing one only with
``--overwrite``): for each text ``i``: ``text{i}_head`` (one head), ``text{i}_grid`` (every
layer and head), ``text{i}_rollout`` and ``text{i}_flow`` (flow only for texts of at most
``FLOW_MAX_TOKENS`` tokens), then ``head_summary``, ``attention.html`` (the interactive view, one
offline file) and the weights as tables: ``attention.<table format>`` (``to_frame()``: one row
per layer, head, query and key) and ``head_statistics.<table format>``. Figures are PNG unless
``--format`` says otherwise. Everything is written at once (``_output.Outputs``), so an error
never leaves a half-written directory.
"""

from __future__ import annotations

import argparse

NAME = "attention"
HELP = "attention figures (head, grid, rollout, flow, head summary) and the interactive view"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="a checkpoint directory, or 'sentiment' for the reference model")
    parser.add_argument("texts", nargs="+", metavar="TEXT", help="one or more texts")
    parser.add_argument("--layer", type=int, default=None,
                        help="layer of the single-head figure (default: the last)")
    parser.add_argument("--head", type=int, default=0, help="head of the single-head figure")
    parser.add_argument("--level", default="word", help="token or word (default: word)")
    parser.add_argument("--statistic", default="entropy",
                        help="head statistic of the head_summary figure (default: entropy)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="tokens per text (default: the model's limit)")
    from ._output import add_output_arguments

    add_output_arguments(parser, default_out="attention", tables=True)


def run(args: argparse.Namespace) -> int:
    from .. import attention
    from ..attention import HEAD_STATISTICS, LEVELS
    from ..attention.result import FLOW_MAX_TOKENS  # where applicable_plots reads it
    from ..checks import one_of
    from ._output import Outputs, figure_formats
    from ._resolve import resolve_model

    one_of(args.level, LEVELS, "level")
    one_of(args.statistic, HEAD_STATISTICS, "statistic")
    outputs = Outputs(args.out, overwrite=args.overwrite, formats=figure_formats(args.format),
                      table_format=args.table_format)
    loaded = resolve_model(args.model, progress=not args.quiet)
    result = attention(loaded, args.texts, max_length=args.max_length)
    layer = result.layers[-1] if args.layer is None else args.layer
    for option, value, valid in (("--layer", layer, result.layers),
                                 ("--head", args.head, result.heads)):
        if value not in valid:
            raise ValueError(f"{option} {value} does not exist; {loaded.name} has {len(valid)} "
                             f"{option[2:]}s (valid: 0..{len(valid) - 1})")

    for i in range(len(result.texts)):
        kinds = result.applicable_plots(text_id=i)
        outputs.figure(f"text{i}_head", result.plot("head", text_id=i, layer=layer,
                                                    head=args.head, level=args.level))
        for kind in ("grid", "rollout", "flow"):
            if kind in kinds:
                outputs.figure(f"text{i}_{kind}", result.plot(kind, text_id=i, level=args.level))
        if "flow" not in kinds:
            print(f"text {i}: {len(result.tokens(i))} tokens, over the attention-flow limit "
                  f"of {FLOW_MAX_TOKENS}; no flow figure")
    outputs.figure("head_summary", result.plot("head_summary", statistic=args.statistic))
    outputs.file("attention.html", result.save_html)
    outputs.table("attention", result.to_frame(level=args.level))
    outputs.table("head_statistics", result.head_statistics())
    written = [p.name for p in outputs.write()]
    for i, truncated in enumerate(result.truncated):
        if truncated:
            print(f"text {i} was truncated to {result.meta['parameters']['max_length']} tokens "
                  f"(marked in the figures)")
    print(f"wrote {len(written)} files to {args.out}/: {', '.join(written)}")
    return 0
