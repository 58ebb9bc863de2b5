"""The image-classifier analysis of a report: the images with their top-3 classes, then
GradCAM, integrated gradients and occlusion maps of the predicted class, one figure per method
(each image above its map, in the same column order)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import pandas as pd
import torch

from ..attribution import attribute
from ..attribution.methods import method_title
from .data import read_images
from .protocol import Analysis, Context
from .sections import Section

__all__ = ["IMAGES", "METHODS"]

SECTION = Section("images", "Image attributions", caveat=(
    "Each map explains the logit of the predicted class (GradCAM on the family's default "
    "convolution, upsampled; integrated gradients from the all-zero image, black for photos; "
    "occlusion of square patches by zeros). Photo maps are smoothed and clipped for display "
    "only; the CSV files hold the raw values."))

#: Method -> its options in this analysis (occlusion also gets patches of a quarter of the
#: image side: a 4 x 4 grid).
METHODS: Mapping[str, Mapping[str, int]] = MappingProxyType({
    "gradcam": {}, "integrated_gradients": {"n_steps": 32}, "occlusion": {}})
TOP_K = 3


def _applies(context: Context) -> str | None:
    if context.model.task != "image-classification":
        return "needs an image classifier"
    try:
        read_images(context.model, context.data.head(1))
    except ValueError as error:
        return str(error)
    return None


def _run(context: Context) -> None:
    names, pixels = read_images(context.model, context.data, context.rows)
    model, report, part = context.model, context.report, context.part
    labels = model.label_names
    with torch.inference_mode():
        probabilities = model.model(model.to_device(pixels)).softmax(-1).cpu()
    top_p, top_i = probabilities.topk(TOP_K, dim=-1)
    rows = [{"image": name, "row": row, "rank": r + 1, "class": labels[int(i)],
             "probability": float(p)}
            for name, row, ps, idx in zip(names, context.rows, top_p, top_i, strict=True)
            for r, (p, i) in enumerate(zip(ps, idx, strict=True))]
    table = pd.DataFrame(rows)
    caption = ("Softmax probability of the model's three most likely classes ('row': the "
               "image's position in the data, counting from 0).")
    if "expected_class" in context.data.columns:  # e.g. the ImageNet photos' held-out rows
        expected = context.data["expected_class"].iloc[list(context.rows)].astype(str).tolist()
        table["expected_class"] = [expected[k // TOP_K] for k in range(len(table))]
        hits = sum(table["class"][k * TOP_K] == e for k, e in enumerate(expected))
        caption += (f" The expected class (column 'expected_class' of the data) is the top-1 class of "
                    f"{hits} of {len(expected)} images.")
    report.add(table, section=SECTION.key, title=f"{part}: top-{TOP_K} classes",
               max_rows=TOP_K * len(names), caption=caption)
    top = table[table["rank"] == 1]
    named = "; ".join(f"{image}: {cls} ({p:.3f})" for image, cls, p in
                      zip(top["image"], top["class"], top["probability"], strict=True))
    if "expected_class" in table:
        finding = (f"The top-1 class is the expected one for {hits} of {len(top)} images "
                   f"(softmax probability in brackets): {named}.")
    else:
        finding = f"Top-1 classes (softmax probability in brackets): {named}."
    report.add_finding(finding, sources=report.last_id, kind="top_classes", part=part)
    patch = max(1, pixels.shape[-1] // 4)
    # GradCAM reads a convolution's feature maps; a vision transformer's only convolution is its
    # patch embedding, the input layer, where GradCAM is not the published method
    attends = bool(model.family.attention_names(model.model, "self"))
    for method, options in METHODS.items():
        if method == "gradcam" and attends:
            continue
        extra = {"patch_size": patch} if method == "occlusion" else {}
        result = attribute(model, pixels, method=method, output="logit", faithfulness=False,
                           seed=context.seed, progress=context.progress, **options, **extra)
        name = method_title(method)
        caption = (f"{name[0].upper() + name[1:]} of the predicted class's logit; images in "
                   f"the order of the table above ({', '.join(names)}).")
        if method == "integrated_gradients":
            # completeness: the attributions sum to f(image) - f(zeros) up to the Riemann error
            errors = result.explanations()["relative_delta"].to_numpy()
            caption += (f" With {options['n_steps']} steps the attributions sum to the logit's "
                        f"change from the all-zero baseline image within {100 * errors.max():.0f}% "
                        f"(relative completeness error per image: "
                        f"{', '.join(f'{100 * e:.0f}%' for e in errors)}).")
        report.add(result, section=SECTION.key, title=f"{part}: {name}", plots="image",
                   plot_options={"max_inputs": len(names)}, caption=caption)


IMAGES = Analysis("images", "image classifiers: the images with their top-3 classes and "
                            "GradCAM, integrated gradients and occlusion maps",
                  SECTION, _run, _applies)
