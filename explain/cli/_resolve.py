"""Model names of the command line -> ``LoadedModel``: the one place that knows the recipes.

The library takes ``LoadedModel`` objects (or what ``explain.load_model`` reads); only the edge
(this module, used by every subcommand, and the demo) turns a reference-model name into a model,
training it on first use through the recipe package ``explain_models``.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["MINILM", "reference_checkpoint", "reference_names", "resolve_heldout",
           "resolve_model"]

#: The name of the offline MiniLM sentence encoder (``explain.datasets.minilm_path()``).
MINILM = "minilm"


def reference_names() -> tuple[str, ...]:
    """The reference-model names a subcommand accepts: the recipes of ``explain_models``."""
    import explain_models

    return tuple(explain_models.RECIPES)


def reference_checkpoint(name: str, *, retrain: bool = False, progress: bool = False) -> Path:
    """The checkpoint directory of reference model ``name``, trained first when it is missing
    (or ``retrain``); ``ValueError`` listing the reference names for any other name."""
    import explain_models

    if name not in explain_models.RECIPES:
        raise ValueError(f"unknown reference model {name!r}; valid: "
                         f"{', '.join(explain_models.RECIPES)}")
    return explain_models.ensure(name, retrain=retrain, progress=progress)


def _is_reference(spec: Any) -> bool:
    return isinstance(spec, str) and spec in reference_names() and not Path(spec).exists()


def resolve_model(spec: Any, *, progress: bool = False):
    """``spec`` -> ``LoadedModel``.

    ``spec``: a ``LoadedModel`` (returned as it is); a reference-model name (a key of
    ``explain_models.RECIPES``, trained on first use, with progress bars when ``progress``)
    that is not also an existing path; ``"minilm"`` (the offline MiniLM encoder); or anything
    ``explain.load_model`` reads (a checkpoint directory, a Hub id, an ``nn.Module``). Before a
    name goes to the Hub, one line on stderr lists the reference models; a name that loads as
    none of these gets the loader's error with the reference names (and a close match).
    """
    from ..loading import LoadedModel, _looks_like_path, load_model

    if isinstance(spec, LoadedModel):
        return spec
    if _is_reference(spec):
        return load_model(reference_checkpoint(spec, progress=progress))
    if spec == MINILM and not Path(spec).exists():
        from ..datasets import minilm_path

        return load_model(minilm_path(), name="all-MiniLM-L6-v2")
    if not isinstance(spec, (str, os.PathLike)):
        return load_model(spec)
    text, names = os.fspath(spec), [*reference_names(), MINILM]
    to_hub = not Path(text).expanduser().exists() and not _looks_like_path(text)
    if to_hub:  # said before the Hub is tried: offline, that attempt can take a while to fail
        print(f"explain: {text!r} is no local directory and no reference model "
              f"({', '.join(names)}); trying it as a Hugging Face Hub id", file=sys.stderr)
    try:
        return load_model(spec)
    except OSError as error:
        close = difflib.get_close_matches(text, names, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise type(error)(f"{error}; {hint}reference models: {', '.join(names)}") from error


def resolve_heldout(name: str | None) -> Path:
    """The held-out rows (``heldout.csv``) of reference model ``name``, trained on first use;
    ``ValueError`` for anything else (a checkpoint has no held-out rows: pass a data file)."""
    if not _is_reference(name):
        raise ValueError(f"{name!r} has no held-out rows; pass --data FILE")
    path = reference_checkpoint(name) / "heldout.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} is missing; pass --data FILE")
    return path
