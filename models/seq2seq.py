"""Reference model ``seq2seq``: a small BART that normalises spelled-out English dates.

Recipe (fixed seed 0, about a minute on 2 CPU cores):

* data: generated here, so that the source-target alignment is known by construction. A date
  from 1901-01-01 to 2099-12-31 (2000 left out: "twenty hundred" is no English) is spelled in
  one of two word orders, ``"the twenty first of march nineteen ninety"`` or
  ``"march the twenty first nineteen ninety"``, and normalised to ``"1990 03 21"`` (year, month,
  day: the year moves from the end to the front). Years read as century + two digits
  (``"nineteen oh five"``, ``"twenty twelve"``, ``"nineteen ninety nine"``);
* split: ``TRAIN_SIZE`` + ``HELDOUT_SIZE`` distinct dates drawn by a ``numpy`` generator (seed 0),
  each with a random word order; no held-out date (in either order) is a training date;
* tokenizer: word level (``tokenizers.WordLevel`` + whitespace pre-tokenizer in a
  ``PreTrainedTokenizerFast``), one vocabulary for source and target words, with ``<pad>``,
  ``<s>``, ``</s>``, ``<unk>``: every word is exactly one token, so word indices are token
  indices (after the leading ``<s>``);
* model: ``BartForConditionalGeneration`` from a small config (``D_MODEL`` wide, 2 encoder and
  2 decoder layers of ``HEADS`` heads, eager attention), initialised from seed 0;
* training: AdamW (lr ``LEARNING_RATE``, linear decay), batch ``BATCH_SIZE``, ``EPOCHS`` epochs,
  cross-entropy on the target tokens with teacher forcing, one torch thread;
* evaluation: exact match of greedy decoding on the held-out sources (target >= 0.95) against
  the best constant answer (the most frequent training target: a trivial baseline), and per
  target field (year, month, day).

``heldout.csv``: ``source``, ``target``, ``alignment`` (Pharaoh ``"i-j ..."``: source word ``i``
produces target word ``j``, both 0-based over whitespace-split words; the year to the century and
two-digit words, the month to its name, the day to its one or two words; ``the``/``of``
unaligned) and ``order`` (``"day-first"`` or ``"month-first"``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import explain

from ._recipe import make_card, save_checkpoint

__all__ = ["alignment_pairs", "build_tokenizer", "decode", "spell_date", "train"]

SEED = 0
TRAIN_SIZE = 6000
HELDOUT_SIZE = 500
EPOCHS = 10
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
D_MODEL = 64
HEADS = 4
LAYERS = 2
FFN = 128
RECIPE_VERSION = 1
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>",
                  "unk_token": "<unk>"}

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_UNITS = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
          "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINAL_UNITS = ("", "first", "second", "third", "fourth", "fifth", "sixth", "seventh",
                  "eighth", "ninth")
_ORDINAL_TEENS = ("tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
                  "sixteenth", "seventeenth", "eighteenth", "nineteenth")
_ORDINAL_TENS = {20: "twentieth", 30: "thirtieth"}
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _ordinal(day: int) -> list[str]:
    if day < 10:
        return [_ORDINAL_UNITS[day]]
    if day < 20:
        return [_ORDINAL_TEENS[day - 10]]
    if day % 10 == 0:
        return [_ORDINAL_TENS[day]]
    return [_TENS[day // 10], _ORDINAL_UNITS[day % 10]]


def _two_digits(value: int) -> list[str]:
    if value < 10:
        return ["oh", _UNITS[value]]
    if value < 20:
        return [_TEENS[value - 10]]
    return [_TENS[value // 10]] + ([_UNITS[value % 10]] if value % 10 else [])


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def spell_date(year: int, month: int, day: int, *, order: str = "day-first"
               ) -> tuple[str, str, str]:
    """``(source, target, alignment)`` of one date; ``order`` is ``"day-first"`` or
    ``"month-first"``. The alignment is Pharaoh text over whitespace-split words."""
    if not (1901 <= year <= 2099 and year != 2000):
        raise ValueError(f"year {year} is outside 1901..2099 (2000 excluded)")
    if not (1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]) or (
            month == 2 and day == 29 and not _is_leap(year)):
        raise ValueError(f"{year}-{month:02d}-{day:02d} is not a date")
    day_words = _ordinal(day)
    year_words = ["nineteen" if year < 2000 else "twenty", *_two_digits(year % 100)]
    if order == "day-first":
        parts = [("the", None), *((w, 2) for w in day_words), ("of", None),
                 (_MONTHS[month - 1], 1)]
    elif order == "month-first":
        parts = [(_MONTHS[month - 1], 1), ("the", None), *((w, 2) for w in day_words)]
    else:
        raise ValueError(f"order must be 'day-first' or 'month-first', got {order!r}")
    parts += [(w, 0) for w in year_words]
    source = " ".join(word for word, _ in parts)
    target = f"{year} {month:02d} {day:02d}"
    alignment = " ".join(f"{i}-{j}" for i, (_, j) in enumerate(parts) if j is not None)
    return source, target, alignment


def alignment_pairs(alignment: str) -> set[tuple[int, int]]:
    """The ``(source word, target word)`` pairs of a Pharaoh alignment string ``"i-j ..."``."""
    pairs = set()
    for item in alignment.split():
        source, _, target = item.partition("-")
        if not (source.isdigit() and target.isdigit()):
            raise ValueError(f"alignment item {item!r} of {alignment!r} is not 'i-j'")
        pairs.add((int(source), int(target)))
    return pairs


def _dates(count: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """``count`` distinct valid dates in 1901..2099 (2000 excluded), in draw order."""
    seen: dict[tuple[int, int, int], None] = {}
    while len(seen) < count:
        year = int(rng.integers(1901, 2100))
        month = int(rng.integers(1, 13))
        day = int(rng.integers(1, 32))
        if year == 2000 or day > _DAYS_IN_MONTH[month - 1] or (
                month == 2 and day == 29 and not _is_leap(year)):
            continue
        seen.setdefault((year, month, day))
    return list(seen)


def _dataset(count: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for year, month, day in _dates(count, rng):
        order = ("day-first", "month-first")[int(rng.integers(2))]
        rows.append((*spell_date(year, month, day, order=order), order))
    return pd.DataFrame(rows, columns=["source", "target", "alignment", "order"])


def _vocabulary() -> list[str]:
    words = {"the", "of", "oh", "nineteen", *_MONTHS, *_UNITS[1:], *_TEENS, *_TENS[2:],
             *_ORDINAL_UNITS[1:], *_ORDINAL_TEENS, *_ORDINAL_TENS.values()}
    targets = ([str(y) for y in range(1901, 2100) if y != 2000]
               + [f"{n:02d}" for n in range(1, 32)])
    return list(SPECIAL_TOKENS.values()) + sorted(words) + targets


def build_tokenizer():
    """The word-level tokenizer: one token per whitespace-separated word, ``<s> ... </s>``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(_vocabulary())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)


