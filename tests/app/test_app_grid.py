"""The Experiments page launches a grid over its base config: one arm per value, each over the
seeds, queued like the one-arm launch; a refused row says why under itself and queues nothing."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from jobs import experiments, queue
from lottery_engine.config import load as config_lib

from tests.app.test_app import app


def _fill(at: AppTest, **fields: object) -> AppTest:
    """Set the launch form's fields by label and press its button."""
    for widget in (*at.text_input, *at.number_input):
        if widget.label in fields:
            widget.set_value(fields[widget.label])
    return next(b for b in at.button if b.label == "Queue experiment").click().run()


def _in_page_order(node) -> list[str]:
    """The page's widget labels and messages in the order they are drawn."""
    children = getattr(node, "children", None)
    if children is not None:
        return [text for key in sorted(children) for text in _in_page_order(children[key])]
    text = getattr(node, "label", None) or getattr(node, "value", None)
    return [text] if isinstance(text, str) else []


def test_a_two_value_grid_over_two_seeds_queues_four_labelled_jobs(tmp_path, monkeypatch):
    at = _fill(app(tmp_path, monkeypatch, "views/experiments.py"), **{
        "Experiment name": "Rates", "Seeds": 2, "Grid key 1": "imp.prune_rate",
        "Grid values 1": "0.2, 0.4"})
    assert not at.exception and not at.error
    assert at.success[0].value.endswith(": 4 jobs.")
    [meta] = experiments.list_experiments(tmp_path)
    jobs = experiments.statuses(tmp_path, meta["id"])
    assert [(j["label"], j["seed"], j["state"]) for j in jobs] == [
        ("Rates · prune_rate=0.2", 0, "queued"), ("Rates · prune_rate=0.2", 1, "queued"),
        ("Rates · prune_rate=0.4", 0, "queued"), ("Rates · prune_rate=0.4", 1, "queued")]
    for job in jobs:
        cfg = config_lib.load(tmp_path / job["id"] / "config.yaml")
        assert cfg.imp.prune_rate == float(job["label"].split("=")[1])
        assert (cfg.run.seed, cfg.run.name) == (job["seed"], f"{job['label']} seed {job['seed']}")
        assert cfg.imp.target_sparsity == 0.9  # the form's own fields still apply


def test_a_bad_grid_key_is_refused_under_its_row_and_nothing_is_queued(tmp_path, monkeypatch):
    at = _fill(app(tmp_path, monkeypatch, "views/experiments.py"), **{
        "Grid key 1": "imp.prune_rat", "Grid values 1": "0.2, 0.4"})
    assert not at.exception
    [error] = at.error
    assert "\n" not in error.value
    assert error.value.startswith("Not queued: experiment 'Quickstart over seeds': "
                                  "grid.imp.prune_rat: not a config key. Did you mean "
                                  "'imp.prune_rate'?")
    order = _in_page_order(at.main)
    assert order.index("Grid values 1") < order.index(error.value) < order.index("Grid key 2")
    assert queue.list_jobs(tmp_path) == [] and experiments.list_experiments(tmp_path) == []


def test_a_row_with_a_key_and_no_values_is_refused(tmp_path, monkeypatch):
    at = _fill(app(tmp_path, monkeypatch, "views/experiments.py"),
               **{"Grid key 2": "imp.prune_rate"})
    [error] = at.error
    assert "grid row 2: give a config key and its values" in error.value
    order = _in_page_order(at.main)
    assert order.index("Grid values 2") < order.index(error.value)
    assert queue.list_jobs(tmp_path) == []
