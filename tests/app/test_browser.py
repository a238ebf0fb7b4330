"""A real browser against the app and worker as `make run` starts them (app.serve).

Needs Debian's chromium and the playwright package. Outside CI a missing browser skips with the
reason; in CI (CI=true) it fails, because .ci/run installs both.
"""

from __future__ import annotations

import io
import os
import re
import zipfile

import pytest

from benchmarks import _probe as probe
from jobs import queue

from tests.conftest import ROOT
from tests.jobs_helpers import tiny_yaml, wait_state

OUTPUT = ROOT / "test-output" / "browser"
# the README's screenshots are remade by `make screenshots`; a plain test run leaves docs/ alone
DOCS = ROOT / "docs" if os.environ.get("UPDATE_SCREENSHOTS") else OUTPUT


@pytest.fixture
def browser():
    reason = probe.browser_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = probe.launch(pw)
        yield chromium
        chromium.close()


def _page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
    page.set_default_timeout(60_000)
    return page


def _names(grid) -> list[str]:
    """The name column, read from the grid's accessible table (the grid itself is a canvas)."""
    return grid.locator("[role=gridcell][aria-colindex='1']").all_inner_texts()


def _zoom(page, plot) -> list[float]:
    """Drag a zoom box over a Plotly chart; returns the x range it set. (A drag that starts
    while the page is redrawing around the chart misses it: then drag again.)"""
    for _ in range(5):
        page.wait_for_timeout(300)
        box = plot.locator(".nsewdrag").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.4)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=8)
        page.mouse.up()
        if plot.evaluate("gd => gd.layout.xaxis.autorange") is False:
            return plot.evaluate("gd => gd.layout.xaxis.range")
    page.screenshot(path=str(OUTPUT / "zoom_failed.png"))
    raise AssertionError(f"the chart did not zoom (see {OUTPUT / 'zoom_failed.png'})")


def _choose(page, label: str, option: str) -> None:
    """Pick an option of a select box as a user does: open it, click the option (a list that
    opens while the page is still rerunning closes again, so try until it stays open)."""
    from playwright.sync_api import Error

    box = page.get_by_label(label)
    for _ in range(10):
        box.click()
        box.press("ArrowDown")
        try:
            page.get_by_role("option").filter(has_text=option).click(timeout=3000)
            return
        except Error:
            page.keyboard.press("Escape")
    raise AssertionError(f"could not choose {option!r} in {label!r}")


def _cell(grid, text: str):
    return grid.locator("[role=gridcell][aria-colindex='1']", has_text=text)


def _click_grid(page, grid, x: float, row: int) -> None:
    """Click the canvas grid where a user would: `x` pixels in, on `row` (-1: the header)."""
    box = grid.bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + 17 + 35 * (row + 1))


