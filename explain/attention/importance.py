"""Head importance: how much each attention head supports the model's score, by masking it.

``head_importance(model, texts)`` zeroes one head's slice of the input of the attention output
projection that the model's family names (``Family.head_projection_names``: BERT
``attention.output.dense``, GPT-2 ``attn.c_proj``, T5 ``SelfAttention.o``, ...) through
``explain.hooks.edit_inputs`` (for ``nn.MultiheadAttention`` the head's contribution is
subtracted from the module's output, which is the same thing) and reports the drop of the
model's score for a target: a class logit (default: the predicted class) for classifiers, the
mean log-probability of the text's own tokens for language models, the mean log-probability of
``targets`` under teacher forcing for encoder-decoder LMs (``"seq2seq-lm"``). The heads are those
of the ``"self"`` stack (the encoder's, for an encoder-decoder classifier); a seq2seq LM's heads
are those of every stack of ``ATTENTIONS`` (encoder self, decoder self, cross), one head masked
at a time (Michel et al. 2019).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from .. import hooks
from ..checks import positive_int
from ..results import TableResult, make_meta
from ..text import TextBatch
from .figures import head_grid_figure
from .inputs import (
    batch_rows,
    check_model,
    check_selection,
    force_weights,
    forward_inputs,
    mha_modules,
)

__all__ = ["HeadImportanceResult", "decoder_batch", "greedy_targets", "head_importance"]


class HeadImportanceResult(TableResult):
    """The importance of each masked attention head (``head_importance``).

    ``to_frame()``: one row per (layer, head): ``layer``, ``head``, ``score`` (mean unmasked
    score), ``masked_score``, ``importance`` (= score - masked_score, mean over texts; positive:
    the head supports the score), ``importance_std``, ``n_texts``; for a ``"seq2seq-lm"`` model
    first an ``attention`` column (a key of ``ATTENTIONS``: which stack the head belongs to).
    ``texts``, ``truncated`` (per text), ``meta``. Immutable after construction.
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "heatmap": "layer x head heatmap of the importance (drop of the score when the head is "
                   "masked), diverging around 0",
    })
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({"heatmap": ()})

    def __init__(self, table, *, texts: Sequence[str], truncated: Sequence[bool],
                 meta: Mapping[str, Any]) -> None:
        super().__init__(table, meta=meta)
        self.texts = tuple(texts)
        self.truncated = tuple(bool(x) for x in truncated)
        self._freeze()

    @property
    def model_name(self) -> str:
        """The model's name from the provenance (``"model"`` when it has none)."""
        return str(self.meta.get("model", {}).get("name", "model"))

    def _plot(self, kind: str, *, ax=None):
        frame = self.table
        if "attention" in frame:
            # one row per (stack, layer), stacks in the order of ATTENTIONS
            frame = frame.assign(layer=[f"{a} {layer}" for a, layer in
                                        zip(frame["attention"], frame["layer"], strict=True)])
        grid = frame.pivot(index="layer", columns="head", values="importance")
        grid = grid.loc[list(dict.fromkeys(frame["layer"]))]
        n_texts = len(self.texts)
        title = (f"{self.model_name}: importance, mean over {n_texts} "
                 f"text{'s' if n_texts != 1 else ''}"
                 f"{' (some truncated)' if any(self.truncated) else ''}")
        return head_grid_figure(grid.to_numpy(dtype=float), ax=ax, layers=tuple(grid.index),
                                heads=tuple(grid.columns), statistic="importance", title=title)

    def summary(self) -> str:
        frame = self.table
        top = frame.loc[frame["importance"].idxmax()]
        stack = f"{top['attention']} " if "attention" in frame else ""
        n = len(self.texts)
        return (f"head importance: {len(frame)} heads of {self.model_name} over "
                f"{n} {'text' if n == 1 else 'texts'}; most important: {stack}layer {int(top['layer'])}, "
                f"head {int(top['head'])} (importance {top['importance']:.3g})")

