"""Every refusal of a config at once: the validator, the CLI, the Launch form (both tabs) and the
Experiments form report them all in one go, each where it belongs; the Launch form shows only the
fields that apply to the chosen data source."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app.lab import plain
from jobs import experiments, queue
from lottery_engine import preflight
from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError

from tests.jobs_helpers import tiny_yaml
from tests.app.test_app import app, button
from tests.jobs.test_hardening_input import QUICKSTART, lottery

FIVE_BAD = {"run": {"seed": -1}, "data": {"channels": 2}, "train": {"epochs": 0},
            "imp": {"prune_rate": 1.5, "scope": "local"}}


def refusals(raw) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        preflight.from_dict(raw)  # the values and the files they name, as every entry point
    return info.value


# --- the validator -----------------------------------------------------------------------------

def test_every_bad_value_is_reported_at_once_in_one_config_error():
    error = refusals(FIVE_BAD)
    assert [e.key for e in error.errors] == ["run.seed", "data.channels", "train.epochs",
                                             "imp.prune_rate", "imp.scope"]
    assert str(error).splitlines() == [str(e) for e in error.errors]
    assert str(error).splitlines()[0] == str(refusals({"run": {"seed": -1}}))  # as before


def test_unknown_keys_are_all_reported_with_the_bad_values():
    with pytest.raises(ConfigError) as info:
        config_lib.loads("imp: {prune_rte: 0.2, num_rouns: 3, scope: local}\ntrian: {}\n")
    assert [str(e).split(":")[0] for e in info.value.errors] == [
        "trian", "imp.prune_rte", "imp.num_rouns", "imp.scope"]
    assert "Did you mean 'num_rounds'?" in str(info.value.errors[2])


@pytest.mark.parametrize("raw,key", [
    ({"data": {"source": "s3", "name": "nope"}}, "data.source"),
    ({"train": {"arch": "resnet", "weights": "imagenet", "init": "fresh"}}, "train.arch"),
    ({"train": {"epochs": 0}, "imp": {"rewind": "epoch:5"}}, "train.epochs"),
    ({"data": {"train_split": 2, "val_split": 0.5}}, "data.train_split"),
    ({"report": {"compare_with_hybrid_pipeline": "yes"}}, "report.compare_with_hybrid_pipeline"),
    ({"data": {"source": "folder", "data_dir": "/no/such", "limit_total": 5}},
     "data.limit_total"),  # the folder is not looked at while a data value is refused
], ids=["source", "arch", "epochs", "splits", "hybrid", "files"])
def test_checks_that_need_a_refused_value_are_skipped(raw, key):
    assert [e.key for e in refusals(raw).errors] == [key]


def test_a_single_refusal_is_one_line_and_its_own_only_error():
    error = refusals({"imp": {"prune_rate": 0}})
    assert error.errors == [error] and "\n" not in str(error)


def test_a_form_value_becomes_an_override_that_reads_back_exactly():
    settings = {"train.learning_rate": 1e-05, "imp.controls": ["random_prune"], "imp.num_rounds": 3}
    raw = config_lib.apply_overrides({}, [config_lib.override(k, v) for k, v in settings.items()])
    assert raw == {"train": {"learning_rate": 1e-05},
                   "imp": {"controls": ["random_prune"], "num_rounds": 3}}


def test_the_cli_prints_each_refusal_on_its_own_line(tmp_path):
    home = tmp_path / "home"
    result = lottery("submit", "--config", QUICKSTART, "--home", str(home),
                     "--set", "train.epochs=0", "--set", "imp.scope=local")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line.split(":")[:2] for line in lines] == [["error", " train.epochs"],
                                                       ["error", " imp.scope"]]
    assert not home.exists() or not [p for p in home.iterdir() if not p.name.startswith(".")]


# --- the Launch form ---------------------------------------------------------------------------

def errors_by_field(at: AppTest) -> dict[str | None, list[str]]:
    """Each error on the page under the label of the widget it follows, in page order; a column
    starts afresh (None: an error after a form's columns, above its button)."""
    found: dict[str | None, list[str]] = {}

    def walk(node, last: str | None) -> str | None:
        for child in getattr(node, "children", {}).values():
            if child.type == "error":
                found.setdefault(last, []).append(child.value)
            elif child.type == "column":
                walk(child, None)
            elif getattr(child, "children", None) is not None:
                last = walk(child, last)
            elif getattr(child, "label", None):
                last = child.label
        return last

    walk(at._tree, None)
    return found


def number(at: AppTest, label: str):
    return next(n for n in at.number_input if n.label == label)


def test_five_bad_form_fields_are_each_explained_under_their_field_in_one_submit(
        tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    number(at, "Epochs per round").set_value(0)
    number(at, "Prune rate per round").set_value(1.5)
    number(at, "Seed").set_value(-1)
    number(at, "Pruning rounds (after the dense round 0)").set_value(-2)
    next(t for t in at.text_input if t.label.startswith("Rewind")).set_value("late")
    at.button[0].click().run()
    shown = errors_by_field(at)
    assert {label: [m.split(": ")[1] for m in messages] for label, messages in shown.items()} == {
        label: [plain(label)] for label in (  # each worded with its own field's label
            "Epochs per round", "Prune rate per round", "Seed",
            "Pruning rounds (after the dense round 0)", "Rewind (init, epoch:K or step:N)")}
    assert queue.list_jobs(tmp_path) == []


def test_no_stale_error_stays_beside_a_fixed_field_and_queued(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    number(at, "Epochs per round").set_value(0)
    at.button[0].click().run()
    assert "Epochs per round: 0 does not work here" in errors_by_field(at)["Epochs per round"][0]
    number(at, "Epochs per round").set_value(4)
    at.button[0].click().run()
    assert not at.error and at.success[0].value == "Queued quickstart."


def test_an_error_disappears_once_its_field_is_fixed(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    number(at, "Epochs per round").set_value(0)
    number(at, "Prune rate per round").set_value(0.0)
    at.button[0].click().run()
    assert set(errors_by_field(at)) == {"Epochs per round", "Prune rate per round"}
    number(at, "Epochs per round").set_value(4)
    at.button[0].click().run()
    assert list(errors_by_field(at)) == ["Prune rate per round"]  # the other one stays
    assert queue.list_jobs(tmp_path) == []
    number(at, "Prune rate per round").set_value(0.2)
    at.button[0].click().run()
    assert not at.error and at.success[0].value == "Queued quickstart."
    at.radio[0].set_value("keras dataset").run()  # any later rerun stays clean
    assert not at.error


def test_a_refusal_without_a_field_is_shown_above_the_button(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    number(at, "Limit total images (0 = all)").set_value(25)
    at.button[0].click().run()
    [message] = errors_by_field(at)[None]
    assert "data.train_split / data.val_split: cannot split" in message  # before "Queue run"
    assert queue.list_jobs(tmp_path) == []


def test_yaml_tab_lists_every_refusal_above_its_button_and_drops_fixed_ones(tmp_path,
                                                                            monkeypatch):
    at = app(tmp_path, monkeypatch)
    at.text_area(key="yaml_text").set_value("imp: {prune_rte: 0.2, num_rouns: 3}\n").run()
    button(at, "Queue this config").click().run()
    assert [e.value.split(": ")[1] for e in at.error] == ["imp.prune_rte", "imp.num_rouns"]
    assert errors_by_field(at) == {"Config (paste or edit)": [e.value for e in at.error]}
    at.text_area(key="yaml_text").set_value("imp: {prune_rate: 0.2, num_rouns: 3}\n").run()
    assert [e.value.split(": ")[1] for e in at.error] == ["imp.num_rouns"]
    at.text_area(key="yaml_text").set_value(tiny_yaml("fixed")).run()
    assert not at.error
    button(at, "Queue this config").click().run()
    assert not at.error and [j["name"] for j in queue.list_jobs(tmp_path)] == ["fixed"]


def labels(at: AppTest) -> set[str]:
    return {w.label for kind in (at.text_input, at.selectbox, at.number_input) for w in kind}


@pytest.mark.parametrize("source,shown,hidden", [
    ("bundled digits", {"Image size (pixels, square)", "Channels"},
     {"Image folder path", "Keras dataset"}),
    ("image folder", {"Image folder path", "Image size (pixels, square)", "Channels"},
     {"Keras dataset"}),
    ("keras dataset", {"Keras dataset", "Image size (pixels, square)", "Channels"},
     {"Image folder path"}),
    ("my own data (.npz / .csv)", {"Label column (.csv only)"},
     {"Image folder path", "Keras dataset", "Image size (pixels, square)", "Channels"}),
])
def test_the_form_shows_only_the_fields_of_the_chosen_data_source(tmp_path, monkeypatch, source,
                                                                  shown, hidden):
    at = app(tmp_path, monkeypatch)
    at.radio[0].set_value(source).run()
    assert not at.exception
    assert shown <= labels(at) and not hidden & labels(at)


# --- the Experiments form ----------------------------------------------------------------------

def experiment_button(at: AppTest):
    return next(b for b in at.button if b.label == "Queue experiment")


def test_a_short_experiment_needs_no_pasted_yaml(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch, "views/experiments.py")
    number(at, "Seeds").set_value(1)
    number(at, "Pruning rounds").set_value(1)
    number(at, "Epochs per round").set_value(1)
    number(at, "Prune rate per round").set_value(0.5)
    experiment_button(at).click().run()
    assert not at.exception and not at.error
    [meta] = experiments.list_experiments(tmp_path)
    [job] = experiments.statuses(tmp_path, meta["id"])
    cfg = config_lib.load(tmp_path / job["id"] / "config.yaml")
    assert (cfg.imp.num_rounds, cfg.train.epochs, cfg.imp.prune_rate) == (1, 1, 0.5)
    assert (cfg.train.batch_size, cfg.imp.scope) == (64, "global")  # the rest: the base's


def test_the_experiment_form_reports_every_refusal(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch, "views/experiments.py")
    next(t for t in at.text_area if t.label.startswith("…or paste")).set_value(
        "train: {epochs: 0}\nimp: {scope: local}\n")
    experiment_button(at).click().run()
    assert [e.value.split(": ")[1] for e in at.error] == ["train.epochs", "imp.scope"]
    assert queue.list_jobs(tmp_path) == []