def test_launch_watch_zoom_and_download_in_a_real_browser(browser, tmp_path):
    from playwright.sync_api import expect

    with probe.served(tmp_path / "home", tmp_path / "serve.log") as url:
        page = _page(browser)
        page.goto(url)  # the Launch page is the default
        expect(page.get_by_role("heading", name="Launch a run")).to_be_visible()
        expect(page.get_by_role("button", name="Deploy")).to_have_count(0)  # toolbar: minimal
        rate = page.get_by_label("Prune rate per round", exact=True)
        rate.fill("1.5")
        rate.press("Tab")
        page.get_by_role("button", name="Queue run").click()
        expect(page.get_by_text("Prune rate per round: 1.5 does not work here; give a number "
                                "in (0, 1)")).to_be_visible()
        page.screenshot(path=str(DOCS / "launch.png"))  # the refusal beside its field
        for label, value in (("Prune rate per round", "0.2"),
                             ("Image size (pixels, square)", "16"),
                             ("Limit total images (0 = all)", "200"),
                             ("Pruning rounds (after the dense round 0)", "8"),
                             ("Epochs per round", "6")):
            field = page.get_by_label(label, exact=True)
            field.fill(value)
            field.press("Tab")
        page.get_by_role("button", name="Queue run").click()
        expect(page.get_by_text("Queued quickstart.")).to_be_visible()
        page.get_by_role("link", name="Watch").click()

        # zoom the first chart as a user does (drag a box), then let a new round arrive
        metric = page.get_by_test_id("stMetric").filter(has_text="Pruning rounds done")
        # rounds take a few seconds and the page refreshes every 1.5 s, so a given count can be
        # skipped: wait for any count that leaves at least two rounds to come
        expect(metric).to_contain_text(re.compile(r"[1-6] / 8"), timeout=240_000)
        plot = page.locator(".js-plotly-plot").first
        zoomed = _zoom(page, plot)
        points = plot.evaluate("gd => gd.data[0].x.length")  # rounds drawn so far
        page.wait_for_function(  # a later round arrives and is drawn into the same plot
            "n => document.querySelector('.js-plotly-plot').data[0].x.length > n",
            arg=points, timeout=240_000)
        assert plot.evaluate("gd => gd.layout.xaxis.range") == pytest.approx(zoomed)
        # the README's picture of a live run: zoomed back out (a double-click, as Plotly's hint
        # says) and taken once the chart has drawn the rounds the header counts (the header is
        # drawn first in each refresh, the charts after it)
        plot.locator(".nsewdrag").first.dblclick()
        page.wait_for_function(
            """() => {
                const done = parseInt(document.querySelector(
                    '[data-testid=stMetric] [data-testid=stMetricValue]').innerText);
                const gd = document.querySelector('.js-plotly-plot');
                return gd.layout.xaxis.autorange !== false && gd.data[0].x.length === done + 1;
            }""", timeout=60_000)
        page.mouse.move(0, 0)  # no hover label in the picture
        page.screenshot(path=str(DOCS / "run_live.png"))

        download = page.get_by_role("button", name="Download the winning ticket (.zip)")
        expect(download).to_be_visible(timeout=240_000)
        with page.expect_download() as info:
            download.click()
        path = OUTPUT / info.value.suggested_filename
        info.value.save_as(path)
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        assert "winning_ticket_model.keras" in archive.namelist()


