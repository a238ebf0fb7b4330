"""Charts in a real browser: a zoom survives the end of a live run, and charts follow a dark
theme. Same machinery as test_browser.py (benchmarks/_probe.py's server, Debian's Chromium)."""

from __future__ import annotations

import re

import pytest

from benchmarks import _probe as probe
from jobs import queue

from tests.jobs_helpers import tiny_yaml, wait_state
from tests.app.test_browser import DOCS, OUTPUT, _cell, _page, _zoom, browser  # noqa: F401 (a fixture)


def test_a_zoom_survives_the_redraw_when_a_live_run_ends(browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    home = tmp_path / "home"
    job_id = queue.submit(tiny_yaml("ending", rounds=6, epochs=4), home)
    with probe.served(home, tmp_path / "serve.log") as url:
        page = _page(browser)
        page.goto(f"{url}/run?job={job_id}")
        metric = page.get_by_test_id("stMetric").filter(has_text="Pruning rounds done")
        expect(metric).to_contain_text(re.compile(r"[1-4] / 6"), timeout=240_000)
        plot = page.locator(".js-plotly-plot").first
        zoomed = _zoom(page, plot)
        assert queue.get(job_id, home)["state"] == queue.RUNNING, "zoomed too late to test"
        assert wait_state(home, job_id)["state"] == queue.DONE
        # the page redraws once when the job ends (the downloads come with it)
        expect(page.get_by_role("button", name="Download the winning ticket (.zip)")) \
            .to_be_visible(timeout=60_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(OUTPUT / "zoom_after_end.png"))
        plot = page.locator(".js-plotly-plot").first
        assert plot.evaluate("gd => gd.data[0].x.length") == 7  # every round is drawn
        assert plot.evaluate("gd => gd.layout.xaxis.autorange") is False
        assert plot.evaluate("gd => gd.layout.xaxis.range") == pytest.approx(zoomed)


# the colour a user sees behind a chart: the first element's, from the chart up, that has one
SEEN_BACKGROUND = """gd => {
  for (let node = gd.querySelector('.main-svg'); node; node = node.parentElement) {
    const colour = getComputedStyle(node).backgroundColor;
    if (colour !== 'rgba(0, 0, 0, 0)' && colour !== 'transparent') return colour;
  }
  return 'rgb(255, 255, 255)';
}"""


def _brightness(css_colour: str) -> float:
    """0 (black) to 1 (white): the mean of a CSS rgb()/rgba() colour's channels."""
    red, green, blue = (int(c) for c in re.findall(r"\d+", css_colour)[:3])
    return (red + green + blue) / (3 * 255)


def test_charts_follow_a_dark_theme(browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    home = tmp_path / "home"
    job_id = queue.submit(tiny_yaml("dark", rounds=1), home)
    with probe.served(home, tmp_path / "serve.log") as url:
        assert wait_state(home, job_id)["state"] == queue.DONE
        context = browser.new_context(color_scheme="dark", viewport={"width": 1400,
                                                                    "height": 1600})
        page = context.new_page()
        page.goto(f"{url}/run?job={job_id}")
        expect(page.get_by_role("heading", name="dark · done")).to_be_visible(timeout=60_000)
        plots = page.locator(".js-plotly-plot")
        expect(plots.nth(4)).to_be_visible()
        page.wait_for_timeout(500)
        page.screenshot(path=str(DOCS / "run_dark.png"))
        backgrounds = [plots.nth(i).evaluate(SEEN_BACKGROUND) for i in range(plots.count())]
        assert all(_brightness(colour) < 0.2 for colour in backgrounds), backgrounds
        text = plots.first.evaluate("gd => getComputedStyle(gd.querySelector('.gtitle')).fill")
        assert _brightness(text) > 0.7, text  # titles in light text
        context.close()


def test_brushing_parallel_coordinates_filters_the_table(browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    from tests.report.test_charts import _finished

    home = tmp_path / "home"
    for rate in (0.2, 0.4):  # two finished runs (Compare shows the newest two), no training
        job_id = queue.submit(tiny_yaml(f"rate {rate}").replace("prune_rate: 0.2",
                                                               f"prune_rate: {rate}"), home)
        _finished(home / job_id, rate, accuracy=0.9 - rate / 4)
        queue.update(job_id, home, state=queue.DONE)
    with probe.served(home, tmp_path / "serve.log") as url:
        page = _page(browser)
        page.goto(f"{url}/compare")
        parallel = page.locator(".js-plotly-plot").nth(1)
        expect(parallel.locator(".axis-brush")).to_have_count(4)  # prune rate, 3 outcomes
        table = page.get_by_test_id("stDataFrame").last
        expect(_cell(table, "rate 0.")).to_have_count(2)
        axis = parallel.locator(".y-axis", has_text="ticket sparsity").locator(".axis-brush")
        box = axis.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.3)
        page.mouse.down()  # from a third of the way down to past the top (40% sparse)
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] - 20, steps=8)
        page.mouse.up()
        expect(page.get_by_text("1 of 2 runs inside the brushed ranges")).to_be_visible()
        expect(_cell(table, "rate 0.")).to_have_count(1)
        expect(_cell(table, "rate 0.4")).to_have_count(1)
        page.screenshot(path=str(DOCS / "parallel_brushed.png"))
