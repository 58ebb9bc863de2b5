"""Provenance: library versions and content hashes recorded in every result's ``meta``."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import sys
from collections.abc import Iterable
from pathlib import Path

import torch

__all__ = ["sha256_files", "sha256_state_dict", "versions"]

_LIBRARIES = ("explain", "torch", "transformers", "captum", "numpy", "pandas", "matplotlib",
              "scikit-learn", "scipy", "fairlearn", "safetensors", "tokenizers")


def versions() -> dict[str, str]:
    """Python, platform and the version of every library `explain` computes with."""
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def sha256_files(paths: Iterable[Path], *, root: Path | None = None) -> str:
    """SHA-256 over the names (relative to ``root``) and bytes of ``paths``, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        name = path.relative_to(root) if root is not None else path.name
        digest.update(str(name).encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def sha256_state_dict(module: torch.nn.Module) -> str:
    """SHA-256 over the names, dtypes, shapes and values of a module's state dict.

    Zero-dimensional entries (a BatchNorm's ``num_batches_tracked``) are hashed like any other:
    their bytes are read through a flat view, which leaves the hash of every other entry as it was.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        # reshape(-1): torch cannot reinterpret a 0-d tensor as bytes of another element size.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()
