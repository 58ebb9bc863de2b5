"""Figure helpers shared by every analysis. Plots are made, never shown.

Everything here uses the object API (``matplotlib.figure.Figure``): no global figure state, no
showing windows, no global ``rcParams`` edits (style is applied with ``rc_context`` around drawing
and saving). Saving is deterministic: the same figure gives the same bytes (no timestamps, fixed
SVG ids).
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

__all__ = [
    "DIVERGING",
    "FORMATS",
    "SEQUENTIAL",
    "contrast_ratio",
    "diverging_norm",
    "figure_bytes",
    "figure_data_uri",
    "figure_formats",
    "new_figure",
    "relative_luminance",
    "save_figure",
    "style",
    "text_colour",
]

#: Output formats ``save_figure`` writes.
FORMATS = ("png", "svg", "pdf")
#: Colour maps: diverging (centred at zero) for signed scores, sequential for weights.
DIVERGING = "RdBu_r"
SEQUENTIAL = "Blues"

_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.bbox": "tight",
    "svg.hashsalt": "explain",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "image.interpolation": "nearest",
    # every string is drawn as written: a group named "$\\alert$ A" or a review that says
    # "paid $5 and $10" is text, never mathtext (which would fail or typeset it)
    "text.parse_math": False,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """House style for the duration of a ``with`` block (no global state is changed)."""
    with matplotlib.rc_context(_STYLE):
        yield


class NotebookFigure(Figure):
    """A ``Figure`` that shows itself as a PNG in Jupyter (``_repr_png_``), with or without
    ``%matplotlib inline``; everywhere else it is a plain ``Figure``."""

    def _repr_png_(self) -> bytes:
        return figure_bytes(self, "png", dpi=100)


def new_figure(width: float = 6.0, height: float = 4.0, *, nrows: int = 1, ncols: int = 1,
               **subplot_kw) -> tuple[Figure, Axes | Sequence[Axes]]:
    """A detached ``Figure`` (inches) with its axes, in house style."""
    with style():
        fig = NotebookFigure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=True, **subplot_kw)
    return fig, axes


def axes_or_new(ax: Axes | None, width: float = 6.0, height: float = 4.0) -> tuple[Figure, Axes]:
    """Draw into ``ax`` when given (returning its figure), else into a new figure."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = new_figure(width, height)
    return fig, ax


def diverging_norm(values, *, vmax: float | None = None) -> TwoSlopeNorm:
    """Colour normalisation centred at zero, symmetric around it (so 0 is white)."""
    import numpy as np

    if vmax is None:
        finite = np.asarray(values, dtype=float)
        finite = finite[np.isfinite(finite)]
        vmax = float(np.abs(finite).max()) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    return TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)


def relative_luminance(colour) -> float:
    """WCAG 2 relative luminance of a matplotlib colour (alpha ignored): 0 black, 1 white."""
    import numpy as np
    from matplotlib.colors import to_rgb

    rgb = np.asarray(to_rgb(colour), dtype=float)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def contrast_ratio(first, second) -> float:
    """WCAG 2 contrast ratio of two colours: 1 (the same) to 21 (black on white); text needs
    4.5 to be read comfortably."""
    high, low = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def text_colour(background) -> str:
    """``"black"`` or ``"white"``, whichever contrasts more with ``background`` (an opaque
    colour): at least 4.58:1 on any background, so text drawn on a colour-mapped cell is
    always readable."""
    return ("black" if contrast_ratio("black", background) >= contrast_ratio("white", background)
            else "white")


def _metadata(fmt: str) -> dict:
    if fmt == "png":
        return {"Software": None}
    if fmt == "svg":
        return {"Date": None, "Creator": None}
    if fmt == "pdf":
        return {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}
    return {}


def figure_formats(formats) -> tuple[str, ...]:
    """``formats`` (a name or names of ``FORMATS``) as a tuple without repeats, checked: none
    at all or an unknown name is a ``ValueError`` that lists the valid ones."""
    formats = tuple(dict.fromkeys((formats,) if isinstance(formats, str) else formats))
    unknown = [fmt for fmt in formats if fmt not in FORMATS]
    if not formats or unknown:
        raise ValueError(f"unknown figure format(s) {', '.join(map(repr, unknown)) or '()'}; "
                         f"valid: {', '.join(FORMATS)}")
    return formats


def figure_bytes(fig: Figure, fmt: str = "png", *, dpi: int = 150) -> bytes:
    """The figure encoded as ``fmt`` (one of ``FORMATS``), byte-for-byte reproducible."""
    figure_formats(fmt)
    buffer = io.BytesIO()
    with style():
        fig.savefig(buffer, format=fmt, dpi=dpi, metadata=_metadata(fmt))
    return buffer.getvalue()


def figure_data_uri(fig: Figure, *, dpi: int = 110) -> str:
    """``data:image/png;base64,...`` for inlining a figure into HTML."""
    return "data:image/png;base64," + base64.b64encode(figure_bytes(fig, "png", dpi=dpi)).decode()


def save_figure(fig: Figure, path: str | os.PathLike, *, formats: Sequence[str] = ("png",),
                dpi: int = 150) -> list[Path]:
    """Write ``path`` + ``.<fmt>`` for each format; returns the written paths.

    ``path`` is the file name without suffix. Each file is written to a temporary name and
    renamed, so an error never leaves a half-written figure.
    """
    stem = Path(path)
    written = []
    for fmt in formats:
        data = figure_bytes(fig, fmt, dpi=dpi)
        target = stem.with_name(stem.name + f".{fmt}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        written.append(target)
    return written
