"""How subcommands write their files: always atomically, through ``explain.staging``.

Two conventions, kept from before the staging module existed (issue 14 may unify them):

* ``Outputs`` (``audit``, ``probe``): ``--out`` is the subcommand's own directory; an existing,
  non-empty one is kept unless ``--overwrite`` (then replaced as a whole);
* ``files_into`` (``attention``, ``attribute``): the files are moved into ``--out`` beside what
  is already there (same names replaced), once every one of them is written.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..staging import MARKER, check_target, staged_directory

__all__ = ["Outputs", "files_into", "read_table", "slug"]


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
    """Collects tables, figures and JSON, then writes them all into ``out`` at once."""

    def __init__(self, out: str, *, overwrite: bool) -> None:
        self.out = Path(out)
        check_target(self.out, overwrite=overwrite, what="output directory")  # before any work
        self.overwrite = overwrite
        self.files: dict[str, Callable[[Path], None]] = {}

    def table(self, name: str, frame) -> None:
        from ..results import write_csv

        self.files[f"{name}.csv"] = lambda p, f=frame: write_csv(f, p)

    def figure(self, name: str, fig) -> None:
        from ..plotting import figure_bytes

        data = figure_bytes(fig, "png")
        self.files[f"{name}.png"] = lambda p, d=data: p.write_bytes(d)

    def json(self, name: str, value: Any) -> None:
        from ..results import meta_json

        text = meta_json(value)
        self.files[f"{name}.json"] = lambda p, t=text: p.write_text(t)

    def write(self) -> list[Path]:
        # an empty directory (e.g. made by the caller) is replaced as if it were absent
        with staged_directory(self.out, overwrite=self.overwrite,
                              what="output directory") as staging:
            for name, writer in self.files.items():
                writer(staging / name)
        return [self.out / name for name in self.files]


@contextlib.contextmanager
def files_into(out: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging directory beside ``out``; on normal exit move each of its files
    into ``out`` (created if needed; files already there under other names are kept). On an
    exception nothing reaches ``out`` and the staging directory is removed."""
    out = Path(out).expanduser().absolute()
    staged = out.parent / f".{out.name}.files-{os.getpid()}"
    with staged_directory(staged, overwrite=False, what="output directory") as staging:
        yield staging
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(staged.iterdir()):
            if path.name != MARKER:  # out is shared with other files: explain does not own it
                path.replace(out / path.name)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
