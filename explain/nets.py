"""Small architectures that `explain` can save and load without pickle.

A checkpoint of one of these is a directory holding ``config.json`` (with the key
``"explain_architecture"`` naming a class of ``ARCHITECTURES`` and ``"architecture_config"`` its
constructor arguments) and ``model.safetensors``. ``explain.load_model`` rebuilds the module from
this file alone: no user code is imported and nothing is unpickled.

Also here: ``TabularEncoder``, the documented, JSON-serialisable encoding from a raw table to the
float matrix a tabular model reads (numeric columns standardised, categorical columns one-hot).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .checks import check_columns

__all__ = ["ARCHITECTURES", "MLP", "EfficientNetLite0", "MHATransformer", "SmallCNN", "SmallResNet",
           "TabularEncoder", "VisionTransformer", "build"]


class MLP(nn.Module):
    """Feed-forward classifier for tabular data: ``(N, in_features) -> (N, n_classes)`` logits.

    Submodules: ``hidden.0``, ``hidden.1``, ... (``nn.Linear``, ReLU after each) and ``out``.
    """

    def __init__(self, in_features: int, n_classes: int, hidden: Sequence[int] = (32, 16),
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.config = {"in_features": in_features, "n_classes": n_classes,
                       "hidden": list(hidden), "dropout": dropout}
        sizes = [in_features, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(sizes[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = self.drop(self.act(layer(x)))
        return self.out(x)


class SmallCNN(nn.Module):
    """Convolutional classifier for small images: ``(N, C, H, W) -> (N, n_classes)`` logits.

    Submodules: ``conv1``, ``conv2`` (3x3, padding 1, ReLU), ``pool`` (2x2 max), ``fc``.
    ``conv2`` is the last convolution, the natural GradCAM layer.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, height: int = 8,
                 width: int = 8, channels: Sequence[int] = (16, 32)) -> None:
        super().__init__()
        self.config = {"in_channels": in_channels, "n_classes": n_classes, "height": height,
                       "width": width, "channels": list(channels)}
        c1, c2 = channels
        self.conv1 = nn.Conv2d(in_channels, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c2 * (height // 2) * (width // 2), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.fc(self.flatten(self.pool(x)))


class _Residual(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``; ``shortcut`` is the identity, or
    a 1x1 convolution + BatchNorm when the stride or the channel count changes. The shortcut is
    registered first so that ``conv2`` is the block's last ``nn.Conv2d`` in module order."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels else
                         nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride,
                                                 bias=False), nn.BatchNorm2d(out_channels)))
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """Residual classifier for small images: ``(N, C, H, W) -> (N, n_classes)`` logits.

    Submodules: ``stem`` (3x3 conv, BatchNorm, ReLU to ``channels[0]``), ``blocks.<i>`` (one
    residual block per entry of ``channels``, stride 2 whenever the channel count changes, so an
    8x8 input with ``channels=(16, 32)`` ends at 4x4), ``pool`` (global average), ``fc``.
    ``blocks.<last>.conv2`` is the last convolution, the natural GradCAM layer.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10,
                 channels: Sequence[int] = (16, 32)) -> None:
        super().__init__()
        self.config = {"in_channels": in_channels, "n_classes": n_classes,
                       "channels": list(channels)}
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels[0]), nn.ReLU())
        self.blocks = nn.ModuleList(
            _Residual(a, b, stride=1 if a == b else 2)
            for a, b in itertools.pairwise([channels[0], *channels]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.fc(self.flatten(self.pool(x)))


class _Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        attended, _ = self.attn(x, x, x, key_padding_mask=padding_mask, need_weights=False)
        x = self.norm1(x + attended)
        return self.norm2(x + self.ff(x))


class MHATransformer(nn.Module):
    """A plain transformer classifier built on ``nn.MultiheadAttention`` (no Hugging Face).

    ``forward(input_ids (N, T) long, attention_mask (N, T) 0/1 = None) -> (N, n_classes)`` logits,
    pooled over the first position. Submodules: ``embed``, ``pos``, ``layers.<i>.attn``
    (``nn.MultiheadAttention``), ``layers.<i>.ff``, ``classifier``.
    """

    def __init__(self, vocab_size: int = 100, d_model: int = 32, n_heads: int = 4,
                 n_layers: int = 2, d_ff: int = 64, max_positions: int = 64,
                 n_classes: int = 2) -> None:
        super().__init__()
        self.config = {"vocab_size": vocab_size, "d_model": d_model, "n_heads": n_heads,
                       "n_layers": n_layers, "d_ff": d_ff, "max_positions": max_positions,
                       "n_classes": n_classes}
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_positions, d_model)
        self.layers = nn.ModuleList(_Block(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.classifier = nn.Linear(d_model, n_classes)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.embed(input_ids) + self.pos(positions)[None]
        padding = None if attention_mask is None else attention_mask == 0
        for layer in self.layers:
            x = layer(x, padding)
        return self.classifier(x[:, 0])


class _PreNormBlock(nn.Module):
    """``x + attn(norm1(x))``, then ``x + ff(norm2(x))``: the pre-norm block of ViT (Dosovitskiy
    et al. 2021), which trains more stably than post-norm on a few thousand images."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        attended, _ = self.attn(h, h, h, need_weights=False)
        x = x + attended
        return x + self.ff(self.norm2(x))


