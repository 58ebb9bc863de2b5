"""``explain attention MODEL TEXT...``: attention figures and the standalone interactive view.

Writes into ``--out`` (default ``attention``), for each text ``i``: ``text{i}_head`` (one head),
``text{i}_grid`` (every layer and head), ``text{i}_rollout`` and ``text{i}_flow`` (flow only for
texts of at most ``FLOW_MAX_TOKENS`` tokens), then ``head_summary`` and ``attention.html`` (the
interactive view, one offline file). Figures are PNG unless ``--format`` says otherwise. Files
are first written to a staging folder beside ``--out`` and moved in at the end (``_output.
files_into``), so an error never leaves a half-written set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
    parser.add_argument("--out", default="attention", help="output directory (default: attention)")
    parser.add_argument("--format", default="png",
                        help="comma-separated figure formats: png, svg, pdf (default: png)")


def _formats(text: str) -> tuple[str, ...]:
    from ..plotting import FORMATS

    formats = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise ValueError(f"unknown figure format(s) {', '.join(map(repr, unknown)) or repr(text)}; "
                         f"valid: {', '.join(FORMATS)}")
    return formats


def run(args: argparse.Namespace) -> int:
    from .. import attention
    from ..attention import HEAD_STATISTICS, LEVELS
    from ..attention.result import FLOW_MAX_TOKENS  # where applicable_plots reads it
    from ..checks import one_of
    from ..plotting import save_figure
    from ._output import files_into
    from ._resolve import resolve_model

    formats = _formats(args.format)
    one_of(args.level, LEVELS, "level")
    one_of(args.statistic, HEAD_STATISTICS, "statistic")
    loaded = resolve_model(args.model, progress=True)
    result = attention(loaded, args.texts, max_length=args.max_length)
    layer = result.layers[-1] if args.layer is None else args.layer
    for option, value, valid in (("--layer", layer, result.layers),
                                 ("--head", args.head, result.heads)):
        if value not in valid:
            raise ValueError(f"{option} {value} does not exist; {loaded.name} has {len(valid)} "
                             f"{option[2:]}s (valid: 0..{len(valid) - 1})")

    out = Path(args.out)
    written: list[str] = []
    with files_into(out) as staging:

        def save(figure, name: str) -> None:
            written.extend(p.name for p in save_figure(figure, staging / name, formats=formats))

        for i in range(len(result.texts)):
            kinds = result.applicable_plots(text_id=i)
            save(result.plot("head", text_id=i, layer=layer, head=args.head, level=args.level),
                 f"text{i}_head")
            for kind in ("grid", "rollout", "flow"):
                if kind in kinds:
                    save(result.plot(kind, text_id=i, level=args.level), f"text{i}_{kind}")
            if "flow" not in kinds:
                print(f"text {i}: {len(result.tokens(i))} tokens, over the attention-flow limit "
                      f"of {FLOW_MAX_TOKENS}; no flow figure")
        save(result.plot("head_summary", statistic=args.statistic), "head_summary")
        result.save_html(staging / "attention.html")
        written.append("attention.html")
    for i, truncated in enumerate(result.truncated):
        if truncated:
            print(f"text {i} was truncated to {result.meta['parameters']['max_length']} tokens "
                  f"(marked in the figures)")
    print(f"wrote {len(written)} files to {out}/: {', '.join(written)}")
    return 0
