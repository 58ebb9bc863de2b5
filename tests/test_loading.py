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
    tokenizer_files = ["tokenizer.json", "tokenizer_config.json"] if loaded.is_text else []
    assert sorted(p.name for p in path.iterdir()) == [".explain-output.json", "config.json",
                                                      "model.safetensors", *tokenizer_files]
    again = explain.load_model(path)
    assert again.task == loaded.task and again.label_names == loaded.label_names
    if loaded.is_text:
        assert again.tokenizer.get_vocab() == loaded.tokenizer.get_vocab()
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


# --------------------------------------------------------------------------- tokenizers


@pytest.mark.parametrize("builder", ["bert_classifier", "gpt2_causal_lm", "mha_transformer"])
def test_checkpoint_without_tokenizer_files_is_refused_and_tokenizer_is_the_fix(tmp_path,
                                                                                builder):
    from explain_models import tiny

    loaded = getattr(tiny, builder)()
    path = explain.save_model(loaded, tmp_path / "ckpt")
    for file in path.iterdir():
        if file.name != "config.json" and file.suffix != ".safetensors":
            file.unlink()  # weights only, as model.save_pretrained(dir) alone writes them
    with pytest.raises(ValueError, match=r"ckpt' has no tokenizer files \(none of "
                                         r"tokenizer.json, vocab.txt.*tokenizer="):
        explain.load_model(path)
    again = explain.load_model(path, tokenizer=loaded.tokenizer)
    text = ["the movie was good"]
    ids = again.encode_texts(text).input_ids
    assert torch.equal(ids, loaded.encode_texts(text).input_ids)
    assert again.tokenizer.decode(ids[0], skip_special_tokens=True).strip() == text[0]
    if loaded.is_huggingface:
        inputs = loaded.encode_texts(text).model_inputs()
        assert torch.equal(loaded.model(**inputs).logits, again.model(**inputs).logits)
    else:
        assert torch.equal(loaded.model(ids), again.model(ids))


def test_tokenizer_far_smaller_than_the_vocabulary_is_refused(tmp_path, tiny_bert):
    from explain_models import tiny

    small = tiny.bpe_tokenizer()  # ~300 tokens for a model that embeds 30,522
    path = tmp_path / "mixed"
    tiny_bert.model.save_pretrained(path)
    small.save_pretrained(path)
    message = rf"has {len(small)} tokens but the model embeds 30522 token ids.*tokenizer="
    with pytest.raises(ValueError, match=message):
        explain.load_model(path)
    with pytest.raises(ValueError, match=message):
        explain.load_model(tiny_bert.model, tokenizer=small)
    with pytest.raises(ValueError, match=message):
        explain.load_model(explain.save_model(tiny_bert, tmp_path / "good"), tokenizer=small)
    assert explain.load_model(path, tokenizer=tiny_bert.tokenizer).tokenizer is tiny_bert.tokenizer


# --------------------------------------------------------------------------- tabular encoding


def _people(n: int = 40, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 70, n).astype(float),
                         "sex": rng.choice(["Female", "Male"], n),
                         "degree": rng.choice(["F", "M"], n),
                         "y": rng.integers(0, 2, n)})


def _encoder(frame):
    from explain.nets import TabularEncoder

    return TabularEncoder.fit(frame, numeric=["age"], categorical=["sex", "degree"])


def test_unseen_categories_are_refused_with_counts_known_values_and_the_fix():
    frame = _people()
    encoder = _encoder(frame)
    lower = frame.assign(sex=frame.sex.str.lower())
    counts = lower.sex.value_counts()
    with pytest.raises(ValueError) as error:
        encoder.transform(lower)
    message = str(error.value)
    assert message.startswith("categorical column 'sex' holds values never seen in training: ")
    for value, count in counts.items():
        assert f"'{value}' ({count} rows)" in message
    assert "known categories: 'Female', 'Male'" in message
    assert "replace({'female': 'Female', 'male': 'Male'})" in message
    # the suggested fix gives exactly the encoding of the original rows
    fixed = lower.assign(sex=lower.sex.replace({"female": "Female", "male": "Male"}))
    assert (encoder.transform(fixed) == encoder.transform(frame)).all()
    # one unseen value among known ones is enough; a value with no near match gets no mapping
    other = frame.copy()
    other.loc[3, "degree"] = "Felony"
    with pytest.raises(ValueError, match=r"'degree'.*'Felony' \(1 row\); known categories: "
                                         r"'F', 'M'\. .*map them to known categories or drop"):
        encoder.transform(other)


