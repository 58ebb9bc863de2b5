"""The reference vision transformer ``vit`` (explain.nets.VisionTransformer on the 8x8 digits):
its recipe meets its target, its checkpoint loads without explain_models, attention over its
patches (maps, rollout, figures on the image), attributions, and a sanity check of the rollout
against what the model does when patches are occluded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

import explain
from explain import nets
from explain.hooks import count_hooks

PIXELS = [f"p{i}" for i in range(64)]


@pytest.fixture(scope="module")
def vit_path():
    import explain_models

    return explain_models.ensure("vit", progress=False)


@pytest.fixture(scope="module")
def vit(vit_path):
    return explain.load_model(vit_path)


@pytest.fixture(scope="module")
def heldout(vit_path):
    frame = pd.read_csv(vit_path / "heldout.csv")
    images = torch.tensor(frame[PIXELS].to_numpy(np.float32)).reshape(-1, 1, 8, 8)
    return images, frame["label"].to_numpy()


@pytest.fixture(scope="module")
def maps(vit, heldout):
    return explain.attention(vit, heldout[0], batch_size=128)


def test_card_meets_the_target_and_matches_the_checkpoint(vit, vit_path, heldout):
    from explain_models import digits
    from explain_models import vit as recipe

    card = json.loads((vit_path / "model_card.json").read_text())
    metrics = card["metrics"]
    assert metrics["heldout_accuracy"] >= 0.95
    assert metrics["majority_baseline_accuracy"] < 0.2
    assert card["recipe_version"] == recipe.RECIPE_VERSION
    assert card["training"]["epochs"] == recipe.EPOCHS
    assert card["training"]["architecture"] == "explain.nets.VisionTransformer"
    assert card["split"]["heldout_rows"] == 359 and card["split"]["seed"] == digits.SEED
    assert card["training_time_seconds"] > 0
    assert card["data"]["source_package"] == "scikit-learn"
    # the held-out images are those of the digits split, in order
    from explain_models._recipe import stratified_split
    from sklearn.datasets import load_digits

    data = load_digits()
    _, index = stratified_split(data.target, fraction=digits.HELDOUT_FRACTION, seed=digits.SEED)
    np.testing.assert_array_equal(heldout[1], data.target[index])
    np.testing.assert_allclose(heldout[0][:, 0].numpy(), data.images[index] / 16, atol=1e-6)
    # the accuracy recomputed from the checkpoint agrees with the card (up to 2 of 359 images,
    # float rounding on another CPU)
    images, labels = heldout
    with torch.no_grad():
        accuracy = float((vit.model(images).argmax(1).numpy() == labels).mean())
    assert abs(accuracy - metrics["heldout_accuracy"]) <= 2 / 359
    config = json.loads((vit_path / "config.json").read_text())
    assert config["explain_architecture"] == "vit"
    assert vit.task == "image-classification" and vit.input_shape == (1, 8, 8)
    assert vit.family.name == "multihead-attention"
    assert isinstance(vit.model, nets.VisionTransformer) and not vit.model.training


def test_checkpoint_loads_without_explain_models(vit_path, monkeypatch):
    # None in sys.modules makes every import of explain_models (or a recipe) an ImportError
    for name in [n for n in sys.modules if n.split(".")[0] == "explain_models"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "explain_models", None)
    loaded = explain.load_model(vit_path)
    assert type(loaded.model) is nets.VisionTransformer
    assert loaded.label_names == tuple(str(d) for d in range(10))


def test_vision_transformer_checks_its_patch_size():
    with pytest.raises(ValueError, match="patch_size=3 does not tile a 8x8 image"):
        nets.VisionTransformer(patch_size=3)
    net = nets.build("vit", {"patch_size": 4, "n_layers": 1})
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert net.positions.shape == (1, 1 + 4, 64)


def test_attention_over_patches_shapes_rows_and_rollout(vit, heldout, maps):
    images = heldout[0]
    assert type(maps).__name__ == "ImageAttentionResult"
    assert len(maps) == len(images) and maps.patch_grid == (4, 4)
    assert maps.tokens(0)[:3] == ("[CLS]", "r0c0", "r0c1") and maps.tokens(0)[-1] == "r3c3"
    assert maps.texts[1] == "image 1"
    for i in (0, 100, 358):
        block = maps.maps["self"][i]
        assert block.shape == (2, 4, 17, 17)
        np.testing.assert_allclose(block.sum(-1), 1.0, atol=1e-5)
        row = maps.rollout(i, level="token")
        np.testing.assert_allclose(row.sum(), 1.0, atol=1e-9)
        patches = maps.patch_rollout(i)
        assert patches.shape == (4, 4)
        np.testing.assert_allclose(patches.sum(), 1.0, atol=1e-9)
        np.testing.assert_allclose(patches.ravel(), row[1:] / row[1:].sum())
        head = maps.patch_attention(i, layer=1, head=2)
        np.testing.assert_allclose(head.ravel(), maps.matrix(i, layer=1, head=2)[0, 1:])
    # batches do not change the maps (tolerance: another batch shape may round differently)
    again = explain.attention(vit, images[:5], batch_size=2)
    for i in range(5):
        np.testing.assert_allclose(again.maps["self"][i], maps.maps["self"][i], atol=1e-5)
    assert count_hooks(vit) == 0 and not vit.model.training
    assert maps.meta["parameters"]["patch_grid"] == [4, 4]


def test_attention_over_images_refuses_what_does_not_fit(vit, digits_model):
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, 8, 8\).*got \(1, 8, 8\)"):
        explain.attention(vit, torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="max_length, importance apply to text models"):
        explain.attention(vit, torch.zeros(1, 1, 8, 8), max_length=4, importance=True)
    broken = torch.zeros(2, 1, 8, 8)
    broken[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"images \[1\] hold NaN"):
        explain.attention(vit, broken)
    with pytest.raises(TypeError, match="without nn.MultiheadAttention"):
        explain.attention(digits_model, torch.zeros(1, 1, 8, 8))
    assert count_hooks(vit) == 0


def test_image_figures_render(maps, tmp_path):
    for kind in ("rollout_image", "heads_image"):
        fig = maps.plot(kind, image_id=3)
        assert isinstance(fig, Figure)
        # figures number images from 1 for their readers: image_id 3 is the fourth image
        assert "image 4" in (fig.axes[0].get_title() + fig.get_suptitle())
    fig = maps.plot("rollout_image", image_id=0)
    assert "patches sum to 1" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "1", "2", "3"]
    assert len(maps.plot("heads_image").axes) == 2 * 4 + 1  # every head and the colour bar
    with pytest.raises(ValueError, match="takes no ax"):
        maps.plot("heads_image", ax=fig.axes[0])
    with pytest.raises(TypeError, match="'layer'"):
        maps.plot("rollout_image", layer=0)
    assert maps.applicable_plots()[:2] == ("rollout_image", "heads_image")
    # the text plots read the patch names
    labels = [t.get_text() for t in maps.plot("head", text_id=0).axes[0].get_xticklabels()]
    assert labels[:2] == ["[CLS]", "r0c0"]


def test_integrated_gradients_and_occlusion_on_the_vit(vit, heldout):
    images = heldout[0][:4]
    result = explain.attribute(vit, images, method="integrated_gradients", n_steps=64,
                               faithfulness=False)
    frame = result.explanations()
    gap = (frame.attribution_sum - frame.convergence_delta).abs()
    assert (frame.convergence_delta.abs() <= np.maximum(0.01 * gap, 1e-4)).all(), frame
    # the integrated output change is the probability change from the black image
    with torch.no_grad():
        p = torch.softmax(vit.model(images), -1)
        p0 = torch.softmax(vit.model(torch.zeros_like(images)), -1)
    rows, predicted = torch.arange(4), p.argmax(1)
    np.testing.assert_allclose(frame.attribution_sum - frame.convergence_delta,
                               (p[rows, predicted] - p0[rows, predicted]).numpy(), atol=1e-5)
    occlusion = explain.attribute(vit, images[:1], method="occlusion", patch_size=2,
                                  faithfulness=False)
    scores = occlusion.to_frame()
    assert len(scores) == 16 and set(scores.unit) == {"patch"}
    # occlusion's score of a patch is f(x) - f(x with that 2x2 patch set to the baseline, 0)
    patched = images[:1].clone()
    patched[..., 2:4, 4:6] = 0
    with torch.no_grad():
        q = torch.softmax(vit.model(patched), -1)[0, predicted[0]]
    expected = float(p[0, predicted[0]] - q)
    score = scores.loc[scores.label == "rows 2-3, cols 4-5", "score"]
    np.testing.assert_allclose(score.to_numpy(), [expected], atol=1e-5)
    assert count_hooks(vit) == 0


def test_rollout_points_at_the_patches_the_model_needs(vit, heldout, maps):
    """Known truth from the model itself. Measured on the reference checkpoint: blank patches
    are 27% of all patches but get 13% of the [CLS] rollout; zeroing the 4 patches with the
    highest rollout drops the predicted class's probability by 0.62 on average over the 359
    held-out images, 4 random patches by 0.38 (4 random patches with ink: 0.42; the 4 patches
    with the most ink, a baseline that knows the data: 0.70)."""
    images = heldout[0]
    n = len(images)
    rollout = np.stack([maps.patch_rollout(i).ravel() for i in range(n)])
    ink = images.reshape(n, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(n, 16, 4).sum(-1).numpy()
    blank = ink == 0
    assert (rollout * blank).sum(1).mean() < 0.75 * blank.mean()

    def drop(patches):
        keep = torch.ones(n, 16)
        keep[torch.arange(n)[:, None], torch.as_tensor(patches)] = 0
        mask = keep.reshape(n, 4, 4).repeat_interleave(2, 1).repeat_interleave(2, 2)[:, None]
        with torch.no_grad():
            return float((base - torch.softmax(vit.model(images * mask), -1)[rows, predicted])
                         .mean())

    with torch.no_grad():
        p = torch.softmax(vit.model(images), -1)
    rows, predicted = torch.arange(n), p.argmax(1)
    base = p[rows, predicted]
    rng = np.random.default_rng(0)
    top = np.argsort(-rollout, axis=1)[:, :4]
    random = np.stack([rng.choice(16, 4, replace=False) for _ in range(n)])
    assert drop(top) > drop(random) + 0.1


def test_report_attention_draws_the_rollout_on_selected_images(vit, vit_path, tmp_path):
    from explain.report import build_report

    data = pd.read_csv(vit_path / "heldout.csv")
    report = build_report(vit, data, label="label", analyses=["attention"], n_examples=3,
                          quiet=True)
    out = Path(report.save(tmp_path / "report"))
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["attention-vit-attention-of-the-selected-images.png",
                       "attention-vit-every-head-s-cls-attention-image-1.png",
                       *[f"attention-vit-rollout-over-the-patches-of-image-{k}.png"
                         for k in (1, 2, 3)]]
    rollout = pd.read_csv(out / "data" / "attention-vit-rollout-over-the-patches-of-image-1.csv")
    assert list(rollout.columns) == ["image", "patch", "row", "column", "rollout"]
    assert len(rollout) == 16 and (rollout.image == 1).all() and rollout.patch.iloc[5] == "r1c1"
    np.testing.assert_allclose(rollout.rollout.sum(), 1.0, atol=1e-6)
    # pixels are read by name (p0..p63): other columns are ignored, a missing one is the reason
    # the analysis is not run
    extra = build_report(vit, data.head(3).assign(extra=1.0), label="label",
                         analyses=["attention"], quiet=True)
    assert extra.sections["attention"] > 0
    missing = build_report(vit, data.drop(columns=["p5"]), label="label", analyses=["attention"],
                           quiet=True)
    assert missing.sections["attention"] == 0
    saved = json.loads((Path(missing.save(tmp_path / "missing")) / "manifest.json").read_text())
    assert "no 'p5'" in saved["skipped"]["attention"]
