"""The `explain` command line. It only parses arguments and calls the public API.

Each subcommand lives in its own module of this package, which defines ``NAME``, ``HELP`` and
``add_arguments(parser)`` and ``run(args) -> int``; ``SUBCOMMANDS`` lists them in help order.
Only the arguments of the subcommand named on the command line are built (its module imports
what its choices need), so ``explain --help`` and ``--version`` import no torch or pandas.
Exit codes: 0 done, 1 an error in the input (one line naming it and the fix), 2 a usage error
(argparse), 3 an internal error (one line; ``explain --debug ...`` shows the traceback), 130
interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Collection, Sequence

__all__ = ["SUBCOMMANDS", "console_main", "main"]

SUBCOMMANDS = ("models", "attention", "report", "audit", "probe", "attribute", "run")


def build_parser(commands: Collection[str] = SUBCOMMANDS) -> argparse.ArgumentParser:
    """The parser of ``explain``: every subcommand listed, the arguments of those in
    ``commands`` built (all by default)."""
    parser = argparse.ArgumentParser(
        prog="explain",
        description="Interpretability and fairness analysis for PyTorch and Hugging Face models.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"explain {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (to report a bug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        if name in commands:
            module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from ..errors import ExplainWarning

    if issubclass(category, ExplainWarning):
        print(f"explain: warning: {message}", file=file or sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="",
              file=file or sys.stderr)


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: its first word that is not an option (``explain``'s own
    options take no value); ``None`` for none or an unknown one (argparse then says so)."""
    word = next((w for w in argv if not w.startswith("-")), None)
    return word if word in SUBCOMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_in(argv)
    parser = build_parser(() if command is None else (command,))
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except (ValueError, KeyError, TypeError, FileNotFoundError, FileExistsError,
            NotADirectoryError, PermissionError, OSError, ImportError) as error:
        if args.debug:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"explain {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"explain {args.command}: interrupted (what is written is complete: outputs are "
              f"put in place whole, and a run resumes from its finished shards)", file=sys.stderr)
        return 130
    except Exception as error:  # a bug of ours: one line, the traceback with --debug
        if args.debug:
            raise
        print(f"explain {args.command}: internal error: {type(error).__name__}: {error}; rerun "
              f"with --debug for the traceback (explain --debug {args.command} ...)",
              file=sys.stderr)
        return 3


def console_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``explain`` command: ``main`` with explain's warnings shown as one
    plain line each (``main`` itself leaves warning display to its caller, e.g. pytest)."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
