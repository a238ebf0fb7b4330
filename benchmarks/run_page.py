"""How fast do the Run and Runs pages open, and how cheap is a live refresh?

Makes a real finished run (tiny LeNet-300-100 on digits, 1 epoch per round, both controls) with a
real worker in a temporary queue home, plus cancelled jobs up to --jobs in all, then:

1. renders the Run page with Streamlit's AppTest: the first render (reads all of rounds.jsonl)
   and later refreshes in the same session (read only appended bytes); target refresh < 200 ms;
2. serves the dashboard as `make run` does and opens it in headless Chromium (Debian's, through
   Playwright) and times the Run page until its first chart shows and until it is complete
   (five charts and the ticket download), two ways: warm, --loads times in one browser page
   after a warm-up (Plotly's bundle cached), and cold, --cold-loads times each in a new browser
   context (an empty cache: a person opening a shared link in a fresh browser); and the Runs
   page until its table shows (warm). Targets on an otherwise idle machine: first chart
   <= 1.5 s warm and <= 2 s cold, complete <= 3 s; Runs <= 2 s;
3. the cold load again over an emulated network (--link, default 40 Mbit/s with a 20 ms round
   trip: a person on broadband opening a shared link, where on this machine the browser and the
   server share memory), with the server's compression and without it, alternating.

    python benchmarks/run_page.py [--rounds 15] [--jobs 200] [--loads 5] [--cold-loads 3]
                                  [--refreshes 5] [--link 40:20] [--quick]

--quick: a 2-round run, 3 jobs, one load of each kind and one refresh: the same code path in
seconds, for tests/test_benchmarks.py; its numbers mean little.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

import _common  # benchmarks/_common.py: the command line they share
import _probe as probe  # benchmarks/_probe.py, shared with the browser tests
from jobs import queue
from lottery_engine.foundations import runfolder

ROOT = Path(__file__).resolve().parents[1]
JOB = """
run: {{name: {name}, seed: 1, device: cpu}}
data: {{source: bundled, name: digits, image_size: [8, 8], channels: 1, limit_total: 200}}
train: {{arch: lenet_300_100, epochs: 1, batch_size: 64}}
imp: {{prune_rate: 0.2, num_rounds: {rounds}, target_sparsity: 0.999,
      controls: [random_reinit, random_prune]}}
"""


def make_home(home: Path, rounds: int, jobs: int) -> str:
    job_id = queue.submit(JOB.format(name="fifteen", rounds=rounds), home)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jobs.cli", "worker", "--home", str(home),
                    "--device", "cpu", "--once"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    size = (home / job_id / runfolder.ROUNDS).stat().st_size
    print(f"made a real run of {len(runfolder.read_rounds(home / job_id))} rounds with two "
          f"controls in {time.perf_counter() - start:.0f} s (rounds.jsonl {size:,} bytes)")
    for i in range(jobs - 1):
        queue.cancel(queue.submit(JOB.format(name=f"other-{i}", rounds=2), home), home)
    return job_id


def app_refresh(home: Path, job_id: str, refreshes: int) -> None:
    os.environ["LOTTERY_HOME"] = str(home)
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120)
    at.switch_page("views/run.py")
    at.query_params["job"] = job_id
    start = time.perf_counter()
    at.run()
    first = time.perf_counter() - start
    assert not at.exception, at.exception
    times = []
    for _ in range(refreshes):
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
    offset, _ = at.session_state["_rounds"][str(home / job_id / runfolder.ROUNDS)]
    print(f"AppTest: first render (reads {offset:,} bytes) {1000 * first:.0f} ms; refresh "
          f"median of {refreshes} {1000 * statistics.median(times):.0f} ms, max "
          f"{1000 * max(times):.0f} ms (target < 200 ms)")


COMPRESSION = {"compressed": None, "uncompressed": {"Accept-Encoding": "identity"}}


def browser(home: Path, job_id: str, loads: int, cold_loads: int, jobs: int,
            link: tuple[float, float]) -> None:
    missing = probe.browser_missing()
    if missing:
        print(f"browser part skipped: {missing}")
        return
    from playwright.sync_api import sync_playwright

    with probe.served(home, home / "serve.log") as url, sync_playwright() as pw:
        chromium = probe.launch(pw)
        run_page = f"{url}/run?job={job_id}"
        # cold first, after one cold warm-up load that only warms the server (its first script
        # run); every cold load is a new browser context, with nothing of the others cached
        probe.cold_load(chromium, run_page, ".js-plotly-plot", probe.RUN_PAGE_COMPLETE)
        cold_times = [probe.cold_load(chromium, run_page, ".js-plotly-plot",
                                      probe.RUN_PAGE_COMPLETE) for _ in range(cold_loads)]
        # over an emulated network: the same cold load with the server's compression, then
        # with the browser refusing it (Accept-Encoding: identity), alternating
        linked = {way: [] for way in COMPRESSION}
        for _ in range(cold_loads):
            for way, headers in COMPRESSION.items():
                linked[way].append(probe.cold_load(chromium, run_page, ".js-plotly-plot",
                                                   probe.RUN_PAGE_COMPLETE, link=link,
                                                   headers=headers)[0])
        page = chromium.new_page(viewport={"width": 1400, "height": 1800})
        probe.timed_load(page, run_page, ".js-plotly-plot", probe.RUN_PAGE_COMPLETE)  # warm-up
        run_times = [probe.timed_load(page, run_page, ".js-plotly-plot", probe.RUN_PAGE_COMPLETE)
                     for _ in range(loads)]
        runs_times = [probe.timed_load(page, f"{url}/runs", "[data-testid=stDataFrame]", [])[0]
                      for _ in range(loads)]
        chromium.close()
    first = statistics.median(t[0] for t in run_times)
    done = statistics.median(t[1] for t in run_times)
    print(f"Chromium, Run page of the finished run, warm (one page, bundle cached), median of "
          f"{loads} loads: first chart {first:.2f} s (target <= 1.5 s), complete {done:.2f} s "
          f"(target <= 3 s)")
    cold_first = statistics.median(t[0] for t in cold_times)
    cold_done = statistics.median(t[1] for t in cold_times)
    print(f"Chromium, Run page of the finished run, cold (a new browser context each), median "
          f"of {cold_loads} loads: first chart {cold_first:.2f} s (target <= 2 s), complete "
          f"{cold_done:.2f} s (target <= 3 s)")
    over = {way: statistics.median(times) for way, times in linked.items()}
    print(f"Chromium, Run page cold over an emulated {link[0]:g} Mbit/s link with a "
          f"{link[1]:g} ms round trip, median of {cold_loads} alternating loads: first chart "
          f"{over['compressed']:.2f} s compressed, {over['uncompressed']:.2f} s uncompressed "
          f"({over['uncompressed'] / over['compressed']:.2f}x)")
    print(f"Chromium, Runs page with {jobs} jobs, median of {loads} loads: table shown "
          f"{statistics.median(runs_times):.2f} s (target <= 2 s)")


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--cold-loads", type=int, default=3)
    parser.add_argument("--refreshes", type=int, default=5)
    parser.add_argument("--link", default="40:20", help="MBIT_PER_S:ROUND_TRIP_MS of the "
                        "emulated network for the compressed/uncompressed cold loads")
    args = _common.parse(parser, rounds=2, jobs=3, loads=1, cold_loads=1, refreshes=1)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        job_id = make_home(home, args.rounds, args.jobs)
        app_refresh(home, job_id, args.refreshes)
        browser(home, job_id, args.loads, args.cold_loads, args.jobs,
                tuple(float(part) for part in args.link.split(":")))


if __name__ == "__main__":
    main()
