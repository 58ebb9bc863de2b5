"""How subcommands write their files: always atomically, through ``explain.staging``.

One convention for every subcommand: ``--out DIR`` is the directory the command writes (checked
before any work: an existing, non-empty one is kept unless ``--overwrite``, which replaces it
as a whole and only if explain wrote it); ``--format`` the figure formats, ``--table-format``
the table format where there are tables, ``--quiet`` no progress bars (``add_output_arguments``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..staging import check_target, staged_directory

__all__ = ["Outputs", "add_output_arguments", "figure_formats", "read_table", "slug"]


def add_output_arguments(parser, *, default_out: str | None, tables: bool = False,
                         figures: bool = True) -> None:
    """``--out``, ``--overwrite``, ``--format`` (figures), ``--table-format`` and ``--quiet``,
    the same on every subcommand."""
    if default_out is None:
        parser.add_argument("--out", required=True, metavar="DIR",
                            help="the output directory (written whole; see --overwrite)")
    else:
        parser.add_argument("--out", default=default_out, metavar="DIR",
                            help=f"the output directory (default: {default_out})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out (only a directory explain wrote)")
    if figures:
        parser.add_argument("--format", default="png", metavar="FORMATS",
                            help="comma-separated figure formats: png, svg, pdf (default: png)")
    if tables:
        parser.add_argument("--table-format", default="parquet", choices=("parquet", "csv"),
                            help="table format (default: parquet)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def figure_formats(text: str) -> tuple[str, ...]:
    """The figure formats of ``--format`` (comma-separated), checked."""
    from ..plotting import figure_formats as checked

    return checked([part.strip().lower() for part in text.split(",") if part.strip()])


def slug(text: str) -> str:
    """A file-name-safe version of a feature name ("race & sex" -> "race_x_sex")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace(" & ", "_x_")).strip("_") or "x"


def read_table(spec: str | None, model_name: str | None = None):
    """A data file or a built-in dataset name (``explain.report.load_data``), or
    (``None``) a reference model's held-out rows."""
    import pandas as pd

    if spec is None:
        if model_name is None:
            raise ValueError("pass --data FILE (the table to audit)")
        from ._resolve import resolve_heldout

        return pd.read_csv(resolve_heldout(model_name))
    from ..report import load_data

    return load_data(spec).frame


class Outputs:
    """Collects tables, figures and files, then writes them all into ``out`` at once (through
    ``explain.staging``); ``out`` is checked when this is made, before any work."""

    def __init__(self, out: str, *, overwrite: bool, formats: tuple[str, ...] = ("png",),
                 table_format: str = "csv") -> None:
        self.out = Path(out)
        check_target(self.out, overwrite=overwrite, what="output directory")  # before any work
        self.overwrite = overwrite
        self.formats = formats
        self.table_format = table_format
        self.files: dict[str, Callable[[Path], None]] = {}

    def table(self, name: str, frame) -> None:
        if self.table_format == "parquet":
            self.files[f"{name}.parquet"] = lambda p, f=frame: f.to_parquet(p, index=False)
        else:
            from ..results import write_csv

            self.files[f"{name}.csv"] = lambda p, f=frame: write_csv(f, p)

    def figure(self, name: str, fig) -> None:
        from ..plotting import figure_bytes

        for fmt in self.formats:
            data = figure_bytes(fig, fmt)
            self.files[f"{name}.{fmt}"] = lambda p, d=data: p.write_bytes(d)

    def json(self, name: str, value: Any) -> None:
        from ..results import meta_json

        text = meta_json(value)
        self.files[f"{name}.json"] = lambda p, t=text: p.write_text(t)

    def file(self, name: str, writer: Callable[[Path], Any]) -> None:
        self.files[name] = writer

    def write(self) -> list[Path]:
        # an empty directory (e.g. made by the caller) is replaced as if it were absent
        with staged_directory(self.out, overwrite=self.overwrite,
                              what="output directory") as staging:
            for name, writer in self.files.items():
                writer(staging / name)
        return [self.out / name for name in self.files]
