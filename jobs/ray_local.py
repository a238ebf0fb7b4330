"""A Ray cluster of several nodes on this machine: for `make ray-local`, the tests and
benchmarks/ray_fanout.py. Each node is a `ray start` of its own (a raylet with its own CPUs), as on
separate machines; killing one node's raylet is what a lost machine looks like to Ray.

Nodes are started with --node-ip-address 127.0.0.1, which Ray 2.60 on Linux replaces by the
machine's own address (ray._private.services.resolve_ip_for_localhost); Ray's dashboard is bound
to 127.0.0.1.

    python -m jobs.ray_local [--nodes 2] [--home runs]   # cluster + a Ray-backed worker

`ray stop` (what `stop()` runs) stops every Ray process on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


def _ray_bin() -> str:
    return str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _ray(*args: str) -> None:
    done = subprocess.run([_ray_bin(), *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"ray {' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")


@dataclass
class LocalCluster:
    address: str
    temp_dir: Path

    def raylet_pids(self) -> dict[str, int]:
        """Node id -> raylet pid, for every node of this machine's Ray."""
        found = {}
        for proc in Path("/proc").iterdir():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"/raylet"):
                for arg in argv:
                    if arg.startswith(b"--node_id="):
                        found[arg.split(b"=")[1].decode()] = int(proc.name)
        return found

    def kill_node(self, node_id: str) -> None:
        """Kill a node's raylet outright: its tasks and worker processes die with it."""
        os.kill(self.raylet_pids()[node_id], signal.SIGKILL)

    def stop(self) -> None:
        """Stop Ray and remove its session files (logs, sockets) from the temp dir."""
        subprocess.run([_ray_bin(), "stop", "--force"], capture_output=True)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start(nodes: int = 2, cpus: int = 1, head_cpus: int = 0, dashboard: bool = False,
          object_store: int = 200_000_000) -> LocalCluster:
    """A head (with `head_cpus` CPUs, 0: it only coordinates) and `nodes` worker nodes of `cpus`
    CPUs each, all on 127.0.0.1. The temp dir is short because Ray's socket paths must be."""
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    port = _free_port()
    common = ["--node-ip-address", HOST, "--object-store-memory", str(object_store),
              "--disable-usage-stats"]
    _ray("start", "--head", "--port", str(port), "--num-cpus", str(head_cpus),
         "--temp-dir", str(temp), "--include-dashboard", str(dashboard).lower(),
         "--dashboard-host", HOST, *common)
    cluster = LocalCluster(f"{HOST}:{port}", temp)
    try:
        for _ in range(nodes):
            _ray("start", "--address", cluster.address, "--num-cpus", str(cpus), *common)
    except RuntimeError:
        cluster.stop()
        raise
    return cluster


def main() -> int:
    parser = argparse.ArgumentParser(description="A local Ray cluster and a Ray-backed worker.")
    parser.add_argument("--nodes", type=int, default=2, help="one-CPU nodes (default 2)")
    parser.add_argument("--home", default=None, help="queue home (default $LOTTERY_HOME/runs)")
    args = parser.parse_args()
    cluster = start(args.nodes - 1, head_cpus=1, dashboard=True)
    print(f"Ray cluster at {cluster.address} ({args.nodes} nodes of 1 CPU on {HOST}); Ray's "
          f"dashboard: http://{HOST}:8265. Ctrl-C stops the worker and the cluster.", flush=True)
    home = ["--home", args.home] if args.home else []
    try:
        return subprocess.call([sys.executable, "-m", "jobs.cli", "worker", "--ray",
                                cluster.address, "--max-jobs", str(args.nodes), *home])
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
