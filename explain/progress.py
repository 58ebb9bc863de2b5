"""Progress bars: tqdm's notebook widget where ipywidgets is installed, its text bar elsewhere.

``tqdm.auto`` alone picks the widget in every Jupyter kernel and, without ipywidgets, warns
"IProgress not found" and falls back; the text bar works in Jupyter too, so explain asks for the
widget only when it can be drawn.
"""

from __future__ import annotations

import importlib.util

__all__ = ["tqdm_class"]


def tqdm_class():
    """The ``tqdm`` class to draw a bar with (``tqdm.auto.tqdm`` or ``tqdm.std.tqdm``)."""
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm
