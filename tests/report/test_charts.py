"""Charts that say what they measure: inference time in its own panel, one dash meaning per
series, bands only where seeds allow one and never past what a metric can be, the dark theme,
grouping runs by a config key and parallel coordinates on Compare (unit and AppTest checks; the
browser checks are in test_browser_charts.py)."""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
import pytest

from app import charts
from lottery_engine.config import load as config_lib
from lottery_engine.foundations import runfolder
from lottery_engine.report import compare, page
from lottery_engine.report import figures as report
from lottery_engine.science import over_seeds, writeup

from tests.conftest import round_record, tiny_config
from tests.app.test_app import app, figures
from tests.app.test_app_experiments import finished_experiment  # noqa: F401 (a fixture)

CONTROL_NAMES = {label: kind for kind, label in report.SERIES_LABELS.items() if kind != "imp"}


def _dash(trace) -> str:
    return trace.line.dash or "solid"


def _kind(name: str) -> str:
    """The series a trace belongs to, read from its name (a control's label ends it)."""
    return next((kind for label, kind in CONTROL_NAMES.items()
                 if name.endswith(label) or f"{label}," in name), "imp")


def test_inference_time_has_its_own_small_panel_with_round_ticks(tiny_run):
    records = runfolder.read_rounds(tiny_run)
    controls = {k: v for k, v in runfolder.series(tiny_run).items() if k != "imp"}
    fig = report.sparsity_accuracy(records, "sparsity", controls)
    by_name = {t.name: t for t in fig.data}
    accuracy, inference = by_name["val accuracy"], by_name["inference ms/sample"]
    assert accuracy.yaxis != inference.yaxis  # not one panel with a second axis
    axis = fig.layout[inference.yaxis.replace("y", "yaxis")]
    assert axis.overlaying is None and axis.side != "right"
    top, bottom = fig.layout[accuracy.yaxis.replace("y", "yaxis")].domain, axis.domain
    assert bottom[1] <= top[0] and bottom[1] - bottom[0] < top[1] - top[0]  # small, below
    assert axis.rangemode == "tozero" and axis.tickformat == ".3~g"  # 0, 0.01, 0.02: round
    assert _dash(inference) == "solid"  # dotted means random prune


def test_inference_time_shows_its_spread_and_dense_range(tiny_run):
    """Each round's median call with bars to its fastest and slowest, and dense's range shaded:
    a round inside the shade times no differently from dense (issue 33: one mean of three
    passes, timed while other jobs trained, drew sparser tickets 3x slower than dense)."""
    records = runfolder.read_rounds(tiny_run)
    inference = next(t for t in report.sparsity_accuracy(records).data
                     if t.name == "inference ms/sample")
    for record, up, down in zip(records, inference.error_y.array, inference.error_y.arrayminus):
        low, high = record.inference_ms_range
        assert low <= record.inference_ms <= high
        assert (up, down) == pytest.approx((high - record.inference_ms, record.inference_ms - low))
    [shade] = [s for s in report.sparsity_accuracy(records).layout.shapes if s.type == "rect"]
    assert (shade.y0, shade.y1) == tuple(records[0].inference_ms_range)
    older = [round_record(r, inference_ms=0.01) for r in range(2)]  # before the range was kept
    fig = report.sparsity_accuracy(older)
    assert fig.data[-1].error_y.array is None
    assert not [s for s in fig.layout.shapes if s.type == "rect"]


def test_one_dash_meaning_per_series_everywhere(tiny_run):
    records = runfolder.read_rounds(tiny_run)
    series = runfolder.series(tiny_run)
    controls = {k: v for k, v in series.items() if k != "imp"}
    drawn = [*page.figures(tiny_run), report.sparsity_accuracy(records, "round", controls),
             report.epoch_history(records[-1]),
             compare.compare({"a": {"a": series}, "b": {"b": series}})]
    lines = [t for fig in drawn for t in fig.data if isinstance(t, go.Scatter)]
    assert {_kind(t.name) for t in lines} == {"imp", "random_reinit", "random_prune"}
    for trace in lines:
        assert _dash(trace) == report.SERIES_DASH[_kind(trace.name)], trace.name


def _runs(values: list[list[float]]) -> dict[str, compare.Line]:
    return {f"seed {i}": ([0.0, 50.0, 80.0], v) for i, v in enumerate(values)}


