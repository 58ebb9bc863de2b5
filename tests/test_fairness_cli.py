"""`explain audit` and `explain probe`: files written, errors reported, nothing half-written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import explain
from explain.cli import main


def _decisions_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({"race": rng.choice(["a", "b"], n), "sex": rng.choice(["f", "m"], n),
                          "outcome": rng.integers(0, 2, n)})
    frame["score"] = np.clip(0.3 * frame.outcome + 0.7 * rng.random(n), 0, 1)
    frame["decision"] = (frame.score > 0.5).astype(int)
    path = tmp_path / "decisions.csv"
    frame.to_csv(path, index=False)
    return path


def test_audit_without_a_model_writes_tables_and_figures(tmp_path, capsys):
    out = tmp_path / "audit"
    code = main(["audit", "--data", str(_decisions_csv(tmp_path)), "--label", "outcome",
                 "--prediction", "decision", "--score", "score", "--sensitive", "race,sex",
                 "--n-permutations", "999", "--out", str(out), "--proxies"])
    assert code == 0
    names = {p.name for p in out.iterdir()}
    for expected in ("by_group.csv", "disparities.csv", "calibration.csv",
                     "threshold_sweep.csv", "meta.json", "disparities.png", "metrics_race.png",
                     "metrics_race_x_sex.png", "thresholds_sex.png", "proxies_race.csv"):
        assert expected in names
    disparities = pd.read_csv(out / "disparities.csv")
    assert set(disparities.sensitive_feature) == {"race", "sex", "race & sex"}
    assert json.loads((out / "meta.json").read_text())["parameters"]["n_permutations"] == 999
    assert "demographic_parity" in capsys.readouterr().out
    # an existing output directory is kept unless --overwrite
    assert main(["audit", "--data", str(_decisions_csv(tmp_path)), "--prediction", "decision",
                 "--sensitive", "race", "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_audit_bad_column_fails_cleanly_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "bad"
    code = main(["audit", "--data", str(_decisions_csv(tmp_path)), "--label", "outcome",
                 "--prediction", "decision", "--sensitive", "rase", "--out", str(out)])
    assert code == 1
    assert "did you mean 'race'" in capsys.readouterr().err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bad")]


def test_probe_counterfactual_and_crows_pairs_from_checkpoints(tmp_path, tiny_bert, tiny_mlm,
                                                               capsys):
    classifier = explain.save_model(tiny_bert, tmp_path / "clf")
    out = tmp_path / "cf"
    assert main(["probe", "counterfactual", str(classifier), "--axis", "age",
                 "--out", str(out)]) == 0
    assert {"scores.csv", "comparisons.csv", "groups.csv", "score_shifts.png",
            "group_scores.png", "meta.json"} <= {p.name for p in out.iterdir()}
    mlm = explain.save_model(tiny_mlm, tmp_path / "mlm")
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"sent_more": ["he is a doctor", "she is a nurse"],
                  "sent_less": ["she is a doctor", "he is a nurse"],
                  "stereo_antistereo": ["stereo", "antistereo"],
                  "bias_type": ["gender", "gender"]}).to_csv(pairs)
    assert main(["probe", "crows-pairs", str(mlm), "--data", str(pairs),
                 "--out", str(tmp_path / "crows")]) == 0
    summary = pd.read_csv(tmp_path / "crows" / "summary.csv")
    assert summary.loc[0, "bias_type"] == "all" and summary.loc[0, "n_pairs"] == 2
    assert "CrowS-Pairs" in capsys.readouterr().out


def test_probe_weat_runs_the_published_protocol_and_exits_0(tmp_path, capsys):
    out = tmp_path / "weat"
    assert main(["probe", "weat", "--n-permutations", "1000", "--out", str(out)]) == 0
    table = pd.read_csv(out / "weat.csv", keep_default_na=False, na_values=[""])
    assert list(table.test) == [f"weat{i}" for i in range(1, 11)]
    blocked = table[table.p_value_method == "not computable"]
    assert set(blocked.test) == {"weat1", "weat3", "weat6", "weat10"}
    assert blocked.reason.str.contains("words have a vector").all()
    assert {"n_first_target", "n_second_attribute", "coverage", "iat_effect_size",
            "p_value_holm"} <= set(table.columns)
    excluded = pd.read_csv(out / "excluded_words.csv")
    reasons = excluded.groupby("word")["reason"].first()
    assert reasons["equations"] == "no vector"
    assert reasons["Kristen"] == "removed by Caliskan et al. 2017"
    printed = capsys.readouterr().out
    assert "warning: not computable: weat1" in printed and "6 of 10 tests computable" in printed
    assert main(["probe", "weat", "--tests", "weat5", "--keep-removed", "--n-permutations",
                 "1000", "--out", str(tmp_path / "kept")]) == 0
    assert pd.read_csv(tmp_path / "kept" / "weat.csv").loc[0, "n_first_target"] == 18
    with pytest.raises(SystemExit):
        main(["probe", "nonsense", "--out", str(tmp_path / "x")])


def test_probe_seat_on_a_text_checkpoint(tmp_path, tiny_bert):
    checkpoint = explain.save_model(tiny_bert, tmp_path / "clf")
    out = tmp_path / "seat"
    assert main(["probe", "seat", str(checkpoint), "--tests", "weat7", "--n-permutations",
                 "500", "--out", str(out)]) == 0
    row = pd.read_csv(out / "seat.csv").iloc[0]
    assert (row.n_first_target, row.n_second_target) == (8, 8)  # words; 8 templates each
    assert row.p_value_method == "sampled" and row.n_partitions == 500
    assert {"seat.csv", "excluded_words.csv", "seat.png", "meta.json"} <= \
        {p.name for p in out.iterdir()}


def test_probe_representation_on_a_text_checkpoint(tmp_path, tiny_bert):
    checkpoint = explain.save_model(tiny_bert, tmp_path / "clf")
    data = tmp_path / "people.csv"
    pd.DataFrame({"text": [f"{p} is a doctor number {i}" for i in range(9) for p in ("he", "she")],
                  "gender": ["m", "f"] * 9}).to_csv(data, index=False)
    out = tmp_path / "rep"
    assert main(["probe", "representation", str(checkpoint), "--data", str(data), "--text",
                 "text", "--attribute", "gender", "--n-splits", "3", "--out", str(out)]) == 0
    table = pd.read_csv(out / "probe_accuracy.csv")
    assert list(table.layer) == ["bert.embeddings", "bert.encoder.layer.0",
                                 "bert.encoder.layer.1"]
    assert main(["probe", "representation", str(checkpoint), "--data", str(data),
                 "--attribute", "gender", "--out", str(tmp_path / "rep2")]) == 1
