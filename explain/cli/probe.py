"""``explain probe``: association, counterfactual, representation and likelihood bias probes.

    explain probe weat --out weat/                              # 10 WEAT tests on word2vec
    explain probe weat --keep-removed --fold-case --out weat2/  # our variant of the word lists
    explain probe seat minilm --tests weat6,weat7 --out seat/   # SEAT on the MiniLM encoder
    explain probe counterfactual sentiment --axis religion --out cf/
    explain probe counterfactual sentiment --data reviews.csv --text-column text --swaps gender --out cf/
    explain probe representation minilm --data people.csv --text-column text --attribute gender --out r/
    explain probe crows-pairs MODEL --data crows_pairs_anonymized.csv --out crows/
    explain probe stereoset MODEL --data dev.json --out stereoset/

Each writes its result's ``tables()`` (CSV), its figure (PNG; ``FIGURES`` names the file) and
``meta.json`` into ``--out``, all at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from types import MappingProxyType

NAME = "probe"
HELP = "bias probes: weat, seat, counterfactual, representation, crows-pairs, stereoset"

#: Probe name -> what it does.
PROBES: Mapping[str, str] = MappingProxyType({
    "weat": "word embedding association tests on word vectors (default: the word2vec subset)",
    "seat": "sentence encoder association tests on a text model's pooled hidden states",
    "counterfactual": "swap identity terms in templates or real sentences; score changes",
    "representation": "linear probes per layer predicting a sensitive attribute",
    "crows-pairs": "CrowS-Pairs pair preference of a masked or causal LM (published CSV)",
    "stereoset": "StereoSet intrasentence lm/ss/icat scores (published JSON)",
})


def _common(parser: argparse.ArgumentParser, *, model: bool) -> None:
    if model:
        parser.add_argument("model", metavar="MODEL",
                            help="reference model (sentiment, ...), 'minilm', or a checkpoint "
                                 "directory")
    from ._output import add_output_arguments

    add_output_arguments(parser, default_out=None)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of WEAT/SEAT's balancing and sampled permutations and of the "
                             "representation probe's folds (default 0)")


#: Choices of the probes, named here so that ``--help`` imports no torch (tests/test_cli_fast.py
#: holds them equal to ``explain.fairness``'s ``P_VALUES``, ``POOLINGS`` and ``TESTS``).
P_VALUE_RULES = MappingProxyType({
    "caliskan2017": "share of partitions with a strictly greater statistic (Caliskan et al. 2017)",
    "conservative": "share of partitions with an at least as large statistic, the observed one "
                    "included (May et al. 2019, scipy.stats.permutation_test)"})
POOLING_NAMES = ("mean", "first", "last")
TEST_NAMES = ("wilcoxon", "t")


def _association(parser: argparse.ArgumentParser, *, p_value: str) -> None:
    parser.add_argument("--tests", metavar="NAME[,NAME]",
                        help="built-in tests (weat1..weat10; default all)")
    parser.add_argument("--n-permutations", dest="n_permutations", type=int, default=100_000,
                        help="permutations for the p-value (default 100000; exact when fewer "
                             "partitions exist)")
    parser.add_argument("--p-value", dest="p_value", default=p_value, choices=list(P_VALUE_RULES),
                        help=f"how partitions are counted (default {p_value}: "
                             f"{P_VALUE_RULES[p_value]})")
    parser.add_argument("--keep-removed", dest="keep_removed", action="store_true",
                        help="keep the words Caliskan et al. removed from the lists (our "
                             "variant; default: the published lists)")
    parser.add_argument("--no-balance", dest="balance", action="store_false",
                        help="keep target sets of unequal size (our variant; default: drop "
                             "words of the larger set at random, seeded, as Caliskan et al.)")
    parser.add_argument("--min-words", dest="min_words", type=int, default=6,
                        help="fewest words a target set needs, else the test is reported as not "
                             "computable (default 6, the smallest published set)")
    parser.add_argument("--min-share", dest="min_share", type=float, default=0.5,
                        help="least share of each word list that must be used (default 0.5)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="probe", metavar="PROBE", required=True)
    weat = sub.add_parser("weat", help=PROBES["weat"], description=PROBES["weat"])
    _common(weat, model=False)
    _association(weat, p_value="caliskan2017")
    weat.add_argument("--fold-case", dest="fold_case", action="store_true",
                      help="also look words up lower-cased (our variant; default: the listed "
                           "case, as the paper on cased GloVe)")

    seat = sub.add_parser("seat", help=PROBES["seat"], description=PROBES["seat"])
    _common(seat, model=True)
    _association(seat, p_value="conservative")
    seat.add_argument("--layer", type=int, default=-1,
                      help="hidden state to pool (0 = embeddings, -1 = last; default -1)")
    seat.add_argument("--pooling", default="mean", choices=POOLING_NAMES,
                      help="how token states become one sentence vector (default mean)")

    cf = sub.add_parser("counterfactual", help=PROBES["counterfactual"],
                        description=PROBES["counterfactual"])
    _common(cf, model=True)
    cf.add_argument("--axis", default="gender",
                    help="identity axis for templates (gender, gender_names, race, race_names, "
                         "religion, age, nationality, disability, sexual_orientation)")
    cf.add_argument("--data", metavar="FILE", help="real sentences to swap terms in")
    cf.add_argument("--text-column", "--text", dest="text", metavar="COL", default="text",
                    help="column of sentences")
    cf.add_argument("--swaps", default="gender",
                    help="swap list for --data (gender, gender_names, race_names)")
    cf.add_argument("--target", help="class whose probability is the score")
    cf.add_argument("--test", default="wilcoxon", choices=TEST_NAMES,
                    help="paired test of the score changes (default wilcoxon)")

    rep = sub.add_parser("representation", help=PROBES["representation"],
                         description=PROBES["representation"])
    _common(rep, model=True)
    rep.add_argument("--data", required=True, metavar="FILE", help="inputs and the attribute")
    rep.add_argument("--attribute", required=True, metavar="COL", help="attribute to probe")
    rep.add_argument("--text-column", "--text", dest="text", metavar="COL",
                     help="column of texts (text models)")
    rep.add_argument("--layers", metavar="NAME[,NAME]", help="module paths (default: every "
                                                                  "block)")
    rep.add_argument("--n-splits", dest="n_splits", type=int, default=5)

    for name in ("crows-pairs", "stereoset"):
        lm = sub.add_parser(name, help=PROBES[name], description=PROBES[name])
        _common(lm, model=True)
        lm.add_argument("--data", required=True, metavar="FILE",
                        help="the published " + ("CSV" if name == "crows-pairs" else "JSON"))


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..errors import ExplainWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExplainWarning)
        code = _run(args)
    for warning in caught:
        print(f"warning: {warning.message}")
    return code


#: Probe -> the file name of its one figure (counterfactual: one file per plot kind).
FIGURES: Mapping[str, str] = MappingProxyType({
    "weat": "weat", "seat": "seat", "representation": "probe_accuracy",
    "crows-pairs": "crows_pairs", "stereoset": "stereoset",
})


def _run(args: argparse.Namespace) -> int:
    from .. import fairness
    from ..checks import as_names, check_columns
    from ..text import read_texts
    from ._output import Outputs, figure_formats, read_table
    from ._resolve import resolve_model

    outputs = Outputs(args.out, overwrite=args.overwrite, formats=figure_formats(args.format))
    tests = as_names(args.tests, "tests") if getattr(args, "tests", None) else None
    if args.probe in ("weat", "seat"):
        options = {"tests": tests, "keep_removed": args.keep_removed, "balance": args.balance,
                   "min_words": args.min_words, "min_share": args.min_share,
                   "p_value": args.p_value, "n_permutations": args.n_permutations,
                   "seed": args.seed}
        if args.probe == "weat":
            result = fairness.weat(fold_case=args.fold_case, **options)
        else:
            result = fairness.seat(resolve_model(args.model, progress=not args.quiet), layer=args.layer,
                                   pooling=args.pooling, **options)
    elif args.probe == "counterfactual":
        texts = None
        if args.data is not None:
            texts = read_texts(read_table(args.data), args.text)
        result = fairness.counterfactual(resolve_model(args.model, progress=not args.quiet), texts,
                                         axis=args.axis, swaps=args.swaps, target=args.target,
                                         test=args.test)
    elif args.probe == "representation":
        frame = read_table(args.data)
        check_columns(frame, {"attribute": args.attribute}, where="the data")
        model = resolve_model(args.model, progress=not args.quiet)
        if model.is_text:
            if args.text is None:
                raise ValueError("a text model needs --text-column COL (the column of texts)")
            inputs = read_texts(frame, args.text)
        else:
            inputs = frame
        layers = as_names(args.layers, "layers") if args.layers else None
        result = fairness.representation_probe(model, inputs, frame[args.attribute],
                                               layers=layers, n_splits=args.n_splits,
                                               seed=args.seed)
    elif args.probe == "crows-pairs":
        result = fairness.crows_pairs(resolve_model(args.model, progress=not args.quiet), args.data)
    else:
        result = fairness.stereoset(resolve_model(args.model, progress=not args.quiet), args.data)
    for name, table in result.tables().items():
        outputs.table(name, table)
    if args.probe == "counterfactual":
        for kind in result.applicable_plots():
            outputs.figure(kind, result.plot(kind))
    else:
        outputs.figure(FIGURES[args.probe], result.plot())
    outputs.json("meta", result.meta)
    written = outputs.write()
    print(result.summary())
    print(f"wrote {len(written)} files to {args.out}")
    return 0