def test_two_runs_draw_as_thin_lines_and_three_as_a_band_clipped_to_the_metric():
    line = {"color": "#E64B35", "dash": "solid"}
    two = compare.spread(_runs([[0.40, 0.5, 0.6], [0.99, 0.98, 0.97]]), name="ticket",
                         line=line, group="a", bounds=compare.UNIT)
    assert not any(t.fill for t in two)  # no t interval from two values (it reached 120%)
    assert [t.line.width for t in two] == [None, 1, 1]  # the mean, then each run thin
    assert list(two[0].y) == pytest.approx([0.695, 0.74, 0.785])
    three = compare.spread(_runs([[0.40, 0.5, 0.6], [0.99, 0.98, 0.97], [0.98, 0.99, 1.0]]),
                           name="ticket", line=line, group="a", bounds=compare.UNIT)
    band, mean = three
    assert band.fill == "toself" and mean.name == "ticket"
    assert max(band.y) == 1.0 and min(band.y) >= 0.0  # clipped where the interval runs past
    assert compare.metric_bounds("test_accuracy") == compare.metric_bounds("val_f1") == (0, 1)
    assert compare.spread_note([2], "seeds") == (
        "thin lines: each of the seeds (fewer than 3: too few for a 95% interval)")
    assert compare.spread_note([1]) is None and "band" in compare.spread_note([3, 1])


def _cells(accuracies: list[list[float]]) -> list[over_seeds.Cell]:
    """Rounds of one series over seeds: accuracies[round][seed]."""
    return [over_seeds.Cell(r, 0.8 ** r, a, [100.0 * (r + 1)] * len(a), 0, a)
            for r, a in enumerate(accuracies)]


def test_the_experiment_figure_draws_two_seeds_as_lines_and_clips_bands():
    two = {"arm": {"imp": _cells([[0.40, 0.99], [0.45, 0.98]]),
                   "random_prune": _cells([[0.40, 0.99], [0.2, 0.3]])}}
    fig = compare.experiment_figure(two, writeup.SERIES_NAMES)
    assert not any(t.fill for t in fig.data)
    assert sum(t.line.width == 1 for t in fig.data) == 2 * 2 * 2  # 2 series x 2 rows x 2 seeds
    assert "too few for a 95% interval" in fig.layout.legend.title.text
    assert {t.name for t in fig.data if t.showlegend is not False} == {
        "winning ticket", "random prune"}
    three = {"arm": {"imp": _cells([[0.40, 0.99, 0.98], [0.45, 0.98, 0.99]])}}
    bands = [t for t in compare.experiment_figure(three, writeup.SERIES_NAMES).data if t.fill]
    assert len(bands) == 2 and max(bands[0].y) == 100.0 and min(bands[1].y) >= 0.0


def test_charts_follow_the_dark_theme():
    dark = charts.themed(go.Figure(layout={"template": "plotly_white"}), "dark")
    assert dark.layout.template.layout.paper_bgcolor == "rgb(17,17,17)"  # Plotly's dark
    assert dark.layout.paper_bgcolor == "rgba(0,0,0,0)"  # over the page's own background
    light = charts.themed(go.Figure(layout={"template": "plotly_white"}), "light")
    assert light.layout.template.layout.paper_bgcolor == "white"


def _finished(folder: Path, rate: float, accuracy: float) -> None:
    """Three rounds and a winning ticket in a run folder, as a finished run leaves them."""
    for r in range(3):
        left = (1 - rate) ** r
        runfolder.append_round(folder, round_record(
            r, global_sparsity=1 - left, remaining_prunable=round(1000 * left),
            val_accuracy=accuracy - 0.01 * r, val_f1=accuracy - 0.05, test_accuracy=accuracy,
            early_stop_step=40 + r))
    runfolder.atomic_write(folder / runfolder.TICKET_JSON, json.dumps(
        {"round": 1, "global_sparsity": rate}))


def _sweep_run(folder: Path, rate: float, seed: int, accuracy: float) -> Path:
    """A finished run folder without training: its config, rounds and winning ticket."""
    folder.mkdir(parents=True)
    cfg = tiny_config(imp__prune_rate=rate, run__seed=seed, run__name=f"rate {rate}")
    runfolder.atomic_write(folder / runfolder.CONFIG, config_lib.to_yaml(cfg))
    _finished(folder, rate, accuracy)
    return folder


@pytest.fixture
def sweep(tmp_path) -> tuple[Path, list[str]]:
    """Six runs of two prune rates, three seeds each, as run folders in a home."""
    home = tmp_path / "home"
    labels = []
    for rate in (0.2, 0.4):
        for seed in range(3):
            _sweep_run(home / "sweep" / f"r{rate}-s{seed}", rate, seed,
                       accuracy=0.9 + 0.03 * seed - rate / 4)
            labels.append(f"sweep/r{rate}-s{seed}")
    return home, labels


