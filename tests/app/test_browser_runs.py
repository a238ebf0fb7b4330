"""The Runs and Run pages in a real browser: a selection that stays with its run while jobs
arrive, a link to a run that is gone, and the Run page's charts at phone width.

One dashboard serves the module's tests; needs what tests/app/test_browser.py needs."""

from __future__ import annotations

import pytest

from benchmarks import _probe as probe
from jobs import queue

from tests.jobs_helpers import tiny_yaml, wait_state
from tests.app.test_browser import _cell, _click_grid, _page, browser  # noqa: F401 (browser: a fixture)

PHONE = {"width": 400, "height": 900}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A home with a finished run and a cancelled one, served; yields (home, URL, run id).

    The finished run is LeNet on 28x28 digits pruned 40% a round for 4 rounds: its remaining
    weights fall from 61.7k to 8k, about a decade, which Plotly's own ticks label densely (8, 9,
    10k, 2, 3...): the labels that collided at phone width."""
    home = tmp_path_factory.mktemp("home")
    run = queue.submit(tiny_yaml("narrow", rounds=4).replace("[16, 16]", "[28, 28]")
                       .replace("prune_rate: 0.2", "prune_rate: 0.4"), home)
    queue.cancel(queue.submit(tiny_yaml("spare"), home), home)
    with probe.served(home, tmp_path_factory.mktemp("log") / "serve.log") as url:
        assert wait_state(home, run, timeout=300)["state"] == queue.DONE
        yield home, url, run


def _selected(grid):
    """The name cells of the rows whose selection box is ticked."""
    return grid.locator("tr[aria-selected=true] [aria-colindex='1']")


def test_a_selection_stays_with_its_run_as_jobs_arrive(browser, served):  # noqa: F811
    from playwright.sync_api import expect

    home, url, run = served
    page = _page(browser)
    page.goto(f"{url}/runs")
    grid = page.get_by_test_id("stDataFrame")
    expect(_cell(grid, "narrow")).to_be_attached()
    _click_grid(page, grid, x=15, row=1)  # the selection box of the second row: narrow
    expect(page.get_by_role("button", name="Delete")).to_be_enabled()
    for name in ("arrival-1", "arrival-2"):  # two jobs arrive above it (and end at once)
        queue.cancel(queue.submit(tiny_yaml(name), home), home)
    expect(_cell(grid, "arrival-2")).to_be_attached()  # the table's refresh shows them
    expect(_selected(grid)).to_have_text(["narrow"])
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Delete 1 run(s) and their folders for good? "
                            f"narrow · {run[-6:]}")).to_be_visible()
    page.get_by_role("button", name="Keep them").click()


def test_a_link_to_a_run_that_is_gone_says_so(browser, served):  # noqa: F811
    from playwright.sync_api import expect

    _, url, run = served
    page = _page(browser)
    gone = "20000101-000000-abcdef"
    page.goto(f"{url}/run?job={gone}")
    expect(page.get_by_text(f"No run {gone} in this home")).to_be_visible()
    assert page.url.endswith(f"?job={gone}")  # left as it was, not pointed at another run
    page.get_by_role("link", name=f"narrow · {run[-6:]} · done").click()
    expect(page.get_by_role("heading", name="narrow · done")).to_be_visible()
    assert page.url.endswith(f"?job={run}")


def _overlaps(plot) -> list[tuple[str, str]]:
    """Neighbouring x tick labels of a Plotly chart whose boxes on the screen overlap."""
    boxes = plot.evaluate("""gd => Array.from(gd.querySelectorAll('.xaxislayer-above text'))
        .map(t => { const b = t.getBoundingClientRect(); return [t.textContent, b.left, b.right]; })
        .sort((a, b) => a[1] - b[1])""")
    return [(a[0], b[0]) for a, b in zip(boxes, boxes[1:]) if b[1] < a[2]]


def test_the_first_chart_has_no_colliding_tick_labels_on_a_phone(browser, served):  # noqa: F811
    from playwright.sync_api import expect

    _, url, run = served
    page = browser.new_page(viewport=PHONE)
    page.set_default_timeout(60_000)
    page.goto(f"{url}/run?job={run}")
    plot = page.locator(".js-plotly-plot").first
    expect(plot).to_be_visible()
    for axis in ("global sparsity (%)", "remaining prunable weights", "round (0 = dense)"):
        if axis != "global sparsity (%)":  # the first is chosen already
            page.get_by_role("radio", name=axis).click()
        expect(plot).to_contain_text(axis)  # drawn on that axis
        page.wait_for_timeout(500)  # the margins Plotly grows for the labels are a second pass
        assert _overlaps(plot) == [], axis
