"""explain.load_model: directories, Hub ids, in-memory modules, pickle refusal, eager attention."""

from __future__ import annotations

import json
import time
import warnings

import pytest
import torch

import explain
from explain import datasets, hooks
from explain.errors import ExplainWarning


def test_pretrained_minilm_loads_offline_in_eval_mode_with_eager_attention():
    loaded = explain.load_model(datasets.minilm_path())
    assert loaded.task == "encoder"
    assert loaded.model.training is False
    assert loaded.provenance["attn_implementation"] == "eager"
    assert len(loaded.provenance["weights_sha256"]) == 64
    batch = loaded.encode_texts(["offline models load fine"])
    out = loaded.model(**batch.model_inputs(), output_attentions=True)
    assert len(out.attentions) == 6 and out.attentions[0].shape[1] == 12


def test_classifier_head_on_bare_encoder_takes_label_names():
    loaded = explain.load_model(datasets.minilm_path(), task="sequence-classification",
                                label_names=["rotten", "fresh"])
    assert loaded.label_names == ("rotten", "fresh")
    assert loaded.label_index("fresh") == 1
    with pytest.raises(ValueError, match="'rotten', 'fresh'"):
        loaded.label_index("positive")


@pytest.mark.parametrize("builder", ["bert_classifier", "bert_masked_lm", "gpt2_causal_lm"])
def test_huggingface_round_trip_gives_identical_logits(tmp_path, builder):
    from explain_models import tiny

    loaded = getattr(tiny, builder)()
    path = explain.save_model(loaded, tmp_path / "ckpt", card={"name": builder})
    assert not [p for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    again = explain.load_model(path)
    assert again.task == loaded.task
    assert again.card == {"name": builder}
    assert again.provenance["weights_format"] == "safetensors"
    inputs = loaded.encode_texts(["the movie was good"]).model_inputs()
    assert torch.equal(loaded.model(**inputs).logits, again.model(**inputs).logits)


@pytest.mark.parametrize("builder", ["tabular_mlp", "small_cnn", "mha_transformer"])
def test_native_round_trip_without_pickle(tmp_path, builder):
    from explain_models import tiny

    loaded = getattr(tiny, builder)()
    path = explain.save_model(loaded, tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    again = explain.load_model(path)
    assert again.task == loaded.task and again.label_names == loaded.label_names
    assert again.provenance["weights_sha256"]
    if loaded.task == "tabular-classification":
        x = torch.randn(2, 5)
        assert torch.equal(loaded.model(x), again.model(x))
    elif loaded.task == "image-classification":
        x = torch.rand(2, 1, 8, 8)
        assert torch.equal(loaded.model(x), again.model(x))
    else:
        ids = torch.tensor([[101, 2023, 102]])
        assert torch.equal(loaded.model(ids), again.model(ids))


def test_save_refuses_to_overwrite_and_leaves_no_partial_directory(tmp_path, tiny_mlp):
    explain.save_model(tiny_mlp, tmp_path / "m")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        explain.save_model(tiny_mlp, tmp_path / "m")
    with pytest.raises(TypeError, match="pickle-free"):
        explain.save_model(explain.load_model(torch.nn.Linear(2, 2), feature_names=["a", "b"]),
                           tmp_path / "linear")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint directory"):
        explain.load_model(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no such checkpoint directory"):
        explain.load_model("./relative/missing")


def test_directory_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a checkpoint: it has no config.json"):
        explain.load_model(tmp_path)
    with pytest.raises(NotADirectoryError, match="is a file"):
        explain.load_model(tmp_path / "notes.txt")


def test_pickle_only_weights_are_refused_without_opt_in(tmp_path, tiny_bert):
    path = tmp_path / "pickled"
    tiny_bert.model.save_pretrained(path, safe_serialization=False)
    tiny_bert.tokenizer.save_pretrained(path)
    for safe in path.glob("*.safetensors"):
        safe.unlink()
    torch.save(tiny_bert.model.state_dict(), path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="only pickle weights.*allow_pickle=True"):
        explain.load_model(path)
    loaded = explain.load_model(path, allow_pickle=True)
    assert loaded.provenance["weights_format"] == "pickle"
    inputs = tiny_bert.encode_texts(["a fine film"]).model_inputs()
    assert torch.equal(loaded.model(**inputs).logits, tiny_bert.model(**inputs).logits)


def test_custom_code_is_never_run(tmp_path, tiny_bert):
    path = explain.save_model(tiny_bert, tmp_path / "ckpt")
    config = json.loads((path / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="never runs remote or custom code"):
        explain.load_model(path)


def test_hub_id_offline_says_how_to_pass_a_directory(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(OSError, match=r"from the Hugging Face Hub.*load_model\('/path/to/dir'\)"):
        explain.load_model("explain-test/definitely-not-cached")
    assert time.perf_counter() - start < 30  # fails fast, no retry loop


def test_in_memory_sdpa_model_is_switched_with_a_warning(tiny_bert):
    from transformers import BertForSequenceClassification

    config = tiny_bert.model.config
    config._attn_implementation = "sdpa"
    model = BertForSequenceClassification(config)
    with pytest.warns(ExplainWarning, match="from 'sdpa' to 'eager'"):
        loaded = explain.load_model(model, tokenizer=tiny_bert.tokenizer)
    assert loaded.provenance["attn_implementation"] == "eager"
    out = loaded.model(**loaded.encode_texts(["hello"]).model_inputs(), output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].numel() > 0


def test_keeping_sdpa_is_explicit_and_silent(tiny_bert):
    from transformers import BertForSequenceClassification

    config = tiny_bert.model.config
    config._attn_implementation = "sdpa"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = explain.load_model(BertForSequenceClassification(config),
                                    tokenizer=tiny_bert.tokenizer, attn_implementation=None)
    assert loaded.provenance["attn_implementation"] == "sdpa"


def test_in_memory_module_needs_what_it_reads():
    with pytest.raises(ValueError, match="pass task="):
        explain.load_model(torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match="tokenizer"):
        explain.load_model(torch.nn.Linear(3, 2), task="sequence-classification")
    with pytest.raises(ValueError, match="unknown task 'vision'.*tabular-classification"):
        explain.load_model(torch.nn.Linear(3, 2), task="vision")
    loaded = explain.load_model(torch.nn.Linear(3, 2), feature_names=["a", "b", "c"])
    assert loaded.task == "tabular-classification"
    assert hooks.count_hooks(loaded) == 0


def test_text_batch_words_map_back_to_the_original_string(tiny_bert):
    text = "Unbelievably  good, isn't it?"
    batch = tiny_bert.encode_texts([text, "ok"])
    assert batch.lengths[1] < batch.lengths[0]
    for word, (start, end) in zip(batch.words[0], batch.word_spans[0], strict=True):
        assert text[start:end] == word and word.strip() == word
    assert "Unbelievably" in batch.words[0]
    assert batch.word_index[0][0] == -1 and batch.special[0][0]


def test_truncation_is_flagged_and_warned(tiny_bert):
    with pytest.warns(ExplainWarning, match="truncated"):
        batch = tiny_bert.encode_texts(["one two three four five six seven", "one"],
                                       max_length=4)
    assert batch.truncated == (True, False)
    with pytest.raises(ValueError, match="exceeds the model's limit of 64"):
        tiny_bert.encode_texts(["x"], max_length=1000)


@pytest.mark.parametrize("bad", [[], "", ["fine", "   "]])
def test_empty_texts_are_refused(tiny_bert, bad):
    with pytest.raises(ValueError, match="empty|no texts"):
        tiny_bert.encode_texts(bad)


def test_fold_rules_preserve_sums():
    import numpy as np

    from explain.text import fold_matrix, fold_scores

    scores = np.array([0.5, 1.0, 2.0, -1.0, 0.25])
    words = [-1, 0, 0, 1, -1]
    assert np.allclose(fold_scores(scores, words), [3.0, -1.0])
    rng = np.random.default_rng(0)
    attention = rng.random((5, 5))
    attention /= attention.sum(1, keepdims=True)
    folded = fold_matrix(attention, [0, 1, 1, 2, 3])
    assert folded.shape == (4, 4)
    assert np.allclose(folded.sum(1), 1.0)


def test_tabular_encoder_order_survives_sorted_json():
    import pandas as pd

    from explain.nets import TabularEncoder

    frame = pd.DataFrame({"zeta": [1.0, 2.0, 3.0], "alpha": [0.0, 1.0, 5.0],
                          "mid": ["b", "a", "b"]})
    encoder = TabularEncoder.fit(frame, numeric=["zeta", "alpha"], categorical=["mid"])
    again = TabularEncoder.from_dict(json.loads(json.dumps(encoder.to_dict(), sort_keys=True)))
    assert again.feature_names == ["zeta", "alpha", "mid=a", "mid=b"]
    assert (again.transform(frame) == encoder.transform(frame)).all()


def test_loading_draws_no_progress_bar_and_restores_the_setting(capsys):
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    explain.load_model(datasets.minilm_path())
    assert "Loading weights" not in capsys.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