def test_compare_groups_runs_by_a_config_key_into_means_with_bands(sweep, monkeypatch):
    home, labels = sweep
    at = app(home, monkeypatch, "views/compare.py")
    at.multiselect[0].set_value(labels).run()
    assert len(figures(at)[0]["data"]) == 6  # each run its own line
    at.selectbox(key="group_by").set_value("imp.prune_rate").run()
    assert not at.exception
    data = figures(at)[0]["data"]
    means = [t for t in data if t.get("mode") == "lines+markers"]
    assert [t["name"] for t in means] == ["imp.prune_rate = 0.2 · ticket",
                                          "imp.prune_rate = 0.4 · ticket"]
    assert means[0]["y"][0] == pytest.approx(0.9 + 0.03 - 0.05)  # the mean of three seeds
    bands = [t for t in data if t.get("fill") == "toself"]
    assert len(bands) == 2 and all(0 <= y <= 1 for t in bands for y in t["y"])
    rows = at.dataframe[0].value
    assert list(rows["runs"]) == [3] * 6 and set(rows["run"]) == {
        "imp.prune_rate = 0.2", "imp.prune_rate = 0.4"}


def test_compare_draws_an_arm_of_two_seeds_as_thin_seed_lines(finished_experiment,  # noqa: F811
                                                              monkeypatch):
    home, _ = finished_experiment
    at = app(home, monkeypatch, "views/compare.py")
    arm = next(o for o in at.multiselect[0].options if o.startswith("experiment Tiny arm"))
    at.multiselect[0].set_value([arm]).run()
    figure = figures(at)[0]
    thin = [t for t in figure["data"] if t.get("line", {}).get("width") == 1]
    assert len(thin) == 2 * 2  # ticket and random reinit, each seed
    assert not any(t.get("fill") for t in figure["data"])
    assert "too few for a 95% interval" in figure["layout"]["legend"]["title"]["text"]


def test_parallel_coordinates_relate_config_keys_to_what_each_run_found(sweep, monkeypatch):
    home, labels = sweep
    at = app(home, monkeypatch, "views/compare.py")
    at.multiselect[0].set_value(labels).run()
    assert at.multiselect(key="parallel_keys").value == ["imp.prune_rate", "run.seed"]
    parcoords = figures(at)[1]["data"][0]
    assert parcoords["type"] == "parcoords"
    dims = {d["label"]: d["values"] for d in parcoords["dimensions"]}
    assert list(dims) == ["imp.prune_rate", "run.seed", "ticket sparsity %",
                          "ticket val accuracy", "early-stop iteration"]
    assert dims["ticket sparsity %"] == pytest.approx([20.0] * 3 + [40.0] * 3)
    assert dims["early-stop iteration"] == [41] * 6  # the ticket round's early-stop step
    assert len(at.dataframe[1].value) == 6


def test_a_brushed_range_keeps_the_runs_inside_it():
    rows = [{"rate": rate, "optimizer": opt, "acc": acc}
            for rate, opt, acc in ((0.2, "adam", 0.9), (0.4, "sgd", 0.8), (0.6, "adam", 0.7))]
    fig = compare.parallel_coordinates(rows, ["rate", "optimizer", "acc"], colour="acc")
    assert list(fig.data[0].dimensions[1].ticktext) == ["adam", "sgd"]  # text as categories
    assert compare.brushed(fig, {}) == [0, 1, 2]
    assert compare.brushed(fig, {"rate": [0.1, 0.5]}) == [0, 1]
    assert compare.brushed(fig, {"rate": [[0.1, 0.3], [0.5, 0.7]], "optimizer": [-0.5, 0.5]}) \
        == [0, 2]


def _one_chart() -> None:
    """A page with one chart (AppTest runs this function as a script)."""
    import plotly.graph_objects as go

    from app import charts

    charts.chart(go.Figure(layout={"uirevision": "sparsity"}), key="sparsity")


def test_the_same_chart_of_another_run_is_another_view():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_one_chart)
    at.query_params["job"] = "run-a"
    [figure] = figures(at.run())
    assert figure["key"] == "sparsity"  # what the browser keeps the plot under
    assert figure["layout"]["uirevision"] == "sparsity?job=run-a"  # run-b: a fresh view


def test_parallel_axes_keep_a_sensible_span_and_short_labels():
    """Issue 33: a 0.0001-point spread was stretched over a whole axis, and long names were
    clipped; now an axis spans at least 5% of its magnitude, long names are cut in the middle
    (apart from each other) and brushing still finds the runs by the labels drawn."""
    long_key = "imp.layer_rates.block_3_expand_conv"
    rows = [{long_key: "a-very-long-category-value", "imp.layer_rates.block_3_other_conv": 1,
             "ticket val accuracy": accuracy} for accuracy in (0.8511, 0.8512)]
    fig = compare.parallel_coordinates(rows, list(rows[0]), colour="ticket val accuracy")
    first, second, accuracy = fig.data[0].dimensions
    assert accuracy.label == "ticket val accuracy"
    low, high = accuracy.range
    assert high - low == pytest.approx(0.05 * 0.8512) and low < 0.8511 < 0.8512 < high
    assert len(first.label) <= compare.LABEL_CHARS and "…" in first.label
    assert first.label != second.label
    assert "…" in first.ticktext[0] and len(first.ticktext[0]) <= compare.TICK_CHARS
    assert compare.brushed(fig, {accuracy.label: [0.85115, 0.852]}) == [1]