class VisionTransformer(nn.Module):
    """A small vision transformer (ViT, Dosovitskiy et al. 2021) built on ``nn.MultiheadAttention``:
    ``(N, C, H, W) -> (N, n_classes)`` logits.

    The image is cut into non-overlapping ``patch_size`` x ``patch_size`` patches, embedded by a
    strided ``nn.Conv2d`` (``patch_embed``) in row-major order; a learned ``cls_token`` is put
    first and learned positions (``positions``, ``(1, 1 + n_patches, d_model)``) are added, so
    token 0 is ``[CLS]`` and token ``1 + r * (W // patch_size) + c`` the patch in row ``r``,
    column ``c``. Then ``layers.<i>`` (pre-norm blocks; ``layers.<i>.attn`` the
    ``nn.MultiheadAttention``), a final ``norm`` and ``classifier`` on ``[CLS]``.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, height: int = 8,
                 width: int = 8, patch_size: int = 2, d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 2, d_ff: int = 128) -> None:
        super().__init__()
        if height % patch_size or width % patch_size:
            raise ValueError(f"patch_size={patch_size} does not tile a {height}x{width} image; "
                             f"choose a patch size that divides both sides")
        self.config = {"in_channels": in_channels, "n_classes": n_classes, "height": height,
                       "width": width, "patch_size": patch_size, "d_model": d_model,
                       "n_heads": n_heads, "n_layers": n_layers, "d_ff": d_ff}
        n_patches = (height // patch_size) * (width // patch_size)
        self.patch_embed = nn.Conv2d(in_channels, d_model, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.positions = nn.Parameter(torch.randn(1, 1 + n_patches, d_model) * 0.02)
        self.layers = nn.ModuleList(_PreNormBlock(d_model, n_heads, d_ff)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.classifier = nn.Linear(d_model, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, n_patches, d_model)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, patches], dim=1) + self.positions
        for layer in self.layers:
            x = layer(x)
        return self.classifier(self.norm(x[:, 0]))


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (Tan & Le 2019; the TensorFlow Lite variant: ReLU6, no squeeze-excite)
    from the ``efficientnet-lite-pytorch`` package: ``(N, 3, 224, 224)`` RGB in ``[0, 1]`` ``->
    (N, n_classes)`` logits. The weights expect ``x * 2 - 1``; ``forward`` applies that scaling
    itself, so every analysis reads pixels in ``[0, 1]`` (an all-zero baseline is black).

    The model code is the package's (install ``efficientnet-lite-pytorch==0.1.0 --no-deps``;
    torch only); this class only names it so that a checkpoint can say
    ``"explain_architecture": "efficientnet_lite0"`` and be rebuilt from safetensors. Submodules:
    ``net`` (the package's ``EfficientNet``: ``_conv_stem``, ``_blocks.<i>``, ``_conv_head``,
    the last convolution, and ``_fc``).
    """

    def __init__(self, n_classes: int = 1000) -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ImportError("the efficientnet_lite0 architecture needs the model code of "
                              "efficientnet-lite-pytorch; pip install --no-deps "
                              "efficientnet-lite-pytorch==0.1.0") from None
        self.config = {"n_classes": n_classes}
        self.net = EfficientNet.from_name("efficientnet-lite0", num_classes=n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


ARCHITECTURES: Mapping[str, type[nn.Module]] = MappingProxyType(
    {"mlp": MLP, "small_cnn": SmallCNN, "small_resnet": SmallResNet,
     "mha_transformer": MHATransformer, "efficientnet_lite0": EfficientNetLite0,
     "vit": VisionTransformer}
)


def architecture_name(module: nn.Module) -> str | None:
    """The ``ARCHITECTURES`` key of ``module``'s class, or ``None`` for other modules."""
    for name, cls in ARCHITECTURES.items():
        if type(module) is cls:
            return name
    return None


def build(name: str, config: Mapping[str, Any]) -> nn.Module:
    """Instantiate ``ARCHITECTURES[name](**config)`` with a clear error for unknown names."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown explain_architecture {name!r}; valid: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name](**dict(config))


_SHOWN = 5  # values or rows an error message lists before "and N more"


def _some(items: Sequence[str], limit: int = _SHOWN) -> str:
    """``'a', 'b', 'c' and 4 more``: the first ``limit`` of ``items`` (already formatted)."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def _rows(frame: pd.DataFrame, mask: np.ndarray) -> str:
    labels = [str(label) for label in frame.index[mask]]
    return f"{len(labels)} of {len(frame)} rows (index {_some(labels)})"


def _numeric_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Column ``column`` as finite float64; ``ValueError`` naming text that is not a number or
    the rows that are missing (NaN) or infinite."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    text = (values.isna() & raw.notna()).to_numpy()
    if text.any():
        counts = raw[text].astype(str).value_counts()
        found = [f"{value!r} ({count} row{'s' * int(count != 1)})" for value, count in counts.items()]
        raise ValueError(f"numeric column {column!r} holds values that are not numbers: "
                         f"{_some(found)}; convert them to numbers (or drop those rows) before "
                         f"encoding")
    values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"numeric column {column!r} is missing (NaN) or infinite in "
                         f"{_rows(frame, bad)}; the model has no input for a missing number: "
                         f"drop or impute those rows first")
    return values