def test_many_unseen_values_are_listed_a_few_at_a_time():
    frame = _people()
    encoder = _encoder(frame)
    many = frame.assign(sex=[f"s{i % 8}" for i in range(len(frame))])
    with pytest.raises(ValueError, match=r"'s0' \(5 rows\).* and 3 more; known categories"):
        encoder.transform(many)


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_missing_categories_are_refused_naming_the_rows(missing):
    import pandas as pd

    frame = _people().set_index(pd.Index([f"r{i}" for i in range(40)]))
    encoder = _encoder(frame)
    holes = frame.astype({"sex": object})
    holes.loc[["r2", "r7"], "sex"] = missing
    with pytest.raises(ValueError, match=r"categorical column 'sex' is missing \(NaN/None\) in "
                                         r"2 of 40 rows \(index r2, r7\)"):
        encoder.transform(holes)
    with pytest.raises(ValueError, match=r"'degree' is missing .* in 40 of 40 rows \(index r0, "
                                         r"r1, r2, r3, r4 and 35 more\)"):
        encoder.transform(frame.assign(degree=None))
    with pytest.raises(ValueError, match="'sex' is missing"):
        _encoder(holes)  # fitting on missing values would make 'nan' a category


def test_numeric_columns_refuse_text_and_missing_values():
    import numpy as np

    frame = _people()
    encoder = _encoder(frame)
    text = frame.astype({"age": object})
    text.loc[[1, 5, 9], "age"] = "forty"
    text.loc[2, "age"] = "40"  # a number written as text is a number
    with pytest.raises(ValueError, match=r"numeric column 'age' holds values that are not "
                                         r"numbers: 'forty' \(3 rows\)"):
        encoder.transform(text)
    with pytest.raises(ValueError, match="'age' holds values that are not numbers"):
        _encoder(text)
    for bad in (np.nan, np.inf):
        holes = frame.copy()
        holes.loc[[4, 11], "age"] = bad
        with pytest.raises(ValueError, match=r"numeric column 'age' is missing \(NaN\) or "
                                             r"infinite in 2 of 40 rows \(index 4, 11\)"):
            encoder.transform(holes)
    encoded = encoder.transform(text.drop(index=[1, 5, 9]))
    assert encoded.dtype == np.float32 and np.isfinite(encoded).all()


def test_encoder_refuses_what_is_not_a_table_or_lacks_columns():
    frame = _people()
    encoder = _encoder(frame)
    with pytest.raises(KeyError, match=r"column 'degree' is not in the table \(the model was "
                                       r"trained on \['age', 'sex', 'degree'\]\).*columns: "
                                       r"'age', 'sex'"):
        encoder.transform(frame.drop(columns="degree"))
    with pytest.raises(TypeError, match="reads a pandas DataFrame.*got ndarray"):
        encoder.transform(frame.to_numpy())


def test_bad_rows_fail_every_public_path_not_just_the_encoder(tmp_path, capsys):
    """audit, attribute, the report and the CLI (``explain attribute``) read tables through the
    checkpoint's encoder, so none of them can turn an unseen category into a silent 'no
    category' answer."""
    from explain import nets
    from explain.cli import main
    from explain.report.build import build_report

    frame = _people(200)
    encoder = _encoder(frame)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        mlp = nets.MLP(len(encoder.feature_names), 2, hidden=(8,))
    loaded = explain.load_model(mlp, feature_names=encoder.feature_names,
                                label_names=["no", "yes"], name="people")
    loaded.encoder, loaded.feature_groups = encoder, encoder.groups
    path = explain.save_model(loaded, tmp_path / "people")
    model = explain.load_model(path)
    bad = frame.assign(sex=frame.sex.str.lower())
    unseen = "categorical column 'sex' holds values never seen in training"
    with pytest.raises(ValueError, match=unseen):
        explain.audit(model, bad, sensitive_features="sex", label="y")
    with pytest.raises(ValueError, match=unseen):
        explain.attribute(model, bad.head(3), n_steps=4, faithfulness=False)
    with pytest.raises(ValueError, match=unseen):
        build_report(model, bad, label="y", analyses=["predictions"], quiet=True)
    data = tmp_path / "people.csv"
    bad.to_csv(data, index=False)
    out = tmp_path / "attributions"
    assert main(["attribute", str(path), "--data", str(data), "--limit", "3", "--n-steps", "4",
                 "--no-faithfulness", "--out", str(out)]) == 1
    assert unseen in capsys.readouterr().err
    assert not out.exists()
    # the same rows with the categories of training encode as before
    assert model.encode_frame(bad.assign(sex=frame.sex)).shape == (200, 5)


def test_as_loaded_refuses_a_reference_name_and_loads_a_directory(tmp_path, tiny_mlp):
    from explain.loading import as_loaded

    assert as_loaded(tiny_mlp, analysis="audit") is tiny_mlp
    with pytest.raises(ValueError, match=r"^audit takes a LoadedModel; 'compas' is not a checkpoint "
                                         r"directory.*explain\.load_model\(explain_models\.ensure"
                                         r"\('compas'\)\).*explain models compas"):
        as_loaded("compas", analysis="audit")
    path = explain.save_model(tiny_mlp, tmp_path / "m")
    again = as_loaded(str(path), analysis="audit")
    x = torch.zeros(2, len(tiny_mlp.feature_names))
    torch.testing.assert_close(again.model(x), tiny_mlp.model(x))


