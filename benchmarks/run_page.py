"""How long does a live refresh of the run page take on a long run?

Makes a real 50-round run (tiny LeNet on digits, 1 epoch per round) in a temporary queue home with a
real worker, then renders the run page with Streamlit's AppTest: the first render (reads all of
rounds.jsonl) and later refreshes in the same session (read only appended bytes). Prints app time
per render and the bytes each refresh read. Target: a 50-round run redraws in under 200 ms.

    python benchmarks/run_page.py [--rounds 50] [--refreshes 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from jobs import queue
from lottery_engine import runfolder

ROOT = Path(__file__).resolve().parents[1]
JOB = """
run: {{name: fifty, seed: 1, device: cpu}}
data: {{source: bundled, name: digits, image_size: [8, 8], channels: 1, limit_total: 200}}
train: {{arch: lenet_300_100, epochs: 1, batch_size: 64}}
imp: {{prune_rate: 0.1, num_rounds: {rounds}, target_sparsity: 0.999}}
report: {{html: false}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--refreshes", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        job_id = queue.submit(JOB.format(rounds=args.rounds), home)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lottery_engine.cli", "worker", "--home", tmp,
                        "--device", "cpu", "--once"], cwd=ROOT, check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        records = runfolder.read_rounds(home / job_id)
        size = (home / job_id / runfolder.ROUNDS).stat().st_size
        print(f"made a real run of {len(records)} rounds in {time.perf_counter() - start:.0f} s "
              f"(rounds.jsonl {size:,} bytes)")

        os.environ["LOTTERY_HOME"] = tmp
        at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120)
        at.switch_page("views/run.py")
        at.query_params["job"] = job_id
        start = time.perf_counter()
        at.run()
        first = time.perf_counter() - start
        assert not at.exception, at.exception
        refresh = []
        for _ in range(args.refreshes):
            start = time.perf_counter()
            at.run()
            refresh.append(time.perf_counter() - start)
        offset, cached = at.session_state["_rounds"][(str(home / job_id / runfolder.ROUNDS),
                                                      "imp")]
        print(f"first render (reads {offset:,} bytes): {1000 * first:.0f} ms")
        print(f"refresh (reads only appended bytes: 0 here), median of {args.refreshes}: "
              f"{1000 * statistics.median(refresh):.0f} ms, max {1000 * max(refresh):.0f} ms "
              f"(target < 200 ms); rounds drawn: {len(cached)}")


if __name__ == "__main__":
    main()
