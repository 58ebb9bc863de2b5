"""The rows a report analyses: a DataFrame, a built-in dataset, a file, or a model's held-out
rows, with where they came from."""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import datasets

__all__ = ["DataSource", "load_data", "read_images", "read_table_file"]


@dataclass(frozen=True)
class DataSource:
    """A table with where it came from: ``source``, ``licence`` and ``caveat`` (what its
    collection means for an analysis; from ``explain.datasets.DATASETS``) when known, and
    ``text_column``, the column of texts a model's held-out rows name in its card
    (``data.text_column``; ``None``: the report's default, ``"text"``)."""

    frame: pd.DataFrame
    name: str
    source: str
    licence: str | None = None
    caveat: str | None = None
    text_column: str | None = None


def _catalogued(loader: str) -> datasets.Dataset | None:
    """The ``explain.datasets`` entry of a loader named ``explain.datasets.<name>``."""
    module, _, name = loader.rpartition(".")
    return datasets.DATASETS.get(name) if module == "explain.datasets" else None


def load_data(spec: Any = None, *, model=None) -> DataSource:
    """The rows to analyse: a DataFrame, a built-in dataset name (``explain.datasets.DATASETS``),
    a ``.csv`` / ``.tsv`` / ``.parquet`` / ``.jsonl`` file, or ``None`` for the held-out rows that
    ship with a model (``heldout.csv`` next to its weights; licence from its model card)."""
    if isinstance(spec, pd.DataFrame):
        return DataSource(spec, "data", "DataFrame passed in")
    if spec is None:
        source = (getattr(model, "provenance", {}) or {}).get("source")
        heldout = Path(source) / "heldout.csv" if source else None
        if heldout is None or not heldout.is_file():
            raise ValueError("no data given and the model has no held-out rows (heldout.csv); "
                             "pass --data FILE.csv or a built-in dataset: "
                             f"{', '.join(datasets.DATASETS)}")
        card_data = (getattr(model, "card", {}) or {}).get("data")
        if not isinstance(card_data, dict):
            card_data = {}
        loader = card_data.get("loader", "")
        known = _catalogued(loader)
        licence = card_data.get("licence")
        if licence is None and known is not None:
            licence = known.licence
        text_column = card_data.get("text_column")
        return DataSource(pd.read_csv(heldout), f"{model.name} held-out rows",
                          f"{heldout.name} of the {model.name} checkpoint"
                          + (f" ({loader})" if loader else ""), licence,
                          known.caveat if known else None,
                          text_column if isinstance(text_column, str) else None)
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"data must be a DataFrame, a dataset name or a file, got "
                        f"{type(spec).__name__}")
    text = os.fspath(spec)
    if text in datasets.DATASETS and not Path(text).exists():
        known = datasets.DATASETS[text]
        return DataSource(known.load(), text, f"explain.datasets.{text}()", known.licence,
                          known.caveat)
    path = Path(text).expanduser()
    if not path.exists():
        import difflib

        close = difflib.get_close_matches(text, list(datasets.DATASETS), n=2)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        raise FileNotFoundError(f"no such data file {text!r}{hint}; pass a .csv, .tsv, .parquet "
                                f"or .jsonl file or a built-in dataset: "
                                f"{', '.join(datasets.DATASETS)}")
    return DataSource(read_table_file(path), path.stem, str(path))


