"""What an instability analysis of a run folder is asked to do, checked before anything trains,
and what of it the folder's instability.jsonl already holds.

Free of TensorFlow: the command line refuses a round that has not finished or a rewind step past
the end of training in one line, without loading a model; the analysis (instability.py) resumes
by skipping the (round, k, pair) lines already written.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from ..config.load import Config, load_run
from ..data.dataset import load_split
from ..foundations import runfolder
from ..foundations.events import IMP
from ..foundations.faults import UserError

# Copy c of every (round, k) draws its data order from the run's seed and c, away from the
# offsets of the controls' seeds (controls.py), so no copy replays the run's own order.
ORDER_SEED_OFFSET = 300_007


class InstabilityError(UserError, ValueError):
    """An analysis request the run folder cannot answer; the message names the option."""


@dataclass(frozen=True)
class Request:
    """Rounds r (their masks; 0 is the dense network), rewind steps k, copies trained from
    each (r, k), and points evaluated along each pair's line."""

    rounds: tuple[int, ...]
    rewinds: tuple[int, ...]
    copies: int = 2
    points: int = 31

    def pairs(self) -> list[tuple[int, int]]:
        return list(itertools.combinations(range(self.copies), 2))


def parse_steps(option: str, text: str) -> tuple[int, ...]:
    """`0,4,8` as (0, 4, 8), each once, in the order given; anything else one line naming the
    option."""
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        steps = ()
    if not steps or min(steps) < 0:
        raise InstabilityError(f"{option} {text}: not a comma-separated list of whole numbers "
                               f">= 0; write e.g. {option} 0,4,8.")
    return tuple(dict.fromkeys(steps))


def order_seed(seed: int, copy: int) -> int:
    """The seed of copy `copy`'s data order (training/round.py epoch_order): everything else
    about the copies of one (r, k) is the same."""
    return seed + ORDER_SEED_OFFSET + copy


def total_steps(cfg: Config, run_dir: Path) -> int:
    """T: the steps of a full round, from the run's training split and recipe."""
    examples = len(load_split(Path(run_dir) / runfolder.SPLIT).train)
    return cfg.train.epochs * -(-examples // cfg.train.batch_size)


def check(run_dir: Path, request: Request) -> Config:
    """The run's config, once every round of `request` has finished, every k is inside round
    0's training and copies and points make a line; otherwise one line naming the option."""
    run_dir = Path(run_dir)
    if not (run_dir / runfolder.SPLIT).is_file():
        raise InstabilityError(f"{run_dir}: not a run folder with finished rounds "
                               f"(no {runfolder.SPLIT}); run `lottery run` into it first.")
    finished = sorted(r.round for r in runfolder.read_rounds(run_dir) if r.series == IMP)
    for r in request.rounds:
        if r not in finished:
            shown = ", ".join(map(str, finished)) or "none"
            raise InstabilityError(f"--rounds {r}: round {r} of {run_dir} has not finished "
                                   f"(finished: {shown}); choose finished rounds.")
    cfg = load_run(run_dir)
    steps = total_steps(cfg, run_dir)
    for k in request.rewinds:
        if not 0 <= k < steps:
            raise InstabilityError(f"--rewind {k}: beyond the run's T = {steps} training steps "
                                   f"per round; choose steps from 0 to {steps - 1}.")
    if request.copies < 2:
        raise InstabilityError(f"--copies {request.copies}: a barrier needs two copies at least.")
    if request.points < 2:
        raise InstabilityError(f"--points {request.points}: the line needs both endpoints, "
                               f"2 points at least.")
    return cfg


def line_key(record: dict) -> tuple:
    """What identifies a line of instability.jsonl: a later analysis with the same key skips it."""
    return record["round"], record["rewind_step"], tuple(record["pair"]), record["points"]


def done(run_dir: Path) -> set[tuple]:
    """The keys of the complete lines already in the run's instability.jsonl."""
    path = Path(run_dir) / runfolder.INSTABILITY
    return {line_key(record) for record in runfolder.read_lines_from(path)[0]}