def _model(tokenizer):
    from transformers import BartConfig, BartForConditionalGeneration

    config = BartConfig(
        vocab_size=len(tokenizer), d_model=D_MODEL, encoder_layers=LAYERS,
        decoder_layers=LAYERS, encoder_attention_heads=HEADS, decoder_attention_heads=HEADS,
        encoder_ffn_dim=FFN, decoder_ffn_dim=FFN, max_position_embeddings=32,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
        forced_bos_token_id=None, forced_eos_token_id=None,
        attn_implementation="eager")
    return BartForConditionalGeneration(config)


def decode(model, tokenizer, sources: list[str], *, batch_size: int = 256) -> list[str]:
    """Greedy decoding of ``sources`` (word-level tokens back to space-separated words)."""
    out = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(sources), batch_size):
            batch = tokenizer(sources[start:start + batch_size], padding=True,
                              return_tensors="pt")
            ids = model.generate(**batch, max_new_tokens=6, do_sample=False, num_beams=1)
            out += tokenizer.batch_decode(ids, skip_special_tokens=True)
    return [" ".join(text.split()) for text in out]


def train(name: str, target: Path, *, progress: bool = True, epochs: int | None = None,
          train_size: int | None = None) -> dict:
    """Generate the dates, train, evaluate and save the date normaliser into ``target``;
    return its card. ``epochs`` / ``train_size``: ``None`` for the reference recipe; smaller
    only for quick checks of the recipe itself (the card records what was used)."""
    from tqdm.auto import tqdm

    epochs = EPOCHS if epochs is None else epochs
    train_size = TRAIN_SIZE if train_size is None else train_size
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    data = _dataset(train_size + HELDOUT_SIZE, rng)
    train_rows, heldout = data.iloc[:train_size], data.iloc[train_size:].reset_index(drop=True)
    tokenizer = build_tokenizer()
    source = tokenizer(train_rows["source"].tolist(), padding=True, return_tensors="pt")
    # Labels are "1990 03 21 </s>" (no leading <s>): the decoder starts from
    # decoder_start_token_id and its first prediction is already the year.
    labels = tokenizer(train_rows["target"].tolist(), padding=True,
                       return_tensors="pt")["input_ids"][:, 1:]
    labels = labels.masked_fill(labels == tokenizer.pad_token_id, -100)

    threads = torch.get_num_threads()
    # Batches of 64 x 12 tokens are too small to share between threads; one thread also makes
    # the weights independent of the machine's thread count. Put back below.
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            model = _model(tokenizer)
            generator = torch.Generator().manual_seed(SEED)
            optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE,
                                          weight_decay=0.01)
            steps = epochs * -(-train_size // BATCH_SIZE)
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: max(0.0, 1.0 - step / steps))
            model.train()
            bar = tqdm(range(epochs), desc=f"{name}: train", disable=not progress)
            for _ in bar:
                order = torch.randperm(train_size, generator=generator)
                for begin in range(0, train_size, BATCH_SIZE):
                    index = order[begin:begin + BATCH_SIZE]
                    loss = model(input_ids=source["input_ids"][index],
                                 attention_mask=source["attention_mask"][index],
                                 labels=labels[index]).loss
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                bar.set_postfix(loss=f"{loss.item():.4f}")
            model.eval()
        train_seconds = time.perf_counter() - started
        predicted = decode(model, tokenizer, heldout["source"].tolist())
    finally:
        torch.set_num_threads(threads)

    gold = heldout["target"].tolist()
    constant = train_rows["target"].value_counts().index[0]
    metrics = {"heldout_exact_match": _exact(predicted, gold),
               "constant_baseline_exact_match": _exact([constant] * len(gold), gold)}
    for field, position in (("year", 0), ("month", 1), ("day", 2)):
        metrics[f"heldout_{field}_accuracy"] = float(np.mean(
            [p.split()[position:position + 1] == g.split()[position:position + 1]
             for p, g in zip(predicted, gold, strict=True)]))
    metrics["exact_match_over_baseline"] = (metrics["heldout_exact_match"]
                                            - metrics["constant_baseline_exact_match"])
    loaded = explain.load_model(model, tokenizer=tokenizer, name=name)
    card = make_card(
        name=name,
        description="small BART normalising spelled-out English dates to 'YYYY MM DD' "
                    "(word-level tokens, known source-target alignment)",
        data={"loader": "explain_models.seq2seq (generated)", "source_package": None,
              "file": None, "licence": "generated by the recipe (no third-party data)",
              "rows": len(data), "date_range": "1901-01-01..2099-12-31, year 2000 excluded",
              "orders": ["day-first", "month-first"],
              "example": spell_date(1990, 3, 21)[:2],
              "alignment": "Pharaoh i-j (source word i -> target word j, 0-based)",
              "text_column": "source"},
        split={"method": "distinct dates drawn by a seeded generator; the first train_rows "
                         "train, the rest are held out (no date in both)",
               "train_rows": len(train_rows), "heldout_rows": len(heldout), "seed": SEED},
        seed=SEED,
        recipe_version=RECIPE_VERSION,
        tokenizer={"type": "word level (tokenizers.WordLevel, whitespace split)",
                   "vocabulary_size": len(tokenizer), "special_tokens": SPECIAL_TOKENS},
        training={"architecture": "BartForConditionalGeneration", "d_model": D_MODEL,
                  "encoder_layers": LAYERS, "decoder_layers": LAYERS, "heads": HEADS,
                  "ffn_dim": FFN, "epochs": epochs, "batch_size": BATCH_SIZE,
                  "optimizer": "AdamW", "learning_rate": LEARNING_RATE, "weight_decay": 0.01,
                  "schedule": "linear decay", "gradient_clip_norm": 1.0,
                  "loss": "cross-entropy, teacher forcing", "decoding": "greedy"},
        metrics=metrics,
        training_time_seconds=train_seconds,
    )
    save_checkpoint(loaded, target, card=card, heldout=heldout)
    return card


def _exact(predicted: list[str], gold: list[str]) -> float:
    return float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)]))