def _read_delimited(path: Path, sep: str) -> pd.DataFrame:
    """``pd.read_csv`` that never takes the first column for an index: a row with more values
    than the header (a text with an unquoted comma, which pandas would silently split and
    shift) is a ``ParserError`` that names its line and the fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            return pd.read_csv(path, sep=sep, index_col=False)
        except pd.errors.ParserWarning:
            pass
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter=sep)
        header = next(rows)
        line = next((rows.line_num for row in rows if len(row) > len(header)), None)
    mark = "tab" if sep == "\t" else repr(sep)
    raise pd.errors.ParserError(
        f"{f'line {line}' if line else 'a row'} has more values than the header's "
        f"{len(header)} columns ({', '.join(header)}); put a value that contains a {mark} in "
        f"double quotes")


#: Table files ``load_data`` reads: suffix -> reader.
_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": lambda p: _read_delimited(p, ","), ".tsv": lambda p: _read_delimited(p, "\t"),
    ".parquet": pd.read_parquet, ".jsonl": lambda p: pd.read_json(p, lines=True),
}


def _unreadable(path: Path, kind: str, error: Exception) -> str:
    first = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else \
        type(error).__name__
    fix = ("write it again with DataFrame.to_parquet" if kind == "PARQUET" else
           f"check that it is a {kind} file with a header row and one value per column")
    return f"cannot read {str(path)!r} as {kind} ({first}); {fix}"


def read_table_file(path: str | os.PathLike) -> pd.DataFrame:
    """A ``.csv`` / ``.tsv`` / ``.parquet`` / ``.jsonl`` file as a DataFrame; an empty, non-UTF-8
    or damaged file is a ``ValueError`` that names the file and the fix."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"cannot read {path.name!r}: unknown file type {path.suffix!r}; use one "
                         f"of {', '.join(_READERS)}")
    return _read(reader, path)


def _read(reader: Callable[[Path], pd.DataFrame], path: Path) -> pd.DataFrame:
    """``reader(path)``, its errors (empty, not UTF-8, not a table) naming the file and the fix."""
    kind = path.suffix.lower().lstrip(".").upper()
    try:
        frame = reader(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"cannot read {str(path)!r}: the file is empty; pass a {kind} file "
                         f"with a header row and at least one row") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"cannot read {str(path)!r}: it is not UTF-8 text (it holds the byte "
                         f"{error.object[error.start:error.start + 1]!r}); save it as UTF-8 "
                         f"{kind}") from None
    except (pd.errors.ParserError, ValueError, OSError) as error:
        if isinstance(error, (FileNotFoundError, PermissionError)):
            raise
        raise ValueError(_unreadable(path, kind, error)) from None
    except Exception as error:  # pyarrow's errors for a damaged Parquet file
        raise ValueError(_unreadable(path, kind, error)) from None
    if frame.empty and len(frame.columns) == 0:
        raise ValueError(f"cannot read {str(path)!r}: no columns; pass a {kind} file with a "
                         f"header row")
    return frame


def read_images(model, data: pd.DataFrame, rows=None) -> tuple[list[str], Any]:
    """The images of ``rows`` of ``data`` (default all) for image model ``model``, with a name
    each: ``(names, tensor (n, C, H, W))``; a photo's name is its own, pixel rows are named
    ``"image 1"``, ``"image 2"``, ... in the order read. Rows are photos of
    ``explain.datasets.PHOTOS`` named in a ``name`` column, or pixels in columns ``p0``, ``p1``, ... in row-major order of the
    model's input shape (as the reference models' ``heldout.csv`` holds them). ``ValueError``
    saying which of the two is missing."""
    import torch

    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(f"{model.name} has no input shape, so its images cannot be read")
    shape = tuple(shape)
    chosen = data if rows is None else data.iloc[list(rows)]
    if "name" in chosen.columns and set(chosen["name"]) <= set(datasets.PHOTOS):
        names, pixels = datasets.photos()
        picked = pixels[[names.index(n) for n in chosen["name"]]]
        if tuple(picked.shape[1:]) != shape:
            raise ValueError(f"the photos are {tuple(picked.shape[1:])}, {model.name} reads "
                             f"{shape}")
        return list(chosen["name"]), picked
    columns = [f"p{i}" for i in range(int(np.prod(shape)))]
    missing = [c for c in columns if c not in chosen.columns]
    if missing:
        raise ValueError(f"an image model's rows are photos of explain.datasets.PHOTOS in a "
                         f"'name' column, or pixel columns p0..p{len(columns) - 1} (row-major, "
                         f"input shape {shape}); the data has neither (no {missing[0]!r})")
    values = torch.tensor(chosen[columns].to_numpy(dtype=np.float32), device="cpu").reshape(-1, *shape)
    return [f"image {k + 1}" for k in range(len(chosen))], values
