"""Damaged files and bad input get one clear error naming the file and the fix, never a
traceback from inside json, safetensors, transformers, pandas or numpy; ``--debug`` shows it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import explain
from explain.cli import main


@pytest.fixture(scope="module")
def sentiment_dir(sentiment_model):
    from pathlib import Path

    return Path(sentiment_model.provenance["source"])


def _copy(source, tmp_path, name="ckpt"):
    target = tmp_path / name
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("file, what", [("config.json", "the checkpoint's config"),
                                        ("model_card.json", "the model card")])
def test_invalid_json_names_the_file_and_the_position(sentiment_dir, tmp_path, file, what):
    checkpoint = _copy(sentiment_dir, tmp_path)
    (checkpoint / file).write_text("{not json")
    with pytest.raises(ValueError, match=rf"cannot read {what} '.*{file}': not valid JSON at "
                                         rf"line 1, column 2"):
        explain.load_model(checkpoint)


def test_truncated_weights_are_named(sentiment_dir, digits_model, tmp_path):
    from pathlib import Path

    for source in (sentiment_dir, Path(digits_model.provenance["source"])):
        checkpoint = _copy(source, tmp_path, source.name)
        weights = checkpoint / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
        with pytest.raises(ValueError, match=r"cannot read the weights in .*damaged or "
                                             r"truncated: copy or save the checkpoint again"):
            explain.load_model(checkpoint)


def test_weights_that_do_not_fit_the_config_are_named(sentiment_dir, tmp_path):
    checkpoint = _copy(sentiment_dir, tmp_path)
    config = json.loads((checkpoint / "config.json").read_text())
    config["intermediate_size"] = 100
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not fit the architecture its config.json describes"):
        explain.load_model(checkpoint)


def test_label_names_must_match_the_head(sentiment_dir):
    with pytest.raises(ValueError, match=r"3 label names \(a, b, c\) for .* classification head "
                                         r"has 2 classes; pass 2 names"):
        explain.load_model(sentiment_dir, label_names=["a", "b", "c"])


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", b"", r"cannot read '.*empty.csv': the file is empty"),
    ("latin.csv", b"text\ncaf\xe9\n", r"'.*latin.csv': it is not UTF-8 text \(it holds the byte b'\\xe9'\)"),
    ("ragged.csv", b'a,b\n1,2\n"x\n', r"'.*ragged.csv' as CSV \(.*\); check that it is a CSV"),
    # a text with an unquoted comma: pandas would take the first value for an index and shift
    # the rest into the wrong columns
    ("comma.csv", b"text,label\ngreat, fun movie,1\nok, fine,0\n",
     r"'.*comma.csv' as CSV \(line 2 has more values than the header's 2 columns \(text, "
     r"label\); put a value that contains a ',' in double quotes\)"),
    ("tab.tsv", b"text\tlabel\ngreat\tfun\t1\n", r"\(line 2 has more values .*contains a tab"),
    ("junk.parquet", b"PAR1 not really", r"'.*junk.parquet' as PARQUET .*DataFrame.to_parquet"),
])
def test_unreadable_tables_are_named(tmp_path, capsys, sentiment_dir, name, content, message):
    from explain.report.data import read_table_file

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_table_file(path)
    assert main(["attribute", str(sentiment_dir), "--data", str(path), "--out",
                 str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("explain attribute: error: cannot read") and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unsafe_or_garbage_arrays_are_refused_without_advice_to_unpickle(digits_model,
                                                                         tmp_path, capsys):
    from pathlib import Path

    checkpoint = Path(digits_model.provenance["source"])
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"\x93NUMPY garbage")
    for path in (objects, garbage):
        assert main(["attribute", str(checkpoint), "--data", str(path), "--out",
                     str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert f"cannot read {str(path)!r} as a NumPy array" in err
        assert "allow_pickle=True" not in err and "never loads pickled arrays" in err


def test_debug_shows_the_traceback_and_internal_errors_are_one_line(tmp_path, capsys,
                                                                    monkeypatch):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="the file is empty"):
        main(["--debug", "audit", "--data", str(empty), "--prediction", "p", "--sensitive", "g",
              "--out", str(tmp_path / "out")])
    import explain.cli.models as models_cli

    def broken(args):
        raise RuntimeError("an unexpected bug")

    monkeypatch.setattr(models_cli, "run", broken)
    assert main(["models"]) == 3
    err = capsys.readouterr().err
    assert err == ("explain models: internal error: RuntimeError: an unexpected bug; rerun with "
                   "--debug for the traceback (explain --debug models ...)\n")
    with pytest.raises(RuntimeError, match="an unexpected bug"):
        main(["--debug", "models"])


def test_attention_maps_above_the_memory_budget_are_refused_with_their_size(tiny_bert):
    texts = ["a long and winding review of a film " * 6] * 12
    with pytest.raises(ValueError) as raised:
        explain.attention(tiny_bert, texts, memory_budget="64KB")
    message = str(raised.value)
    assert "the attention maps of 12 texts would take" in message
    assert "above memory_budget=64.0 KiB" in message
    for fix in ("layers=, heads=", "dtype='float16'", "max_length=", "memory_budget="):
        assert fix in message, fix
    # what fits is captured, and the default budget holds an ordinary capture
    size = sum(m.nbytes for m in explain.attention(tiny_bert, texts, layers=[0], heads=[0],
                                                   dtype="float16").maps["self"])
    assert size < 64 << 10
    explain.attention(tiny_bert, texts, layers=[0], heads=[0], dtype="float16",
                      memory_budget="64KB")
    with pytest.raises(ValueError, match="memory_budget 'lots' is not a size"):
        explain.attention(tiny_bert, texts, memory_budget="lots")