def test_run_table_labels_diff_and_page_budget_in_a_real_browser(browser, tmp_path):
    from playwright.sync_api import expect

    home = tmp_path / "home"
    extra = "imp: {prune_rate: 0.2, num_rounds: 15, target_sparsity: 0.999, controls: " \
            "[random_reinit, random_prune]}"
    long = queue.submit(tiny_yaml("fifteen", limit=200, extra=extra).replace(
        "imp: {prune_rate: 0.2, num_rounds: 2, target_sparsity: 0.99}\n", ""), home)
    other = queue.submit(tiny_yaml("other").replace("batch_size: 16", "batch_size: 32"), home)
    with probe.served(home, tmp_path / "serve.log") as url:
        for job_id in (long, other):
            assert wait_state(home, job_id, timeout=400)["state"] == "done"
        page = _page(browser)

        # the Run page of a finished 15-round run with two controls, on an idle machine
        loads = [probe.timed_load(page, f"{url}/run?job={long}", ".js-plotly-plot",
                                  probe.RUN_PAGE_COMPLETE) for _ in range(5)]
        first, complete = min(t[0] for t in loads), min(t[1] for t in loads)
        print(f"Run page: first chart {first:.2f} s, complete {complete:.2f} s (best of 5)")
        # targets: first chart 1.5 s (met by the median in benchmarks/run_page.py, 1.48 s, but
        # its best of five here ranges 1.2-1.65 s with machine noise), complete 3 s; the test
        # guards the first chart at 2 s so that noise does not fail it while a regression does
        assert first <= 2.0 and complete <= 3.0, loads

        # rename and notes, kept in the run folder across a restart of the dashboard
        page.get_by_text("Name, notes and tags").click()
        page.get_by_label("Name", exact=True).fill("fifteen rounds")
        page.get_by_label("Notes", exact=True).fill("two controls")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("heading", name="fifteen rounds · done")).to_be_visible()

        # a config diff against the other run
        page.get_by_text("Config", exact=True).click()
        _choose(page, "Diff against", f"other · {other[-6:]}")
        expect(page.get_by_text("+  batch_size: 16")).to_be_visible()
        expect(page.get_by_text("-  batch_size: 32")).to_be_visible()
        page.screenshot(path=str(DOCS / "run_page.png"), full_page=True)

    with probe.served(home, tmp_path / "serve.log") as url:  # the dashboard restarted
        page = _page(browser)
        page.goto(f"{url}/run?job={long}")
        expect(page.get_by_role("heading", name="fifteen rounds · done")).to_be_visible()
        page.get_by_text("Name, notes and tags").click()
        expect(page.get_by_label("Notes", exact=True)).to_have_value("two controls")

        # the run table: sort by a column, filter by text, delete after a confirmation
        page.goto(f"{url}/runs")
        grid = page.get_by_test_id("stDataFrame")
        expect(_cell(grid, "other")).to_be_attached()
        assert _names(grid)[:2] == ["other", "fifteen rounds"]  # newest first
        _click_grid(page, grid, x=100, row=-1)  # the header of the name column: sort by it
        expect(grid.locator("[role=gridcell][aria-colindex='1']").first).to_have_text(
            "fifteen rounds")
        assert _names(grid)[:2] == ["fifteen rounds", "other"]
        page.screenshot(path=str(DOCS / "runs.png"))
        page.get_by_label("Search name or tag").fill("oth")
        page.get_by_label("Search name or tag").press("Enter")
        expect(_cell(grid, "fifteen rounds")).not_to_be_attached()
        # the filtered table is a new element (its key names the rows shown); the old one stays
        # on the page, stale, until the rerun ends: click only once it is gone
        expect(grid).to_have_count(1)
        _click_grid(page, grid, x=15, row=0)  # the selection box of the first row
        page.get_by_role("button", name="Delete").click()
        expect(page.get_by_text("Delete 1 run(s) and their folders for good?")).to_be_visible()
        assert (home / other).is_dir()
        page.get_by_role("button", name="Yes, delete").click()
        expect(page.get_by_text("Delete 1 run(s)")).not_to_be_visible()
        assert not (home / other).exists()
        page.goto(f"{url}/compare")
        expect(page.locator(".js-plotly-plot").first).to_be_visible()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(DOCS / "compare.png"))


def test_launch_and_watch_an_experiment_in_a_real_browser(browser, tmp_path):
    from playwright.sync_api import expect

    with probe.served(tmp_path / "home", tmp_path / "serve.log") as url:
        page = _page(browser)
        page.goto(f"{url}/experiments")
        expect(page.get_by_role("heading", name="Experiments")).to_be_visible()
        page.get_by_label("…or paste a YAML config (used when not empty)").fill(
            tiny_yaml("tiny", rounds=1))
        seeds = page.get_by_label("Seeds", exact=True)
        seeds.fill("2")
        seeds.press("Tab")
        page.get_by_label("Experiment name").fill("Browser experiment")
        page.get_by_role("button", name="Queue experiment").click()
        expect(page.get_by_text("Queued experiment")).to_be_visible()
        expect(page.get_by_text("2 of 2 jobs finished")).to_be_visible(timeout=300_000)
        plot = page.locator(".js-plotly-plot").first
        expect(plot).to_be_visible()
        names = plot.evaluate("gd => gd.data.map(t => t.name)")
        assert {"winning ticket", "random reinit", "random prune"} <= set(names)
        expect(page.get_by_text("Dense network: test accuracy at early stop")).to_be_visible()
        download = page.get_by_role("button", name="Download RESULTS.md")
        expect(download).to_be_visible(timeout=120_000)
        page.screenshot(path=str(DOCS / "experiments.png"), full_page=True)
        with page.expect_download() as info:
            download.click()
        text = open(info.value.path()).read()
    assert "## Browser experiment" in text and "Ticket minus control" in text
