"""Inputs of an attribution: the modality of a model, user inputs turned into ``Item``s (the
attributed tensor, its baseline, its units and its target), and batches of items (``collate``).

How each modality is attributed (one representation for every method, so methods compare):

* **text** (classifiers, masked and causal LMs): the attributed tensor is the output of the
  model's word-embedding layer, ``(N, T, D)``; the forward pass swaps it in through
  ``explain.hooks.edit_outputs``. An encoder-decoder's is its encoder's token embedding of the
  source (given as ``inputs_embeds``); each target token is one item, explained given the
  source and the target tokens before it (teacher forcing: the decoder prefix is fixed).
  Integrated gradients on it *is* Captum's ``LayerIntegratedGradients`` on the word
  embeddings. The baseline replaces every non-special token by the pad token (special tokens
  are kept); perturbation methods replace a token's embedding by the baseline's, i.e. the
  token by the pad token. Token score = sum over the embedding dimension (gradient methods) or
  the token's group value (perturbation methods); word score = sum over the word's tokens
  (``explain.text.fold_scores``). A text longer than ``max_length`` is truncated, warned about
  and marked ``truncated``: a causal LM keeps the *end* of its prompt (its next token and a
  continuation follow the prompt's end), other models the start; a ``[MASK]`` after the cut,
  and a continuation or encoder-decoder target longer than the context, are ``ValueError``s.
* **tabular**: the encoded float matrix ``(N, F)``; baseline zeros (the training mean of a
  standardised numeric column; "no category" for a one-hot group). One-hot groups of
  ``model.feature_groups`` are one feature: summed for gradient methods, perturbed together
  (a Captum feature mask) for perturbation methods.
* **image**: pixels ``(N, C, H, W)``; baseline zeros. Gradient methods give a score per pixel
  (summed over channels); perturbation methods perturb square patches (``patch_size``) and
  spread a patch's score evenly over its pixels, so sums are preserved; GradCAM is upsampled to
  the image size.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import hooks
from ..checks import positive_int
from ..text import encode_texts
from .targets import (
    assign_class_targets,
    baseline_token,
    continuation_fits,
    continuation_texts,
    decoder_targets,
    encoder_embedding,
    mask_in_context,
    resolve_class_target,
    token_id,
)

__all__ = ["Item", "Prepared", "collate", "content_seed", "item_offsets", "modality", "prepare"]


def modality(task: str) -> str:
    """The modality (``"text"``, ``"tabular"``, ``"image"``) of a model of ``task``."""
    if task in ("sequence-classification", "masked-lm", "causal-lm", "seq2seq-lm"):
        return "text"
    if task == "tabular-classification":
        return "tabular"
    if task == "image-classification":
        return "image"
    raise ValueError(f"attributions need a model with an output to explain; task {task!r} has "
                     f"none (load the model with a classification or language-model head)")


def check_modality_options(kind: str, task: str, *, patch_size, max_length, text_pairs,
                            continuation) -> None:
    """Options of one modality given for a model of another are errors, not ignored."""
    only = {"patch_size": ("image", patch_size, "the side of a square image patch in pixels"),
            "max_length": ("text", max_length, "tokens per text"),
            "text_pairs": ("text", text_pairs, "second texts of a pair classifier"),
            "continuation": ("text", continuation, "a causal LM's continuation or an "
                                                   "encoder-decoder's target text")}
    for name, (applies, value, meaning) in only.items():
        if value is not None and kind != applies:
            raise ValueError(f"{name}= ({meaning}) applies to {applies} models; this is a "
                             f"{kind} model (task {task!r}): remove {name}=")
    if patch_size is not None:
        positive_int(patch_size, "patch_size", fix="pass e.g. patch_size=4")
    if max_length is not None:
        positive_int(max_length, "max_length", fix="pass e.g. max_length=128")


# ------------------------------------------------------------------------------ prepared


@dataclass
class Item:
    """One explained input: what the result needs to report it, independent of batching."""

    input_id: int
    kind: str
    x: torch.Tensor                 # the attributed tensor of this input (no batch dimension)
    baseline: torch.Tensor          # same shape
    units: torch.Tensor             # same shape, int64: element -> unit id (-1: not a unit)
    unit_labels: list[str]
    target: int = -1                # class or token id explained
    contrast: int = -1              # class subtracted for a contrast target, else -1
    position: int = -1              # LM: the position whose logits are explained
    target_label: str = ""
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # input_ids, token types
    text: dict[str, Any] = field(default_factory=dict)            # tokens, words, offsets...
    truncated: bool = False

    @property
    def length(self) -> int:
        return int(self.extra["input_ids"].shape[0]) if self.kind == "text" else 0


@dataclass
class Prepared:
    kind: str
    items: list[Item]
    embedding_name: str | None = None
    pad_id: int = 0
    embedding: nn.Module | None = None  # text: embeddings are looked up per batch (memory)


# -------------------------------------------------------------------------------- inputs


def _as_float_tensor(values: Any, what: str) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        tensor = values.detach().to(torch.float32).cpu()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(values, dtype=np.float32), device="cpu")
        except (TypeError, ValueError) as error:
            raise TypeError(f"{what} must be numeric (a tensor, array or DataFrame of numbers): "
                            f"{error}") from None
    return tensor


def _check_finite(tensor: torch.Tensor, what: str, names: Sequence[str] | None = None) -> None:
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        where = bad.nonzero()[0].tolist()
        column = ""
        if names is not None and tensor.dim() == 2:
            column = f" (feature {names[where[1]]!r})"
        raise ValueError(f"{what} holds NaN or infinite values, first at index "
                         f"{tuple(where)}{column}; drop or impute those values first")


def _tabular_inputs(loaded, inputs) -> torch.Tensor:
    import pandas as pd

    names = list(loaded.feature_names or ())
    if isinstance(inputs, pd.DataFrame):
        if len(inputs) == 0:
            raise ValueError("inputs is an empty DataFrame; pass at least one row")
        if loaded.encoder is not None and set(names) <= set(inputs.columns):
            x = _as_float_tensor(inputs[names].to_numpy(dtype=float), "inputs")  # encoded
        else:  # raw columns through the encoder, or the feature columns (errors name them)
            x = loaded.encode_frame(inputs)
    else:
        x = _as_float_tensor(inputs, "inputs")
        if x.dim() == 1:
            x = x[None]
    if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] != len(names):
        raise ValueError(f"tabular inputs must have shape (n_rows, {len(names)}) to match the "
                         f"model's features, got {tuple(x.shape)}")
    _check_finite(x, "inputs", names)
    return x


def _image_inputs(loaded, inputs) -> torch.Tensor:
    x = _as_float_tensor(inputs, "images")
    shape = tuple(loaded.input_shape or ())
    if x.dim() == len(shape) and tuple(x.shape) == shape:
        x = x[None]
    if x.dim() != 4 or x.shape[0] == 0 or (shape and tuple(x.shape[1:]) != shape):
        raise ValueError(f"images must have shape (N, {', '.join(map(str, shape))}) = (N, C, H, "
                         f"W) for this model, got {tuple(x.shape)}; add a batch dimension or "
                         f"reorder channels first")
    _check_finite(x, "images")
    return x


def _groups(loaded) -> list[tuple[str, list[int]]]:
    names = list(loaded.feature_names or ())
    covered: set[int] = set()
    groups = []
    for column, indices in (loaded.feature_groups or {}).items():
        groups.append((column, [int(i) for i in indices]))
        covered.update(int(i) for i in indices)
    for i, name in enumerate(names):
        if i not in covered:
            groups.append((name, [i]))
    groups.sort(key=lambda g: min(g[1]))
    return groups


def _broadcast_baseline(baseline, x: torch.Tensor, what: str) -> torch.Tensor:
    if baseline is None:
        return torch.zeros_like(x)
    b = _as_float_tensor(baseline, "baseline")
    try:
        b = torch.broadcast_to(b, x.shape).clone()
    except RuntimeError:
        raise ValueError(f"baseline of shape {tuple(b.shape)} does not broadcast to the {what} "
                         f"of shape {tuple(x.shape)}") from None
    _check_finite(b, "baseline")
    return b


def prepare(loaded, inputs, *, target=None, text_pairs=None, baseline=None,
            max_length=None, patch_size=None, continuation=None) -> Prepared:
    """Turn user inputs into ``Item``s (one per explained output)."""
    kind = modality(loaded.task)
    if isinstance(inputs, (str, bytes)) and kind != "text":
        raise TypeError(f"a {loaded.task!r} model takes numeric inputs, not a string")
    if kind == "text":
        return _prepare_text(loaded, inputs, target=target, text_pairs=text_pairs,
                             baseline=baseline, max_length=max_length, continuation=continuation)
    if kind == "tabular":
        x = _tabular_inputs(loaded, inputs)
        base = _broadcast_baseline(baseline, x, "inputs")
        groups = _groups(loaded)
        units = torch.full((x.shape[1],), -1, dtype=torch.long, device="cpu")
        for g, (_, indices) in enumerate(groups):
            units[indices] = g
        labels = [name for name, _ in groups]
        items = [Item(i, kind, x[i], base[i], units, labels) for i in range(x.shape[0])]
    else:
        x = _image_inputs(loaded, inputs)
        base = _broadcast_baseline(baseline, x, "images")
        _, channels, height, width = x.shape
        patch = _patch_size(patch_size, height, width)
        rows = torch.arange(height, device="cpu")[:, None] // patch
        cols = torch.arange(width, device="cpu")[None, :] // patch
        n_cols = math.ceil(width / patch)
        grid = (rows * n_cols + cols).expand(channels, height, width).contiguous()
        labels = []
        for r in range(math.ceil(height / patch)):
            for c in range(n_cols):
                labels.append(f"rows {r * patch}-{min(height, (r + 1) * patch) - 1}, "
                              f"cols {c * patch}-{min(width, (c + 1) * patch) - 1}")
        items = [Item(i, kind, x[i], base[i], grid, labels) for i in range(x.shape[0])]
    assign_class_targets(loaded, items, target)
    return Prepared(kind, items)


def _patch_size(patch_size, height: int, width: int) -> int:
    if patch_size is None:
        return max(1, min(height, width) // 8)
    positive_int(patch_size, "patch_size", fix="pass the side of a square patch in pixels, "
                                                "e.g. patch_size=4")
    if patch_size > min(height, width):
        raise ValueError(f"patch_size={patch_size} is larger than the image ({height}x{width})")
    return patch_size


def _prepare_text(loaded, inputs, *, target, text_pairs, baseline, max_length,
                  continuation) -> Prepared:
    tokenizer = loaded.tokenizer
    task = loaded.task
    if text_pairs is not None and task != "sequence-classification":
        raise ValueError("text_pairs applies to sequence classifiers only")
    if continuation is not None and task not in ("causal-lm", "seq2seq-lm"):
        raise ValueError("continuation= applies to causal language models and encoder-decoders "
                         f"only (task {task!r}); for a classifier pass target=")
    seq2seq = task == "seq2seq-lm"
    if seq2seq and target is not None:
        raise ValueError("an encoder-decoder explains the tokens of its target text: pass "
                         "continuation= the target texts (or nothing, for its own greedy "
                         "output), not target=")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, Sequence) or isinstance(inputs, (bytes, bytearray)):
        try:
            inputs = list(inputs)
        except TypeError:
            raise TypeError(f"text inputs are a string or a list of strings, got "
                            f"{type(inputs).__name__}") from None
    texts = list(inputs)
    if not texts:
        raise ValueError("no inputs given; pass one string or a non-empty list of strings")
    if continuation is not None:
        continuation = continuation_texts(continuation, len(texts))
    if task == "causal-lm":
        # A causal LM explains what follows the end of its prompt: a too-long prompt keeps its
        # end (left truncation), not its start. LoadedModel.encode_texts has no side to choose.
        full = texts if continuation is None else [
            t + c for t, c in zip(texts, continuation, strict=True)]
        batch = encode_texts(tokenizer, full, max_length=max_length, truncation_side="left",
                             max_positions=loaded.family.max_positions(loaded.model))
    else:
        batch = loaded.encode_texts(texts, text_pairs=text_pairs, max_length=max_length)

    model = loaded.model
    if seq2seq:
        name, embedding = encoder_embedding(model)
        # encode_texts pads on the right: its attention mask marks each row's real tokens
        decoded = decoder_targets(
            loaded, *loaded.to_device((batch.input_ids, batch.attention_mask)), continuation)
    else:
        name = loaded.family.embedding_name(model)
        if name is None:  # load_model refuses such a text model; a hand-made LoadedModel may
            raise TypeError(f"the model family {loaded.family.name!r} finds no token embedding "
                            f"in {type(model).__name__} to attribute text through; register a "
                            f"family whose embedding_name names it "
                            f"(explain.families.register_family)")
        embedding = hooks.resolve_modules(model, [name])[name]
    dim = _embedding_dim(embedding)
    pad_id = baseline_token(loaded, baseline)
    mask_id = tokenizer.mask_token_id
    items: list[Item] = []
    targets = target if isinstance(target, list) else None
    if targets is not None and len(targets) != len(texts):
        raise ValueError(f"got {len(targets)} targets for {len(texts)} inputs; pass one target, "
                         f"or one per input")
    with torch.no_grad():
        for i in range(len(batch)):
            length = batch.lengths[i]
            ids = batch.input_ids[i, :length]
            types = batch.token_type_ids[i, :length] if batch.token_type_ids is not None else None
            special = torch.tensor(batch.special[i], dtype=torch.bool, device="cpu")
            base_ids = torch.where(special, ids, torch.full_like(ids, pad_id))
            text_info = {"text": texts[i], "text_pair": text_pairs[i] if text_pairs else None,
                         "tokens": batch.tokens[i], "offsets": batch.offsets[i],
                         "word_index": batch.word_index[i], "words": batch.words[i],
                         "word_spans": batch.word_spans[i], "segment": batch.segment[i],
                         "special": batch.special[i]}
            spec = targets[i] if targets is not None else target
            cuts = [length]
            if seq2seq:
                decoder_ids, cuts = decoded[i]
            elif continuation is not None:
                start = len(texts[i])
                if batch.truncated[i]:
                    continuation_fits(tokenizer, batch, i, texts[i], continuation[i])
                cuts = [t for t in range(1, length)
                        if batch.offsets[i][t][1] > start and not batch.special[i][t]]
                if not cuts:
                    raise ValueError(f"continuation[{i}] {continuation[i]!r} adds no token "
                                     f"within max_length")
            for cut in cuts:
                keep = cut if continuation is not None and not seq2seq else length
                # embeddings are looked up per batch (collate), so a large dataset holds token
                # ids only; units are a broadcast view (no copy)
                units = torch.arange(keep, device="cpu")[:, None].expand(keep, dim)
                extra = {"input_ids": ids[:keep], "baseline_ids": base_ids[:keep]}
                if types is not None:
                    extra["token_type_ids"] = types[:keep]
                info = dict(text_info)
                if seq2seq:
                    # the decoder reads the target tokens before ``cut`` and predicts ``cut``
                    extra["decoder_input_ids"] = torch.tensor(decoder_ids[:cut], device="cpu")
                    info["target_tokens"] = tuple(tokenizer.convert_ids_to_tokens(
                        decoder_ids[1:]))
                elif continuation is not None:
                    info = _slice_text(info, keep)
                item = Item(i, "text", None, None, units, list(info["tokens"]), extra=extra,
                            text=info, truncated=batch.truncated[i])
                if task == "masked-lm":
                    where = (ids == mask_id).nonzero().flatten().tolist() if mask_id is not None \
                        else []
                    if not where and batch.truncated[i]:
                        mask_in_context(loaded, batch, i)
                    if not where:
                        raise ValueError(f"texts[{i}] has no {tokenizer.mask_token!r} token; a "
                                         f"masked LM explains the token predicted at the mask: "
                                         f"{texts[i]!r}")
                    item.position = where[0]
                    if spec is not None:
                        item.target = token_id(loaded, spec)
                elif seq2seq:
                    item.position = cut - 1
                    item.target = int(decoder_ids[cut])
                elif task == "causal-lm":
                    item.position = keep - 1
                    if continuation is not None:
                        item.target = int(ids[keep])
                    elif spec is not None:
                        item.target = token_id(loaded, spec)
                else:
                    resolved = resolve_class_target(loaded, spec)
                    if resolved is not None:
                        item.target, item.contrast = resolved
                items.append(item)
    return Prepared("text", items, embedding_name=name, pad_id=pad_id, embedding=embedding)


def _embedding_dim(embedding: nn.Module) -> int:
    weight = getattr(embedding, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return int(weight.shape[1])
    with torch.no_grad():
        probe = torch.zeros(1, 1, dtype=torch.long, device=next(embedding.parameters()).device)
        return int(embedding(probe).shape[-1])


def _slice_text(info: dict, keep: int) -> dict:
    out = dict(info)
    for key in ("tokens", "offsets", "word_index", "segment", "special"):
        out[key] = tuple(info[key][:keep])
    used = [w for w in out["word_index"] if w >= 0]
    n_words = max(used) + 1 if used else 0
    out["words"] = tuple(info["words"][:n_words])
    out["word_spans"] = tuple(info["word_spans"][:n_words])
    end = max((e for s, e in out["offsets"]), default=0)
    out["text"] = info["text"][:end] if end else info["text"]
    return out


# ------------------------------------------------------------------------------ batching


def collate(prepared: Prepared, items: Sequence[Item], *, device: torch.device
            ) -> tuple[torch.Tensor, torch.Tensor, tuple, torch.Tensor]:
    """Stack items (CPU data) into ``(x, baseline, extra_args, units)`` on ``device``, the
    model's. Text is right-padded with the pad token on the CPU (input == baseline on padding,
    attention-masked), then moved and embedded. ``extra_args``: ``(input_ids, attention_mask,
    token_type_ids, target, contrast, position)``, and for an encoder-decoder the decoder
    prefixes ``(N, L)`` seventh (``Scorer``'s ``decoder_input_ids``)."""
    target = torch.tensor([it.target for it in items], dtype=torch.long, device=device)
    contrast = torch.tensor([it.contrast for it in items], dtype=torch.long, device=device)
    position = torch.tensor([it.position for it in items], dtype=torch.long, device=device)
    if prepared.kind != "text":
        x = torch.stack([it.x for it in items]).to(device)
        b = torch.stack([it.baseline for it in items]).to(device)
        units = torch.stack([it.units for it in items]).to(device)
        return x, b, (None, None, None, target, contrast, position), units
    width = max(it.length for it in items)
    ids = torch.full((len(items), width), prepared.pad_id, dtype=torch.long, device="cpu")
    base_ids = torch.full((len(items), width), prepared.pad_id, dtype=torch.long, device="cpu")
    mask = torch.zeros(len(items), width, dtype=torch.long, device="cpu")
    has_types = "token_type_ids" in items[0].extra
    types = torch.zeros(len(items), width, dtype=torch.long, device="cpu") if has_types else None
    decoder = None
    if "decoder_input_ids" in items[0].extra:  # right-padded; the decoder is causal
        prefixes = [it.extra["decoder_input_ids"] for it in items]
        decoder = torch.full((len(items), max(len(p) for p in prefixes)), prepared.pad_id,
                             dtype=torch.long, device="cpu")
        for r, prefix in enumerate(prefixes):
            decoder[r, :len(prefix)] = prefix
    for r, it in enumerate(items):
        n = it.length
        ids[r, :n] = it.extra["input_ids"]
        base_ids[r, :n] = it.extra["baseline_ids"]
        mask[r, :n] = 1
        if has_types:
            types[r, :n] = it.extra["token_type_ids"]
    ids, base_ids, mask, types, decoder = (None if t is None else t.to(device)
                                           for t in (ids, base_ids, mask, types, decoder))
    with torch.no_grad():
        # padding: input == baseline == the pad token's embedding (and attention-masked)
        x = prepared.embedding(ids).detach().float()
        b = prepared.embedding(base_ids).detach().float()
    dim = x.shape[2]
    units = torch.full((len(items), width, dim), -1, dtype=torch.long, device="cpu")
    for r, it in enumerate(items):
        n = it.length
        if it.x is not None:  # an explicit (e.g. perturbed) embedding tensor
            x[r, :n] = it.x.to(device)
        units[r, :n] = it.units
    args = (ids, mask, types, target, contrast, position)
    return x, b, args if decoder is None else (*args, decoder), units.to(device)


def _slice_args(args: tuple, rows) -> tuple:
    return tuple(a[rows] if isinstance(a, torch.Tensor) else a for a in args)


def item_offsets(items: Sequence[Item]) -> list[int]:
    """Per item, its index among the items of its input (several for LM continuations)."""
    seen: dict[int, int] = {}
    offsets = []
    for item in items:
        offsets.append(seen.get(item.input_id, 0))
        seen[item.input_id] = offsets[-1] + 1
    return offsets


def content_seed(seed: int, purpose: str, item: Item) -> int:
    """A 63-bit seed from ``seed``, ``purpose`` (the method, or the faithfulness random
    ranking) and a stable hash (BLAKE2b) of what ``item`` is: its token ids and token types
    (text) or values (tabular, image), its baseline, unit layout, target, contrast and
    position. Not its index in the list: the same input gets the same seed wherever it is."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{int(seed)}|{purpose}|{item.kind}|{item.target}|{item.contrast}|"
                  f"{item.position}".encode())
    tensors = [item.extra[k] for k in sorted(item.extra)]
    if item.kind != "text":
        tensors += [item.x, item.baseline, item.units]
    elif item.x is not None:  # an explicit (perturbed) embedding tensor
        tensors.append(item.x)
    for tensor in tensors:
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return int.from_bytes(digest.digest(), "little") % (2**63 - 1)

