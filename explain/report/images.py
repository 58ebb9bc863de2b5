"""The image-classifier analysis of a report: the images with their top-3 classes, then
GradCAM, integrated gradients and occlusion maps of the predicted class, one figure per method
(each image above its map, in the same column order)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch

from .. import datasets
from ..attribution import attribute
from .protocol import Analysis, Context
from .sections import Section

__all__ = ["IMAGES", "METHODS"]

SECTION = Section("images", "Image attributions", caveat=(
    "Each map explains the logit of the predicted class (GradCAM on the family's default "
    "convolution, upsampled; integrated gradients from a black image; occlusion of square "
    "patches by black). Maps are smoothed and clipped for display only; the CSV files hold "
    "the raw values."))

#: Method -> its options in this analysis (occlusion also gets patches of a quarter of the
#: image side: a 4 x 4 grid).
METHODS: Mapping[str, Mapping[str, int]] = MappingProxyType({
    "gradcam": {}, "integrated_gradients": {"n_steps": 32}, "occlusion": {}})
TOP_K = 3


def _pixels(context: Context) -> tuple[list[str], torch.Tensor] | str:
    """The images of ``context.data`` with their names, or why there are none: rows named
    like ``explain.datasets.PHOTOS`` (a ``name`` column) or pixel columns ``p0``.. in
    row-major order of the model's input shape."""
    shape = getattr(context.model, "input_shape", None)
    data = context.data
    if shape is None:
        return "needs an image model with an input shape"
    if "name" in data.columns and set(data["name"]) <= set(datasets.PHOTOS):
        names, pixels = datasets.photos()
        index = [names.index(n) for n in data["name"]]
        chosen = pixels[index]
        if tuple(chosen.shape[1:]) != tuple(shape):
            return (f"the photos are {tuple(chosen.shape[1:])}, the model reads "
                    f"{tuple(shape)}")
        return list(data["name"]), chosen
    columns = [f"p{i}" for i in range(int(np.prod(shape)))]
    missing = [c for c in columns if c not in data.columns]
    if missing:
        return (f"needs a 'name' column of explain.datasets.PHOTOS or pixel columns "
                f"p0..p{len(columns) - 1} (missing {missing[0]!r})")
    values = torch.tensor(data[columns].to_numpy(dtype=np.float32)).reshape(len(data), *shape)
    return [f"row {i}" for i in range(len(data))], values


def _applies(context: Context) -> str | None:
    if context.model.task != "image-classification":
        return "needs an image classifier"
    found = _pixels(context)
    return found if isinstance(found, str) else None


def _run(context: Context) -> None:
    names, pixels = _pixels(context)
    names, pixels = names[:context.n_examples], pixels[:context.n_examples]
    model, report, part = context.model, context.report, context.part
    labels = model.label_names
    with torch.inference_mode():
        probabilities = model.model(pixels).softmax(-1)
    top_p, top_i = probabilities.topk(TOP_K, dim=-1)
    rows = [{"image": name, "rank": r + 1, "class": labels[int(i)], "probability": float(p)}
            for name, ps, idx in zip(names, top_p, top_i, strict=True)
            for r, (p, i) in enumerate(zip(ps, idx, strict=True))]
    report.add(pd.DataFrame(rows), section=SECTION.key, title=f"{part}: top-{TOP_K} classes",
               max_rows=TOP_K * len(names),
               caption="Softmax probability of the model's three most likely classes.")
    patch = max(1, pixels.shape[-1] // 4)
    for method, options in METHODS.items():
        extra = {"patch_size": patch} if method == "occlusion" else {}
        result = attribute(model, pixels, method=method, output="logit", faithfulness=False,
                           seed=context.seed, progress=context.progress, **options, **extra)
        report.add(result, section=SECTION.key, title=f"{part}: {method}", plots="image",
                   plot_options={"max_inputs": len(names)},
                   caption=f"{method} of the predicted class's logit; images in the order of "
                           f"the table above ({', '.join(names)}).")


IMAGES = Analysis("images", "image classifiers: the images with their top-3 classes and "
                            "GradCAM, integrated gradients and occlusion maps",
                  SECTION, _run, _applies)