def test_texts_are_cut_at_the_familys_position_limit(tiny_mha):
    """The position limit comes from the model family, also for a model that is not a Hugging
    Face one (the nn.MultiheadAttention transformer has 64 positions)."""
    limit = tiny_mha.family.max_positions(tiny_mha.model)
    assert limit == tiny_mha.model.pos.num_embeddings == 64
    with pytest.warns(ExplainWarning, match="truncated"):
        batch = tiny_mha.encode_texts(["word " * 100, "a short one"])
    assert batch.truncated == (True, False)
    assert batch.input_ids.shape[1] == limit
    with torch.no_grad():
        tiny_mha.model(batch.input_ids, batch.attention_mask)   # fits the position embedding


def test_feature_groups_of_an_own_module_are_checked_and_stored_as_indices():
    names = ["age", "sex=F", "sex=M", "job=a", "job=b"]
    net = torch.nn.Linear(5, 2)
    by_list = explain.load_model(net, feature_names=names,
                                 feature_groups=[["sex=F", "sex=M"], ["job=a", "job=b"]])
    assert by_list.feature_groups == {"sex": [1, 2], "job": [3, 4]}
    by_name = explain.load_model(net, feature_names=names, feature_groups={"gender": ["sex=M",
                                                                                      "sex=F"]})
    assert by_name.feature_groups == {"gender": [2, 1]}
    assert explain.load_model(net, feature_names=names).feature_groups is None
    with pytest.raises(ValueError, match=r"group 'sex' lists 'sex=X', which is not a feature "
                                         r"name; did you mean .*'sex=F'.*feature names: 'age'"):
        explain.load_model(net, feature_names=names, feature_groups={"sex": ["sex=F", "sex=X"]})
    with pytest.raises(ValueError, match=r"feature 'sex=M' is in two feature groups, 'sex' and "
                                         r"'male'"):
        explain.load_model(net, feature_names=names,
                           feature_groups={"sex": ["sex=F", "sex=M"], "male": ["sex=M"]})
    with pytest.raises(ValueError, match=r"no shared 'column=' prefix.*feature_groups=\{'name'"):
        explain.load_model(net, feature_names=names, feature_groups=[["age", "sex=F"]])
    with pytest.raises(ValueError, match="group 'age' has the name of a feature outside it"):
        explain.load_model(net, feature_names=names, feature_groups={"age": ["sex=F", "sex=M"]})
    with pytest.raises(ValueError, match="group 'sex' must list its member feature names"):
        explain.load_model(net, feature_names=names, feature_groups={"sex": "sex=F"})
    with pytest.raises(ValueError, match="feature_groups= needs feature_names="):
        explain.load_model(net, task="image-classification", input_shape=(5,),
                           feature_groups={"a": ["b"]})


def test_feature_groups_are_refused_for_a_checkpoint(tmp_path, tiny_mlp):
    path = explain.save_model(tiny_mlp, tmp_path / "m")
    with pytest.raises(ValueError, match="feature_groups= is for an in-memory torch.nn.Module"):
        explain.load_model(path, feature_groups={"a": ["f0"]})


def test_own_module_reads_its_feature_columns_from_a_table():
    import numpy as np
    import pandas as pd

    loaded = explain.load_model(torch.nn.Linear(3, 2), feature_names=["b", "a", "c"])
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "c": [True, False, True],
                          "other": ["x", "y", "z"]})
    encoded = loaded.encode_frame(frame)
    assert encoded.dtype == torch.float32
    assert torch.equal(encoded, torch.tensor([[0.5, 1, 1], [1.5, 2, 0], [2.5, 3, 1]]))
    with pytest.raises(KeyError, match=r"feature column 'c' is not in the data.*columns: 'a', "
                                       r"'b'"):
        loaded.encode_frame(frame[["a", "b"]])
    text = frame.astype({"a": object})
    text.loc[[0, 2], "a"] = "two"
    with pytest.raises(ValueError, match=r"column 'a' holds values that are not numbers: 'two' "
                                         r"\(2 rows\)"):
        loaded.encode_frame(text)
    holes = frame.assign(b=[0.5, np.inf, np.nan])
    with pytest.raises(ValueError, match=r"column 'b' is missing \(NaN\) or infinite in 2 of 3 "
                                         r"rows \(index 1, 2\)"):
        loaded.encode_frame(holes)
    bare = explain.load_model(torch.nn.Linear(3, 2), task="image-classification",
                              input_shape=(3,))
    with pytest.raises(TypeError, match="no tabular encoder and no feature names"):
        bare.encode_frame(frame)
