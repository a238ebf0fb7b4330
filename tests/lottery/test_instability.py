"""Instability analysis (issue 31): the barrier as defined, copies that differ only in their data
order, masks kept along the line, BatchNorm statistics recomputed, a resumed analysis equal to an
uninterrupted one, the CLI's one-line refusals and the report's figures. On a tiny run: digits at
16x16, one epoch of 7 steps, two rounds rewound to step 3."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lottery_engine.evaluation.barrier import alphas, barrier, interpolate
from lottery_engine.foundations import runfolder
from lottery_engine.lottery.instability_plan import Request, order_seed

from tests.conftest import tiny_config

REQUEST = Request(rounds=(0, 2), rewinds=(0, 3), copies=2, points=5)


def _timeless(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in records]


def test_barrier_by_hand():
    """Highest error along the line minus the mean of the ends: 0.30 - (0.10 + 0.20) / 2."""
    assert barrier([0.10, 0.25, 0.30, 0.20]) == pytest.approx(0.15)
    assert barrier([0.2, 0.1, 0.2]) == pytest.approx(0.0)  # a line better than its ends
    assert barrier([0.1, 0.3]) == pytest.approx(0.1)  # the worse end is the highest point
    assert alphas(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    a, b = [np.array([1.0, 0.0, 2.0], np.float32)], [np.array([3.0, 0.0, -2.0], np.float32)]
    assert np.array_equal(interpolate(a, b, 0.0)[0], a[0])
    assert np.array_equal(interpolate(a, b, 1.0)[0], b[0])
    assert np.allclose(interpolate(a, b, 0.25)[0], [1.5, 0.0, 1.0])
    with pytest.raises(ValueError):
        barrier([0.1])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from lottery_engine import pipeline

    run_dir = tmp_path_factory.mktemp("instability") / "run"
    pipeline.execute(tiny_config(imp__rewind="step:3"), run_dir)  # late rewinding
    return run_dir


def _copy(run, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(run, target)
    return target


@pytest.fixture(scope="module")
def analysed(run, tmp_path_factory):
    """The whole request in one go, on a copy of the run."""
    from lottery_engine.lottery.instability import analyse

    target = tmp_path_factory.mktemp("whole") / "run"
    shutil.copytree(run, target)
    analyse(target, REQUEST)
    return target


def test_lines_hold_the_barrier_as_defined(analysed):
    lines = runfolder.read_lines_from(analysed / runfolder.INSTABILITY)[0]
    assert [(r["round"], r["rewind_step"], r["pair"]) for r in lines] == [
        (0, 0, [0, 1]), (0, 3, [0, 1]), (2, 0, [0, 1]), (2, 3, [0, 1])]
    for line in lines:
        assert line["alphas"] == alphas(5) and line["order_seeds"] == [order_seed(7, 0),
                                                                      order_seed(7, 1)]
        for split in ("test", "val"):
            curve = line[f"{split}_error"]
            assert len(curve) == 5 and line[f"endpoint_{split}_error"] == [curve[0], curve[-1]]
            assert line[f"{split}_instability"] == pytest.approx(
                max(curve) - (curve[0] + curve[-1]) / 2)
    assert lines[0]["sparsity"] == 0.0 and lines[2]["sparsity"] > 0.3
    assert all(line["stack_refused"] is None for line in lines)  # a conv net in graph mode


def test_copies_differ_only_in_data_order(run, tmp_path):
    """Round 0 replayed from θ0 to the run's rewind step 3 (two steps a call, not three) gives
    the stored rewind point bit for bit. From it, trained as one stack (the conv LeNet in graph
    mode), same order: the same endpoints to float tolerance and a barrier of 0 (only SGD noise
    is varied); other orders: other endpoints, each what it is trained alone to float tolerance,
    both with round 2's pruned weights still zero, and the line's ends are the endpoints'
    errors exactly."""
    from lottery_engine.lottery.instability import along_line, prepare, replay, train_copies
    from lottery_engine.pruning.masks import load_masks

    analysis = prepare(_copy(run, tmp_path), Request(rounds=(2,), rewinds=(0, 2, 3)))
    starts = analysis.starts
    assert all(np.array_equal(a, b) for a, b in zip(replay(analysis.trainer, starts[0], {3})[3],
                                                    starts[3]))
    assert not all(np.array_equal(a, b) for a, b in zip(starts[2], starts[3]))
    assert analysis.stack_refused is None
    same = train_copies(analysis, 2, 3, [order_seed(7, 0)] * 2)
    assert all(np.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(*same))
    line = along_line(analysis.trainer, same[0], same[1], 3)
    assert line["test_instability"] == 0.0 and line["val_instability"] == 0.0
    other = train_copies(analysis, 2, 3, [order_seed(7, 0), order_seed(7, 1)])
    assert all(np.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(same[0], other[0]))
    assert max(np.abs(a - b).max() for a, b in zip(*other)) > 1e-3
    analysis.stack_refused = "one after another, to compare"
    alone = train_copies(analysis, 2, 3, [order_seed(7, 0), order_seed(7, 1)])
    for stacked, single in zip(other, alone):
        assert all(np.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(stacked, single))
    line = along_line(analysis.trainer, other[0], other[1], 3)
    for alpha, end in ((0, other[0]), (-1, other[1])):  # the line's ends are the copies
        analysis.trainer.model.set_weights(end)
        error = 1 - (analysis.trainer.probabilities("test").argmax(1)
                     == analysis.trainer.data.y_test).mean()
        assert line["test_error"][alpha] == error
    masks = load_masks(run / runfolder.mask_file(2))
    kernels = analysis.trainer.manager.kernel_variables
    index = {id(w): i for i, w in enumerate(analysis.trainer.model.weights)}
    for name, mask in masks.items():
        for end in other:
            assert not end[index[id(kernels[name])]][mask == 0].any()


def test_resumed_analysis_equals_an_uninterrupted_one(run, analysed, tmp_path):
    """A first analysis of one (r, k), then a torn line as a killed writer leaves it, then the
    whole request: the finished line is kept as it was, the others written once."""
    from lottery_engine.lottery.instability import analyse

    target = _copy(run, tmp_path)
    analyse(target, Request(rounds=(0,), rewinds=(0,), copies=2, points=5))
    path = target / runfolder.INSTABILITY
    first = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"round": 0, "rewind_')
    written = analyse(target, REQUEST)
    assert len(written) == 3 and path.read_bytes().startswith(first)
    resumed = runfolder.read_lines_from(path)[0]
    whole = runfolder.read_lines_from(analysed / runfolder.INSTABILITY)[0]
    assert _timeless(resumed) == _timeless(whole)
    assert analyse(target, REQUEST) == []


def test_batchnorm_statistics_are_recomputed():
    """The moving mean and variance become the average of the batches' statistics."""
    import keras

    from lottery_engine.lottery.instability import batchnorm_layers, recompute_batchnorm

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    batches = [np.random.default_rng(i).normal(i, 1.0, (8, 3)).astype(np.float32)
               for i in range(3)]
    layers = batchnorm_layers(model)
    assert layers == [model.layers[1]]
    recompute_batchnorm(layers, model, batches)
    hidden = [np.asarray(model.layers[0](x)) for x in batches]
    assert np.allclose(layers[0].moving_mean.numpy(), np.mean([h.mean(0) for h in hidden], 0),
                       atol=1e-5)
    assert np.allclose(layers[0].moving_variance.numpy(),
                       np.mean([h.var(0) for h in hidden], 0), atol=1e-4)
    assert layers[0].momentum == 0.99