def _stack_heads(model, kind: str) -> tuple[list[str], int]:
    """The output projection of each layer of the ``kind`` stack of an encoder-decoder and the
    stack's head count, read from its attention modules (BART's decoder may have another head
    count than its encoder)."""
    module, family = model.model, model.family
    names = list(family.head_projection_names(module, kind))
    attentions = family.attention_names(module, kind)
    counts = {getattr(module.get_submodule(a), "num_heads", None)
              or getattr(module.get_submodule(a), "n_heads", None) for a in attentions}
    counts.discard(None)
    if not names or len(names) != len(attentions) or len(counts) != 1:
        raise ValueError(f"{type(module).__name__}: its family {family.name!r} names "
                         f"{len(names)} {kind} output projections and {len(attentions)} {kind} "
                         f"attention modules (head counts {sorted(counts) or 'unknown'}); head "
                         f"importance needs one of each per layer and one head count (fix the "
                         f"family's head_projection_names and attention_names)")
    return names, int(counts.pop())


def _masked_modules(model) -> tuple[list[str], int, int, bool]:
    """Per layer, the module a head is masked at, the layer and head counts, and whether those
    are output projections (``True``) or ``nn.MultiheadAttention`` modules, from the family."""
    module, family = model.model, model.family
    projections = list(family.head_projection_names(module, "self"))
    names = projections or mha_modules(model)
    if not names:
        raise TypeError(f"{model.name} ({type(module).__name__}): its family {family.name!r} names "
                        f"no attention output projections (head_projection_names) and it has no "
                        f"nn.MultiheadAttention module; no heads to mask")
    n_layers, n_heads = family.n_layers(module), family.n_heads(module)
    if not n_layers or not n_heads or len(names) != n_layers:
        raise ValueError(f"{type(module).__name__}: its family {family.name!r} names "
                         f"{len(names)} attention {'output projections' if projections else 'modules'}"
                         f" ({', '.join(names)}) for {n_layers} layers of {n_heads} heads; head "
                         f"importance needs one per layer and both counts (fix the family's "
                         f"head_projection_names, n_layers and n_heads, or register one with "
                         f"explain.families.register_family)")
    return names, int(n_layers), int(n_heads), bool(projections)


