"""`make run`: one worker in the background and the dashboard on 127.0.0.1; the worker stops with it."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "streamlit_app.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default=os.environ.get("LOTTERY_HOME", "runs"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8501")
    parser.add_argument("--device", default="auto", help="the worker's device")
    args = parser.parse_args(argv)
    env = {**os.environ, "LOTTERY_HOME": str(Path(args.home).resolve()),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    worker = subprocess.Popen([sys.executable, "-m", "lottery_engine.cli", "worker", "--home",
                               env["LOTTERY_HOME"], "--device", args.device], env=env)
    try:
        print(f"Lottery Lab: http://{args.host}:{args.port}  (worker pid {worker.pid}, "
              f"home {env['LOTTERY_HOME']})", flush=True)
        return subprocess.run([sys.executable, "-m", "streamlit", "run", str(APP),
                               "--server.address", args.host, "--server.port", str(args.port),
                               "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                              env=env).returncode
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


if __name__ == "__main__":
    sys.exit(main())