@pytest.mark.parametrize("args,message", [
    (["--rounds", "0,5", "--rewind", "0"], "error: --rounds 5: round 5 of "),
    (["--rounds", "0", "--rewind", "0,7"], "error: --rewind 7: beyond the run's T = 7 training"),
    (["--rounds", "zero", "--rewind", "0"], "error: --rounds zero: not a comma-separated list"),
    (["--rounds", "0", "--rewind", "0", "--copies", "1"], "error: --copies 1: a barrier needs"),
])
def test_cli_refuses_a_bad_request_in_one_line(run, args, message, capsys):
    """Refused before anything loads or trains (in this process: `lottery` is jobs.cli.main)."""
    from jobs import cli

    assert cli.main(["instability", str(run), *args]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(message) and len(error.splitlines()) == 1, error
    assert not (run / runfolder.INSTABILITY).exists()


def test_cli_resumes_and_the_report_shows_both_figures(analysed, capsys):
    """Asked again, the finished analysis trains nothing and the report gets both figures."""
    from jobs import cli

    (analysed / runfolder.REPORT_HTML).unlink()
    assert cli.main(["instability", str(analysed), "--rounds", "0,2", "--rewind", "0,3",
                     "--points", "5"]) == 0
    assert "0 new lines" in capsys.readouterr().out
    page = (analysed / runfolder.REPORT_HTML).read_text()
    assert "Test error along the line between two copies" in page
    assert "Instability vs rewind step" in page and "round 2 (" in page


def test_figures_group_pairs_by_round_and_rewind_step():
    """The path figure has a panel per round and a line per k; the barrier figure a line per
    round over k, k = 0 placed left of the smallest k on the log axis, values the pairs' mean."""
    from lottery_engine.report.instability_figures import error_along_line, instability_vs_rewind

    def line(r, k, pair, instability):
        return {"round": r, "rewind_step": k, "pair": pair, "points": 3, "sparsity": 0.2 * r,
                "alphas": [0.0, 0.5, 1.0], "test_error": [0.1, 0.1 + instability, 0.1],
                "test_instability": instability}

    lines = [line(r, k, pair, 0.01 * (r + 1) * (pair[1])) for r in (0, 4) for k in (0, 10, 100)
             for pair in ([0, 1], [0, 2])]
    path = error_along_line(lines)
    assert len(path.data) == 6 and [t.name for t in path.data[:3]] == ["k = 0", "k = 10",
                                                                       "k = 100"]
    assert path.data[0].y[1] == pytest.approx(100 * (0.1 + 0.015))
    # a panel's title on two lines: four one-line titles ran into each other
    assert [a.text for a in path.layout.annotations] == [
        "round 0<br>(100.0% of weights)", "round 4<br>(20.0% of weights)"]
    barrier_fig = instability_vs_rewind(lines)
    assert [t.name for t in barrier_fig.data] == ["round 0 (100.0% of weights)",
                                                  "round 4 (20.0% of weights)"]
    assert list(barrier_fig.data[1].x) == [5.0, 10.0, 100.0]
    assert list(barrier_fig.data[1].y) == pytest.approx([7.5] * 3)
    assert list(barrier_fig.layout.xaxis.ticktext) == ["0", "10", "100"]


def test_a_worker_runs_the_analysis_as_a_job(run, tmp_path):
    """Queued for a run of the home (refused in one line for an unfinished round, and while one
    is live), a real local worker runs it into the run's folder, report included."""
    from jobs import instability_jobs, queue, worker
    from lottery_engine.lottery.instability_plan import InstabilityError

    home = tmp_path / "home"
    home.mkdir()
    run_dir = runfolder.new_run_dir(home, "tiny")
    shutil.copytree(run, run_dir)
    (run_dir / runfolder.REPORT_HTML).unlink()
    with pytest.raises(InstabilityError, match="^--rounds 3: round 3 of "):
        instability_jobs.submit(run_dir.name, Request((3,), (0,)), home)
    job_id = instability_jobs.submit(run_dir.name, Request((2,), (0,), points=3), home)
    with pytest.raises(queue.JobError, match="is already queued"):
        instability_jobs.submit(run_dir.name, Request((0,), (0,)), home)
    assert [j["id"] for j in instability_jobs.jobs_of(queue.list_jobs(home), run_dir.name)] == [
        job_id]
    worker.Worker(home, device="cpu").serve(once=True)
    assert queue.get(job_id, home)["state"] == queue.DONE, runfolder.log_tail(home / job_id)
    lines = runfolder.read_lines_from(run_dir / runfolder.INSTABILITY)[0]
    assert [(x["round"], x["rewind_step"], x["points"]) for x in lines] == [(2, 0, 3)]
    assert "Instability vs rewind step" in (run_dir / runfolder.REPORT_HTML).read_text()
    assert "1 new lines" in (home / job_id / runfolder.LOG).read_text()
    assert worker.job_line(queue.get(job_id, home)).startswith(f"{job_id}  done ")


def test_the_run_page_queues_the_analysis_and_shows_its_figures(analysed, tmp_path,
                                                                 monkeypatch):
    """The dashboard's section (AppTest): both figures of the lines so far, a request queued as
    a job of its own that the runs table does not list as a run, and a refusal in one line."""
    from streamlit.testing.v1 import AppTest

    from app import lab
    from jobs import instability_jobs, queue

    from tests.conftest import ROOT

    run_dir = runfolder.new_run_dir(tmp_path, "tiny")
    shutil.copytree(analysed, run_dir)
    monkeypatch.setenv("LOTTERY_HOME", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=60)
    at.switch_page("views/run.py")
    at.query_params["job"] = run_dir.name
    at.run()
    assert not at.exception and "Instability" in [h.value for h in at.subheader]
    from tests.app.test_app import figures

    titles = [chart["layout"]["title"]["text"] for chart in figures(at)]
    assert titles[-2:] == ["Test error along the line between two copies",
                           "Instability vs rewind step"]
    at.text_input[0].set_value("0,99")  # T is 7
    next(b for b in at.button if b.label == "Queue the analysis").click().run()
    assert "rewind 99: beyond the run's T = 7 training steps" in at.error[0].value
    at.text_input[0].set_value("0,2")
    next(b for b in at.button if b.label == "Queue the analysis").click().run()
    queued, = instability_jobs.jobs_of(queue.list_jobs(tmp_path), run_dir.name)
    assert (queued["rounds"], queued["rewinds"], queued["copies"]) == ([0, 2], [0, 2], 2)
    assert at.info[0].value == "Analysis queued"
    assert next(b for b in at.button if b.label == "Analysing…").disabled
    assert [row["id"] for row in lab.job_rows(queue.list_jobs(tmp_path))] == [run_dir.name]