def _scores(model, output, inputs: dict, targets: torch.Tensor | None) -> torch.Tensor:
    """Per row: the class logit of ``targets`` (classifiers), else the mean log-probability of
    the tokens of ``inputs`` (for a seq2seq LM: the decoder's), each after the first given those
    before it (causal and seq2seq LMs) or at its own position (masked LMs)."""
    logits = output.logits if hasattr(output, "logits") else output
    if model.task == "sequence-classification":
        return logits.gather(1, targets[:, None])[:, 0].float()
    mask = inputs["attention_mask"].float()
    ids = inputs["input_ids"]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    if model.task in ("causal-lm", "seq2seq-lm"):
        picked = logprobs[:, :-1].gather(2, ids[:, 1:, None])[..., 0]
        weights = mask[:, 1:]
    else:
        picked = logprobs.gather(2, ids[..., None])[..., 0]
        weights = mask
    return (picked * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def _mask_projection(head: int, n_heads: int):
    def edit(_module, args, kwargs):
        x = args[0]
        size = x.shape[-1] // n_heads
        x = x.clone()
        x[..., head * size:(head + 1) * size] = 0
        return (x, *args[1:]), kwargs

    return edit


def _mask_mha(head: int):
    def edit(module: nn.MultiheadAttention, inputs, output):
        attended, weights = output[0], output[1]
        value = inputs[2]
        if not module.batch_first:
            value = value.transpose(0, 1)
            attended = attended.transpose(0, 1)
        embed, n_heads = module.embed_dim, module.num_heads
        size = embed // n_heads
        if module.in_proj_weight is not None:
            w_v = module.in_proj_weight[2 * embed:][head * size:(head + 1) * size]
        else:
            w_v = module.v_proj_weight[head * size:(head + 1) * size]
        b_v = (module.in_proj_bias[2 * embed:][head * size:(head + 1) * size]
               if module.in_proj_bias is not None else None)
        v = torch.nn.functional.linear(value, w_v, b_v)              # (B, S, d)
        head_out = weights[:, head] @ v                                # (B, T, d)
        contribution = head_out @ module.out_proj.weight[:, head * size:(head + 1) * size].T
        attended = attended - contribution
        if not module.batch_first:
            attended = attended.transpose(0, 1)
        return (attended, weights)

    return edit


def _check_stacks(model, attention) -> tuple[str, ...]:
    from .result import ATTENTIONS

    seq2seq = model.task == "seq2seq-lm"
    if attention is None:
        return tuple(ATTENTIONS) if seq2seq else ("self",)
    kinds = (attention,) if isinstance(attention, str) else tuple(attention)
    valid = tuple(ATTENTIONS) if seq2seq else ("self",)
    wrong = [k for k in kinds if k not in valid]
    if not kinds or wrong:
        raise ValueError(f"attention={attention!r}: {model.name} ({model.task!r}) has the head "
                         f"stack(s) {', '.join(map(repr, valid))}; the decoder and cross stacks "
                         f"are masked for 'seq2seq-lm' models only")
    return tuple(k for k in valid if k in kinds)


def head_importance(
    model,
    texts: Sequence[str] | str,
    *,
    targets: Sequence[str] | str | None = None,
    attention: Sequence[str] | str | None = None,
    text_pairs: Sequence[str] | str | None = None,
    target: int | str | None = None,
    layers: Sequence[int] | int | None = None,
    heads: Sequence[int] | int | None = None,
    max_length: int | None = None,
    batch_size: int = 16,
) -> HeadImportanceResult:
    """Importance of each attention head for the model's score, by masking it.

    For each (layer, head) the head's output is zeroed (its slice of the input of the family's
    attention output projection, via ``explain.hooks.edit_inputs``; for ``nn.MultiheadAttention``
    its contribution is subtracted from the module output) and the model's score recomputed.
    Score: the logit of ``target`` (class name or index; default: each text's predicted class)
    for classifiers; the mean log-probability of the text's own tokens for masked and causal
    LMs; for a ``"seq2seq-lm"`` model, the mean log-probability of the tokens of ``targets``
    given the source and the target tokens before them (teacher forcing: the decoder reads the
    model's ``decoder_start_token_id`` then the target's tokens, no special tokens added, as
    ``explain.attribute(..., continuation=targets)`` does, built by ``decoder_batch``; an
    end-of-sequence token is not scored; a target longer than the decoder's limit is truncated
    and flagged in ``truncated``). Heads: those of the ``"self"`` stack (the encoder of an
    encoder-decoder); a seq2seq LM's ``attention`` stacks (keys of ``ATTENTIONS``, default all
    three), ``layers`` and ``heads`` selecting within each. Returns a ``HeadImportanceResult``
    (its ``to_frame()``: one row per (layer, head)). Cost: ``1 + layers x heads`` forward passes
    per stack. Hooks are removed also when a forward raises.
    """
    import pandas as pd

    model = check_model(model, "head_importance()")
    module = model.model
    if model.task not in ("sequence-classification", "causal-lm", "masked-lm", "seq2seq-lm"):
        raise ValueError(f"head importance needs a score: a classifier, a language model or a "
                         f"seq2seq LM; {model.name} is a {model.task!r} model")
    seq2seq = model.task == "seq2seq-lm"
    stacks = _check_stacks(model, attention)
    if seq2seq and (targets is None or text_pairs is not None):
        raise ValueError(f"head importance of the seq2seq LM {model.name} scores the "
                         f"log-probability of targets=: pass one target per text (and no "
                         f"text_pairs=)")
    if targets is not None and not seq2seq:
        raise ValueError(f"targets= are the decoder inputs of a 'seq2seq-lm' model; {model.name} "
                         f"is a {model.task!r} model")
    batch_size = positive_int(batch_size, "batch_size")
    batch = model.encode_texts(texts, text_pairs=text_pairs,
                               max_length=max_length)
    if seq2seq:
        decoder = decoder_batch(model, targets, len(batch), max_length=max_length)
        plan = {kind: _stack_heads(model, kind) for kind in stacks}
        plan = {kind: (names, len(names), n_heads, True) for kind, (names, n_heads) in plan.items()}
    else:
        plan = {"self": _masked_modules(model)}
    selections = {kind: (check_selection(layers, n_layers, "layers"),
                         check_selection(heads, n_heads, "heads"))
                  for kind, (_, n_layers, n_heads, _) in plan.items()}
    target_index = None
    if target is not None:
        if model.task != "sequence-classification":
            raise ValueError(f"target= selects a class of a classifier; {model.name} is a "
                             f"{model.task!r} model scored by the log-probability of its text")
        target_index = model.label_index(target)

    def run(edits: Mapping[str, Any], chunks: list, by_projection: bool) -> torch.Tensor:
        scores = []
        for call, inputs, classes in chunks:
            if by_projection:
                with hooks.edit_inputs(model, edits):
                    output = module(**call)
            else:
                with hooks.edit_inputs(model, dict.fromkeys(edits, force_weights)), \
                        hooks.edit_outputs(model, edits):
                    output = module(**call)
            scores.append(_scores(model, output, inputs, classes))
        return torch.cat(scores)

    rows = []
    with hooks.preserved_state(model), torch.inference_mode():
        module.eval()
        # One unmasked forward per chunk gives both the predicted classes and the baseline.
        chunks, baseline = [], []
        for start in range(0, len(batch), batch_size):
            stop = min(start + batch_size, len(batch))
            inputs = batch_rows(batch, start, stop, device=model.device)
            call = forward_inputs(module, inputs) if not model.is_huggingface else inputs
            if seq2seq:
                inputs = batch_rows(decoder, start, stop, device=model.device)
                call = {**call, "decoder_input_ids": inputs["input_ids"],
                        "decoder_attention_mask": inputs["attention_mask"]}
            output = module(**call)
            classes = None
            if model.task == "sequence-classification":
                logits = output.logits if hasattr(output, "logits") else output
                classes = (logits.argmax(-1) if target_index is None
                           else torch.full((stop - start,), target_index, dtype=torch.long,
                                           device=logits.device))
            baseline.append(_scores(model, output, inputs, classes))
            chunks.append((call, inputs, classes))
        baseline = torch.cat(baseline)
        for kind, (names, _, n_heads, by_projection) in plan.items():
            layer_sel, head_sel = selections[kind]
            for layer in layer_sel:
                for head in head_sel:
                    edit = _mask_projection(head, n_heads) if by_projection else _mask_mha(head)
                    masked = run({names[layer]: edit}, chunks, by_projection)
                    change = (baseline - masked).double().cpu().numpy()
                    rows.append({**({"attention": kind} if seq2seq else {}),
                                 "layer": layer, "head": head,
                                 "score": float(baseline.double().mean()),
                                 "masked_score": float(masked.double().mean()),
                                 "importance": float(change.mean()),
                                 "importance_std": float(change.std(ddof=1)) if len(change) > 1
                                 else math.nan,
                                 "n_texts": len(change)})
    if seq2seq:
        score = "mean log-probability of the target's tokens (teacher forcing)"
    elif model.task != "sequence-classification":
        score = "mean log-probability of the text's own tokens"
    elif target_index is None:
        score = "logit of the predicted class"
    else:
        score = f"logit of class {target_index}"
    by_projection = all(entry[3] for entry in plan.values())
    layer_sel, head_sel = selections[next(iter(plan))]
    meta = make_meta(model, method="head_importance", parameters={
        "layers": list(layer_sel), "heads": list(head_sel), "target": target, "score": score,
        "max_length": batch.max_length, "batch_size": batch_size,
        **({"attention": list(stacks), "targets": [targets] if isinstance(targets, str)
            else list(targets), "decoder_start_token_id": model.config.decoder_start_token_id}
           if seq2seq else {}),
        "masking": "output projection input" if by_projection
        else "nn.MultiheadAttention contribution"})
    truncated = batch.truncated if not seq2seq else tuple(
        a or b for a, b in zip(batch.truncated, decoder.truncated, strict=True))
    return HeadImportanceResult(pd.DataFrame(rows), texts=batch.texts, truncated=truncated,
                                meta=meta)


def decoder_batch(model, targets, n_texts: int, *, max_length: int | None = None) -> TextBatch:
    """The decoder input of an encoder-decoder under teacher forcing, as it was trained and as
    ``explain.attribute(..., continuation=targets)`` reads it: per target, the model's
    ``decoder_start_token_id`` (a special token, a word unit of its own) then the target's tokens
    without special tokens, right-padded, as a ``TextBatch`` (its words are the tokenizer's).
    A target longer than the decoder reads after its start token (``max_length`` or the model's
    position limit, minus one) is truncated, flagged in ``truncated`` and warned about."""
    import warnings

    from ..errors import ExplainWarning
    from ..text import encode_texts, model_max_length

    targets = [targets] if isinstance(targets, str) else list(targets)
    if len(targets) != n_texts:
        raise ValueError(f"got {n_texts} texts but {len(targets)} targets; pass one target per text")
    for i, text in enumerate(targets):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"targets[{i}] is empty or not a string: {text!r}; pass the target "
                             f"text the decoder should read")
    start = getattr(model.config, "decoder_start_token_id", None)
    if start is None:
        raise ValueError(f"{type(model.model).__name__}'s config has no decoder_start_token_id, "
                         f"so its decoder has no first input; set model.config."
                         f"decoder_start_token_id (the token its decoder was trained to start "
                         f"from)")
    tokenizer = model.tokenizer
    limit = model_max_length(tokenizer, model.family.max_positions(model.model))
    keep = (limit if max_length is None else min(limit, max_length)) - 1
    # The words come from encode_texts (special tokens added, then dropped here); it may keep
    # up to keep + the special tokens it adds, never more than the tokenizer's own limit.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplainWarning)
        words = encode_texts(tokenizer, targets, max_length=min(
            keep + tokenizer.num_special_tokens_to_add(), model_max_length(tokenizer)))
    plain = tokenizer(targets, add_special_tokens=False)["input_ids"]
    columns: dict[str, list] = {k: [] for k in ("ids", "tokens", "offsets", "special", "segment",
                                                "word_index", "truncated")}
    start_token = tokenizer.convert_ids_to_tokens(int(start))
    for i, text in enumerate(targets):
        kept = [t for t, special in enumerate(words.special[i]) if not special][:keep]
        ids = [int(v) for v in words.input_ids[i, kept]]
        if ids != plain[i][:len(kept)]:
            raise ValueError(f"targets[{i}] {text!r} tokenises differently with and without "
                             f"special tokens, so its decoder tokens have no words; pass the "
                             f"target as the tokenizer reads it")
        columns["ids"].append([int(start), *ids])
        columns["tokens"].append((start_token, *(words.tokens[i][t] for t in kept)))
        columns["offsets"].append(((0, 0), *(words.offsets[i][t] for t in kept)))
        columns["special"].append((True, *(False for _ in kept)))
        columns["segment"].append((-1, *(words.segment[i][t] for t in kept)))
        columns["word_index"].append((-1, *(words.word_index[i][t] for t in kept)))
        columns["truncated"].append(len(kept) < len(plain[i]))
    if any(columns["truncated"]):
        which = [i for i, cut in enumerate(columns["truncated"]) if cut]
        warnings.warn(f"targets {which} have more than the {keep} tokens the decoder reads after "
                      f"its start token and were truncated; the result marks them in "
                      f"`truncated`", ExplainWarning, stacklevel=3)
    lengths = tuple(len(ids) for ids in columns["ids"])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # a TextBatch is CPU data, like encode_texts' (batch_rows moves its rows to the model)
    input_ids = torch.full((n_texts, max(lengths)), int(pad), dtype=torch.long, device="cpu")
    mask = torch.zeros_like(input_ids)
    for i, ids in enumerate(columns["ids"]):
        input_ids[i, :len(ids)] = torch.tensor(ids, device="cpu")
        mask[i, :len(ids)] = 1
    n_words = [max(index, default=-1) + 1 for index in columns["word_index"]]
    return TextBatch(
        texts=tuple(targets), text_pairs=None, input_ids=input_ids, attention_mask=mask,
        token_type_ids=None, lengths=lengths, tokens=tuple(columns["tokens"]),
        offsets=tuple(columns["offsets"]), special=tuple(columns["special"]),
        segment=tuple(columns["segment"]), word_index=tuple(columns["word_index"]),
        words=tuple(w[:n] for w, n in zip(words.words, n_words, strict=True)),
        word_spans=tuple(w[:n] for w, n in zip(words.word_spans, n_words, strict=True)),
        truncated=tuple(columns["truncated"]), max_length=keep + 1)


def greedy_targets(model, batch: TextBatch) -> list[str]:
    """The model's greedy output for each source of ``batch`` as text (its tokens up to the first
    end-of-sequence token, special tokens left out), as ``explain.attribute(continuation=None)``
    generates it (``explain.attribution.targets.decoder_targets``); a ``ValueError`` when an
    output does not tokenise back to the same tokens (its words could not be read)."""
    from ..attribution.targets import decoder_targets

    tokenizer, texts = model.tokenizer, []
    for i, (ids, explained) in enumerate(decoder_targets(model, batch.input_ids,
                                                         batch.attention_mask, None)):
        tokens = [ids[j] for j in explained]
        text = tokenizer.decode(tokens)
        if tokenizer(text, add_special_tokens=False)["input_ids"] != tokens:
            raise ValueError(f"the greedy output for texts[{i}] "
                             f"{tokenizer.convert_ids_to_tokens(tokens)[:8]} does not tokenise "
                             f"back to the same tokens as text ({text[:60]!r}), so its words "
                             f"cannot be read; pass targets= the texts the decoder should read")
        texts.append(text)
    return texts
