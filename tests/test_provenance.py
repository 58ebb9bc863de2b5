"""Provenance hashes: a module's state dict hashes by content, BatchNorm buffers included."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

import explain
from explain.provenance import sha256_state_dict


def _hash_before_batchnorm_support(module: nn.Module) -> str:
    """The code path sha256_state_dict replaced (it raised on 0-d entries of another element
    size than a byte); kept here so the hashes recorded before stay provably the same."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _without_batchnorm() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    net.register_buffer("flags", torch.tensor([True, False, True]))
    net.register_buffer("empty", torch.zeros(0))
    net.register_buffer("counts", torch.arange(5, dtype=torch.int64))
    net.half_copy = nn.Linear(2, 2).to(torch.bfloat16)
    return net


def _with_batchnorm(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


def test_the_hash_of_a_model_without_batchnorm_is_the_one_recorded_before(tiny_bert):
    for module in (_without_batchnorm(), tiny_bert.model):
        assert sha256_state_dict(module) == _hash_before_batchnorm_support(module)


def test_batchnorm_models_hash_by_their_weights_and_buffers():
    with pytest.raises(RuntimeError, match="cannot be 0"):  # what load_model used to hit
        _hash_before_batchnorm_support(_with_batchnorm())
    assert sha256_state_dict(_with_batchnorm()) == sha256_state_dict(_with_batchnorm())
    assert sha256_state_dict(_with_batchnorm(0)) != sha256_state_dict(_with_batchnorm(1))
    reference = sha256_state_dict(_with_batchnorm())
    for name in ("1.running_mean", "1.running_var", "1.num_batches_tracked",
                 "5.num_batches_tracked"):
        changed = _with_batchnorm()
        changed.state_dict()[name].add_(1)  # state_dict() shares storage with the buffers
        assert sha256_state_dict(changed) != reference, name


def test_load_model_accepts_an_in_memory_model_with_batchnorm():
    module = _with_batchnorm().eval()
    loaded = explain.load_model(module, task="image-classification", input_shape=(3, 8, 8))
    assert loaded.provenance["weights_sha256"] == sha256_state_dict(module)