def _categories(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Column ``column`` as strings; ``ValueError`` naming the rows where it is missing."""
    raw = frame[column]
    missing = raw.isna().to_numpy()
    if missing.any():
        raise ValueError(f"categorical column {column!r} is missing (NaN/None) in "
                         f"{_rows(frame, missing)}; a missing value is no category of the model: "
                         f"fill those rows with a category or drop them first")
    return raw.astype(str).to_numpy()


def _normalised(value: str) -> str:
    try:
        return repr(float(value))  # '1' and '1.0' name the same category
    except ValueError:
        return value.strip().casefold()


def _unseen_error(column: str, values: np.ndarray, known: Sequence[str]) -> ValueError:
    unseen, counts = np.unique(values[~np.isin(values, known)], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    found = [f"{unseen[i]!r} ({counts[i]} row{'s' * int(counts[i] != 1)})" for i in order]
    by_form = {_normalised(k): k for k in known}
    near = {str(v): by_form[_normalised(str(v))] for v in unseen if _normalised(str(v)) in by_form}
    fix = (f"map them to known categories, e.g. data[{column!r}] = "
           f"data[{column!r}].replace({near!r}), or drop those rows" if near else
           "map them to known categories or drop those rows")
    return ValueError(f"categorical column {column!r} holds values never seen in training: "
                      f"{_some(found)}; known categories: {_some([repr(k) for k in known], 30)}. "
                      f"The model has no input "
                      f"for an unseen category: {fix}")


class TabularEncoder:
    """Raw table -> float32 matrix: numeric columns standardised, categorical columns one-hot.

    Encoded feature names are ``column`` for numeric columns and ``column=value`` for each
    category (in sorted order). ``groups`` maps each raw column to the encoded indices it
    produced, so a one-hot group can be attributed as one feature. ``to_dict()``/``from_dict()``
    round-trip through JSON.

    Bad input raises ``ValueError`` naming the column and the values or rows, never encodes
    silently: a category unseen at fit time (the model has no input for it), a missing value
    (NaN/None) in any column, text that is not a number in a numeric column.
    """

    def __init__(self, numeric: Mapping[str, tuple[float, float]],
                 categorical: Mapping[str, Sequence[str]]) -> None:
        self.numeric = {k: (float(m), float(s)) for k, (m, s) in numeric.items()}
        self.categorical = {k: [str(v) for v in values] for k, values in categorical.items()}

    @classmethod
    def fit(cls, frame: pd.DataFrame, *, numeric: Sequence[str],
            categorical: Sequence[str]) -> TabularEncoder:
        _check_columns(frame, [*numeric, *categorical], "the encoder was asked to fit")
        stats = {}
        for column in numeric:
            values = pd.Series(_numeric_values(frame, column))
            std = float(values.std(ddof=0))
            stats[column] = (float(values.mean()), std if std > 0 and math.isfinite(std) else 1.0)
        cats = {column: sorted(set(_categories(frame, column))) for column in categorical}
        return cls(stats, cats)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def feature_names(self) -> list[str]:
        names = list(self.numeric)
        for column, values in self.categorical.items():
            names += [f"{column}={value}" for value in values]
        return names

    @property
    def groups(self) -> dict[str, list[int]]:
        groups, index = {}, 0
        for column in self.numeric:
            groups[column] = [index]
            index += 1
        for column, values in self.categorical.items():
            groups[column] = list(range(index, index + len(values)))
            index += len(values)
        return groups

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """``(n_rows, n_features)`` float32. ``KeyError`` names missing columns; ``ValueError``
        names unseen categories, missing values and non-numbers (see the class docstring)."""
        _check_columns(frame, self.columns, "the model was trained on")
        parts = []
        for column, (mean, std) in self.numeric.items():
            parts.append(((_numeric_values(frame, column) - mean) / std)[:, None])
        for column, known in self.categorical.items():
            values = _categories(frame, column)
            if not np.isin(values, known).all():
                raise _unseen_error(column, values, known)
            parts.append((values[:, None] == np.asarray(known)[None, :]).astype(np.float64))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; columns are lists of pairs so their order survives any JSON writer
        (the encoded feature order is the column order)."""
        return {"numeric": [[k, list(v)] for k, v in self.numeric.items()],
                "categorical": [[k, list(v)] for k, v in self.categorical.items()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TabularEncoder:
        def pairs(value):  # lists of [column, ...] pairs; plain mappings are read in their order
            return list(value.items()) if isinstance(value, Mapping) else [tuple(p) for p in value]

        return cls({k: tuple(v) for k, v in pairs(data["numeric"])},
                   dict(pairs(data["categorical"])))


def _check_columns(frame: Any, columns: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"a tabular encoder reads a pandas DataFrame with the columns "
                        f"{list(columns)}, got {type(frame).__name__}; pass already encoded "
                        f"features as a tensor instead")
    check_columns(frame, columns, where=f"the table ({what} {list(columns)})")
