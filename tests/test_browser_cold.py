"""A first visit, as a person opening a shared link in a fresh browser sees it: the Run page's
charts are drawn by Plotly's partial (cartesian) bundle, served compressed and cacheable, and only
the Compare page, whose parallel-coordinates chart needs a trace type the partial bundle lacks,
loads the full one. How fast is benchmarks/run_page.py's business; these check what is served
and that the charts still draw.

The browser test needs Debian's chromium and the playwright package (as tests/test_browser.py).
"""

from __future__ import annotations

import json

import plotly.graph_objects as go

from app import charts, probe
from jobs import queue
from lottery_engine import report

from .jobs_helpers import tiny_yaml, wait_state
from .test_browser import browser  # noqa: F401 (a fixture)


def test_the_partial_bundle_is_plotlys_own_of_the_packages_version():
    package = json.loads((charts.PARTIAL_DIR / "package.json").read_text())
    assert package["name"] == "plotly.js-cartesian-dist-min" and package["license"] == "MIT"
    assert "MIT" in (charts.PARTIAL_DIR / "LICENSE").read_text()
    # the figures' JSON is written by the plotly package for its own plotly.js version
    assert charts.bundle_version(charts.PARTIAL_JS) == charts.bundle_version(charts.PLOTLY_JS)
    assert package["version"] == charts.bundle_version(charts.PARTIAL_JS)
    assert charts.PARTIAL_JS.stat().st_size < 1.5 * 2**20 < charts.PLOTLY_JS.stat().st_size


def test_only_parallel_coordinates_need_the_full_bundle():
    records = [{"round": r, "sparsity": 0.2 * r, "val_accuracy": 0.9, "test_accuracy": 0.9,
                "remaining_weights": 100 - 20 * r, "flops": 1000 - 100 * r,
                "layer_sparsity": {"dense": 0.2 * r}} for r in range(3)]
    assert not charts.needs_full_bundle(report.layer_heatmap(records))
    assert not charts.needs_full_bundle(report.flops_per_round(records))
    for trace in ("scatter", "bar", "heatmap"):
        assert trace in charts.PARTIAL_TRACES
    assert charts.needs_full_bundle(go.Figure(go.Parcoords(dimensions=[{"values": [1, 2]}])))


def test_a_first_visit_draws_with_the_partial_bundle_in_a_real_browser(browser, tmp_path):
    from playwright.sync_api import expect

    home = tmp_path / "home"
    job = queue.submit(tiny_yaml("cold"), home)
    with probe.served(home, tmp_path / "serve.log") as url:
        assert wait_state(home, job, timeout=400)["state"] == "done"
        context = browser.new_context(viewport={"width": 1400, "height": 1800})  # empty cache
        bundles = {}  # the Plotly bundles served, by file name: their response headers
        context.on("response", lambda r: "/app/static/plotly" in r.url and bundles.setdefault(
            r.url.rsplit("/", 1)[1], r.all_headers()))
        page = context.new_page()
        page.set_default_timeout(60_000)

        first, complete = probe.timed_load(page, f"{url}/run?job={job}", ".js-plotly-plot",
                                           probe.RUN_PAGE_COMPLETE)
        print(f"cold Run page: first chart {first:.2f} s, complete {complete:.2f} s")
        assert list(bundles) == [charts.PARTIAL_NAME]  # the full bundle is not loaded at all
        headers = bundles[charts.PARTIAL_NAME]
        assert headers.get("content-encoding") == "gzip", headers
        assert headers.get("etag") and headers.get("last-modified"), headers  # revalidated
        plots = page.locator(".js-plotly-plot")
        assert plots.count() == 5
        types = plots.evaluate_all("plots => plots.map(gd => gd.data[0].type)")
        assert {"scatter", "heatmap", "bar"} <= set(types), types

        page.goto(f"{url}/compare")  # the same tab: the partial bundle is already there
        parallel = page.locator(".js-plotly-plot", has=page.locator(".parcoords"))
        expect(parallel).to_be_visible(timeout=60_000)
        assert parallel.evaluate("gd => gd.data[0].type") == "parcoords"
        assert charts.FULL_NAME in bundles
        assert bundles[charts.FULL_NAME].get("content-encoding") == "gzip"
        expect(page.locator(".js-plotly-plot")).to_have_count(2)
        context.close()
