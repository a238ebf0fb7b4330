"""`make run`: one worker in the background and the dashboard on 127.0.0.1. A worker that dies
is restarted (and said so); both stop together."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

APP = Path(__file__).resolve().parent / "asgi.py"  # streamlit_app.py, bundles precompressed
RESTART_DELAY = 2.0


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default=os.environ.get("LOTTERY_HOME", "runs"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8501")
    parser.add_argument("--device", default="auto", help="the worker's device")
    args = parser.parse_args(argv)
    env = {**os.environ, "LOTTERY_HOME": str(Path(args.home).resolve()),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    for stop_signal in (signal.SIGTERM, signal.SIGINT):  # Ctrl-C stops both, no traceback
        signal.signal(stop_signal, lambda *_: sys.exit(0))
    worker_cmd = [sys.executable, "-m", "jobs.cli", "worker", "--home",
                  env["LOTTERY_HOME"], "--device", args.device]
    worker = subprocess.Popen(worker_cmd, env=env)
    app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP),
                            "--server.address", args.host, "--server.port", str(args.port),
                            "--server.headless", "true", "--browser.gatherUsageStats", "false",
                            "--client.toolbarMode", "minimal",
                            "--server.enableStaticServing", "true"], env=env)
    print(f"Lottery Lab: http://{args.host}:{args.port}  (worker pid {worker.pid}, "
          f"home {env['LOTTERY_HOME']})", flush=True)
    try:
        while app.poll() is None:  # a worker that dies is restarted while the dashboard runs
            if worker.poll() is not None:
                print(f"worker pid {worker.pid} exited with code {worker.returncode}; "
                      f"restarting it in {RESTART_DELAY:.0f} s", flush=True)
                time.sleep(RESTART_DELAY)
                worker = subprocess.Popen(worker_cmd, env=env)
                print(f"worker restarted: pid {worker.pid}", flush=True)
            time.sleep(0.5)
        return app.returncode
    finally:
        _stop(worker)
        _stop(app)


if __name__ == "__main__":
    sys.exit(main())
