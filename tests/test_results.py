"""explain.results: the one result behaviour, on a toy Result subclass."""

from __future__ import annotations

import copy
import json
import pickle
from types import MappingProxyType

import numpy as np
import pandas as pd
import pytest

from explain.plotting import axes_or_new, figure_bytes, new_figure
from explain.results import FrozenMeta, Result, TableResult, make_meta


class Toy(Result):
    """Two tables; plots "bars" (default, option ``color``) and "line" (options ``width``)."""

    PLOTS = MappingProxyType({"bars": "one bar per row", "line": "the values as a line"})
    PLOT_OPTIONS = MappingProxyType({"bars": ("color",), "line": ("width",)})

    def __init__(self, values, *, drawable=("bars", "line")) -> None:
        self.values = list(values)
        self.drawable = tuple(drawable)
        self.meta = make_meta(None, method="toy", parameters={"n": len(self.values),
                                                                "nested": {"a": 1}})
        self._freeze()

    def to_frame(self):
        return pd.DataFrame({"row": range(len(self.values)), "value": self.values})

    def tables(self):
        return {"values": self.to_frame(), "totals": pd.DataFrame({"total": [sum(self.values)]})}

    def applicable_plots(self):
        return self.drawable

    def _plot(self, kind, *, ax=None, color="C0", width=1.0):
        fig, ax = axes_or_new(ax, 4, 3)
        if kind == "bars":
            ax.bar(range(len(self.values)), self.values, color=color)
        else:
            if not self.values:
                raise ValueError("nothing to draw")
            ax.plot(self.values, linewidth=width)
        ax.set_title(f"toy {kind}")
        return fig


def test_plot_defaults_to_the_first_kind_and_checks_kinds():
    toy = Toy([1, 2, 3])
    assert figure_bytes(toy.plot()) == figure_bytes(toy.plot("bars"))
    with pytest.raises(ValueError, match="unknown plot kind 'pie' for Toy; valid: bars, line"):
        toy.plot("pie")


def test_unknown_plot_option_is_a_type_error_naming_it_and_the_valid_ones():
    toy = Toy([1, 2, 3])
    with pytest.raises(TypeError) as caught:
        toy.plot("bars", colour="red")
    assert str(caught.value) == ("Toy.plot('bars') got unknown option(s) 'colour'; valid: ax, "
                                 "color")
    with pytest.raises(TypeError, match=r"'color'; valid: ax, width$"):
        toy.plot("line", color="red")  # an option of another kind
    assert figure_bytes(toy.plot("line", width=3.0)) != figure_bytes(toy.plot("line"))


def test_plot_into_ax_draws_the_same_as_without():
    toy = Toy([3, 1, 2])
    for kind in Toy.PLOTS:
        alone = toy.plot(kind)
        fig, ax = new_figure(4, 3)
        assert toy.plot(kind, ax=ax) is fig
        assert figure_bytes(fig) == figure_bytes(alone)


def test_results_are_immutable_after_construction():
    toy = Toy([1, 2])
    with pytest.raises(AttributeError, match="Toy is immutable after construction; cannot set "
                                             "'values'"):
        toy.values = [5]
    with pytest.raises(AttributeError, match="cannot delete 'values'"):
        del toy.values
    with pytest.raises(TypeError, match="meta is read-only"):
        toy.meta["method"] = "other"
    with pytest.raises(TypeError, match="meta is read-only"):
        toy.meta["parameters"]["n"] = 3
    with pytest.raises(TypeError, match="meta is read-only"):
        toy.meta.update(method="other")
    assert toy.values == [1, 2] and toy.meta["method"] == "toy"
    mutable = dict(toy.meta)
    mutable["method"] = "copy"  # a copy can change; the result's meta does not
    assert toy.meta["method"] == "toy"


def test_frozen_meta_is_a_dict_for_json_copies_and_pickles():
    meta = FrozenMeta({"a": {"b": [1, 2]}, "c": None})
    assert isinstance(meta, dict) and isinstance(meta["a"], FrozenMeta)
    assert json.loads(json.dumps(meta)) == {"a": {"b": [1, 2]}, "c": None}
    for clone in (copy.deepcopy(meta), pickle.loads(pickle.dumps(meta))):
        assert clone == meta and isinstance(clone, FrozenMeta)
    toy = pickle.loads(pickle.dumps(Toy([1, 2])))
    assert toy.values == [1, 2]
    with pytest.raises(AttributeError):
        toy.values = []


def test_table_result_freezes_when_the_subclass_has_no_init():
    class Plain(TableResult):
        PLOTS = MappingProxyType({"none": "nothing"})

    result = Plain(pd.DataFrame({"a": [1]}), meta={"method": "plain"})
    with pytest.raises(AttributeError):
        result.table = None
    assert result.to_frame().equals(pd.DataFrame({"a": [1]}))


def test_export_writes_tables_plots_and_meta(tmp_path):
    toy = Toy([1, 2, 3], drawable=("line",))
    out = toy.export(tmp_path / "toy", formats=("png", "svg"))
    assert out == tmp_path / "toy"
    assert sorted(p.name for p in out.iterdir()) == [".explain-output.json", "line.png", "line.svg",
                                                     "meta.json", "totals.csv", "values.csv"]
    assert pd.read_csv(out / "values.csv").equals(toy.to_frame())
    assert (out / "line.png").read_bytes() == figure_bytes(toy.plot("line"), "png", dpi=150)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["method"] == "toy" and meta["parameters"] == {"n": 3, "nested": {"a": 1}}
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]  # no staging left behind


def test_export_refuses_an_existing_directory_without_overwrite(tmp_path):
    target = tmp_path / "toy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        Toy([1]).export(target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    # overwrite replaces only what explain wrote: the user's file is never deleted
    with pytest.raises(FileExistsError, match="explain did not write it"):
        Toy([1]).export(target, overwrite=True)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    (target / "keep.txt").unlink()
    Toy([1]).export(target)
    Toy([2]).export(target, overwrite=True)
    assert (target / "bars.png").is_file()


def test_export_is_atomic_when_a_plot_fails(tmp_path):
    target = tmp_path / "toy"
    Toy([1, 2]).export(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(ValueError, match="nothing to draw"):
        Toy([]).export(target, overwrite=True)  # "line" raises after the tables are written
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]
    with pytest.raises(ValueError, match="unknown figure format.*'jpg'.*valid: png, svg, pdf"):
        Toy([1]).export(tmp_path / "other", formats=("jpg",))
    assert not (tmp_path / "other").exists()


def test_default_tables_and_plots():
    class One(Result):
        PLOTS = MappingProxyType({"a": "", "b": ""})

        def __init__(self):
            self.meta = {"method": "one"}
            self._freeze()

        def to_frame(self):
            return pd.DataFrame({"x": np.arange(2)})

    one = One()
    assert list(one.tables()) == ["results"] and one.tables()["results"].equals(one.to_frame())
    assert one.applicable_plots() == ("a", "b")
    assert one.summary() == "One (one)"
