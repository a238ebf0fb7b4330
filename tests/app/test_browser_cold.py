"""A first visit, as a person opening a shared link in a fresh browser sees it: the Run page's
charts are drawn by the app's partial Plotly bundle (scatter, bar, heatmap: built from plotly.js's
sources by app/vendor/plotly.js-lab-dist-min/build.mjs), asked for before the page's data work,
served compressed once and cacheable (app.bundles), and only the Compare page, whose
parallel-coordinates chart needs a trace type the partial bundle lacks, loads the full one. How
fast is benchmarks/run_page.py's business; these check what is served and that the charts still
draw.

The browser test needs Debian's chromium and the playwright package (as tests/app/test_browser.py).
"""

from __future__ import annotations

import asyncio
import gzip
import json

import plotly.graph_objects as go

from app import bundles, charts
from benchmarks import _probe as probe
from jobs import queue
from lottery_engine.report import figures as report

from tests.jobs_helpers import tiny_yaml, wait_state
from tests.app.test_browser import browser  # noqa: F401 (a fixture)


def test_the_partial_bundle_is_plotlys_own_of_the_packages_version():
    package = json.loads((bundles.PARTIAL_DIR / "package.json").read_text())
    assert package["name"] == "plotly.js-lab-dist-min" and package["license"] == "MIT"
    assert "MIT" in (bundles.PARTIAL_DIR / "LICENSE").read_text()
    assert (bundles.PARTIAL_DIR / "build.mjs").is_file()  # how it was built, to build it again
    # the figures' JSON is written by the plotly package for its own plotly.js version, and the
    # bundle is built from that version's sources
    version = bundles.bundle_version(bundles.PARTIAL_JS)
    assert version == bundles.bundle_version(bundles.PLOTLY_JS)
    assert package["version"] == version == package["devDependencies"]["plotly.js"]
    assert bundles.PARTIAL_JS.read_text()[:200].startswith(
        f"/**\n* plotly.js (lab - minified) v{version}\n")  # plotly.js's licence header
    assert bundles.PARTIAL_JS.stat().st_size < 1.1 * 2**20 < bundles.PLOTLY_JS.stat().st_size


def _get(path: str, headers: list[tuple[bytes, bytes]],
         middleware: bundles.PrecompressedStatic | None = None) -> tuple[list[dict], list[str]]:
    """What PrecompressedStatic sends for one GET, and the paths it passed on to Streamlit."""
    passed, sent = [], []

    async def streamlit(scope, receive, send):
        passed.append(scope["path"])

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    middleware = middleware or bundles.PrecompressedStatic(None)
    middleware.app = streamlit
    asyncio.run(middleware(scope, None, send))
    return sent, passed


def test_bundles_are_served_compressed_once_cacheable_and_revalidated():
    gzip_ok = [(b"accept-encoding", b"gzip, deflate, br")]
    sent, passed = _get(f"/base/app/static/{bundles.PARTIAL_NAME}", gzip_ok)
    headers = dict(sent[0]["headers"])
    assert not passed and sent[0]["status"] == 200 and headers[b"content-encoding"] == b"gzip"
    assert b"immutable" in headers[b"cache-control"]
    assert gzip.decompress(sent[1]["body"]) == bundles.PARTIAL_JS.read_bytes()
    sent, passed = _get(f"/app/static/{bundles.PARTIAL_NAME}",
                        [*gzip_ok, (b"if-none-match", headers[b"etag"])])
    assert sent[0]["status"] == 304 and sent[1]["body"] == b""
    # anything else is Streamlit's: other files, and a client that takes no gzip
    for path, accepts in (("/app/static/other.js", gzip_ok), ("/run", gzip_ok),
                          (f"/app/static/{bundles.FULL_NAME}", [])):
        assert _get(path, accepts) == ([], [path])


def test_streamlits_own_scripts_are_served_compressed_once_and_cacheable():
    gzip_ok = [(b"accept-encoding", b"gzip")]
    script = max((bundles.STREAMLIT_STATIC / "static" / "js").glob("index.*.js"),
                 key=lambda p: p.stat().st_size)  # the frontend's entry script
    middleware = bundles.PrecompressedStatic(None)
    bodies = []
    for _ in range(2):
        sent, passed = _get(f"/base/static/js/{script.name}", gzip_ok, middleware)
        headers = dict(sent[0]["headers"])
        assert not passed and headers[b"content-encoding"] == b"gzip"
        assert headers[b"content-type"].startswith(b"text/javascript")
        assert b"immutable" in headers[b"cache-control"]
        assert gzip.decompress(sent[1]["body"]) == script.read_bytes()
        bodies.append(sent[1]["body"])
    assert bodies[0] is bodies[1]  # compressed at the first request only, then kept
    for path, accepts in (("/static/js/missing.abc.js", gzip_ok),
                          ("/static/js/../../config.toml", gzip_ok),
                          (f"/static/js/{script.name}", [])):
        assert _get(path, accepts) == ([], [path])


def test_a_chart_pages_html_fetches_the_partial_bundle_at_once():
    page = b"<html><head><title>x</title></head><body></body></html>"
    sent, asked = [], []

    async def streamlit(scope, receive, send):
        asked.append(dict(scope["headers"]))
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/html"), (b"content-length", str(len(page)).encode())]})
        await send({"type": "http.response.body", "body": page})

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/base/run",
             "headers": [(b"accept-encoding", b"gzip")]}
    asyncio.run(bundles.EarlyBundleInPages(streamlit)(scope, None, send))
    body = sent[1]["body"]
    assert bundles.EARLY.encode() + b"</head>" in body and b"accept-encoding" not in asked[0]
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(body)).encode()


def test_the_chunks_a_first_chart_waits_for_are_in_this_streamlit():
    """A Streamlit release that renames a chunk drops its early fetch without an error (the
    page only loads slower): this says which name is gone."""
    files = bundles.chunk_files(bundles.EARLY_CHUNKS)
    for name in bundles.EARLY_CHUNKS:
        assert any(file.startswith(f"{name}.") for file in files), name
    assert f'href="./static/js/{files[0]}"' in bundles.EARLY


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
        served = {}  # the Plotly bundles served, by file name: their response headers
        context.on("response", lambda r: "/app/static/plotly" in r.url and served.setdefault(
            r.url.rsplit("/", 1)[1], r.all_headers()))
        page = context.new_page()
        page.set_default_timeout(60_000)

        first, complete = probe.timed_load(page, f"{url}/run?job={job}", ".js-plotly-plot",
                                           probe.RUN_PAGE_COMPLETE)
        print(f"cold Run page: first chart {first:.2f} s, complete {complete:.2f} s")
        assert list(served) == [bundles.PARTIAL_NAME]  # the full bundle is not loaded at all
        headers = served[bundles.PARTIAL_NAME]
        assert headers.get("content-encoding") == "gzip", headers
        assert "immutable" in headers.get("cache-control", ""), headers  # the name has the version
        assert headers.get("etag"), headers
        # asked for by the page's first element, before its charts are mounted
        assert page.locator(".lab-preload").count() == 1
        # the chart's and st.html's frontend code came with the page's HTML (its <link>s), not
        # once their elements arrived over the websocket (an element's code is asked for after
        # the page's own scripts ran: at 1.6 s for st.metric's, here at 0.03 s)
        started = dict(page.evaluate("performance.getEntriesByType('resource').map(e => "
                                     "[e.name.split('/').pop(), e.startTime])"))
        parsed = page.evaluate("performance.getEntriesByType('navigation')[0]"
                               ".domContentLoadedEventStart")
        for file in bundles.chunk_files(bundles.EARLY_CHUNKS):
            assert started[file] < parsed, (file, started[file], parsed)
        plots = page.locator(".js-plotly-plot")
        assert plots.count() == 5
        types = plots.evaluate_all("plots => plots.map(gd => gd.data[0].type)")
        assert {"scatter", "heatmap", "bar"} <= set(types), types
        # the bundle has exactly the trace types app.charts counts on
        built = page.evaluate("Object.keys(Plotly.PlotSchema.get().traces)")
        assert sorted(built) == sorted(charts.PARTIAL_TRACES), built

        page.goto(f"{url}/compare")  # the same tab: the partial bundle is already there
        parallel = page.locator(".js-plotly-plot", has=page.locator(".parcoords"))
        expect(parallel).to_be_visible(timeout=60_000)
        assert parallel.evaluate("gd => gd.data[0].type") == "parcoords"
        assert bundles.FULL_NAME in served
        assert served[bundles.FULL_NAME].get("content-encoding") == "gzip"
        expect(page.locator(".js-plotly-plot")).to_have_count(2)
        context.close()
