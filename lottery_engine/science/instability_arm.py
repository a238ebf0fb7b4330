"""An experiment arm's `instability:` setting (issue 31): after each of the arm's runs, the
process that trained it (a worker's child, or `--local`) analyses the run as `lottery instability`
does, into the run's own instability.jsonl, and the write-up reads it (instability_section.py).

Why after the run, in the same job: the queue keeps one job per (arm, seed), the experiment ends
when its jobs end, and a resumed job finds its run complete and the analysis going on after the
last line it wrote (instability.py skips finished (r, k, pair) lines). The setting is checked when
the experiment is read and against each arm's config before anything trains: a round the arm never
reaches would otherwise fail its jobs after hours of training. A rewind step past round 0's T is
refused by the analysis itself, since T needs the run's training split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config.load import Config, ConfigError, did_you_mean
from ..foundations.events import Listener
from ..lottery.instability_plan import Request

KEYS = ("rounds", "rewind", "copies", "points")  # the setting's keys, as the YAML writes them
EXAMPLE = "{rounds: [0, 7], rewind: [0, 100], copies: 2, points: 31}"


def _whole(value: Any, least: int) -> bool:
    """An int YAML wrote as one (true and 1.0 are not), at least `least`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _steps(raw: dict, key: str, where: str) -> tuple[int, ...]:
    """A non-empty list of distinct whole numbers >= 0, read strictly (see seed_list)."""
    value = raw.get(key)
    if not isinstance(value, list) or not value or not all(_whole(v, 0) for v in value):
        raise ConfigError(f"{where}.{key}: {value!r} is not a non-empty list of whole numbers "
                          f">= 0; write e.g. {key}: [0, 7].")
    if len(set(value)) < len(value):
        raise ConfigError(f"{where}.{key}: {value!r} lists a value twice; list each once.")
    return tuple(value)


def parse(raw: Any, where: str) -> Request:
    """The setting as a Request: `rounds` (round numbers: their masks; 0 the dense network) and
    `rewind` (steps k of round 0) required, `copies` (default 2) and `points` (default 31) at
    least 2; anything else one line naming `<where>.<key>`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, e.g. {EXAMPLE}.")
    for key in raw:
        if key not in KEYS:
            raise ConfigError(f"{where}.{key}: unknown key.{did_you_mean(str(key), list(KEYS))} "
                              f"It has {', '.join(KEYS)}, e.g. {EXAMPLE}.")
    for key, default in (("copies", 2), ("points", 31)):
        if not _whole(raw.get(key, default), 2):
            raise ConfigError(f"{where}.{key}: {raw[key]!r} is not a whole number >= 2 (a "
                              f"barrier needs two copies and the line both its ends).")
    return Request(_steps(raw, "rounds", where), _steps(raw, "rewind", where),
                   raw.get("copies", 2), raw.get("points", 31))


def as_mapping(request: Request) -> dict[str, Any]:
    """The setting as the YAML writes it (and a queued job's status keeps it): `parse` reads
    it back."""
    return {"rounds": list(request.rounds), "rewind": list(request.rewinds),
            "copies": request.copies, "points": request.points}


def check(request: Request, cfg: Config, where: str) -> None:
    """Refuse a round the arm's config never trains (past imp.num_rounds)."""
    late = [r for r in request.rounds if r > cfg.imp.num_rounds]
    if late:
        raise ConfigError(f"{where}.rounds: round {late[0]} is past the arm's imp.num_rounds = "
                          f"{cfg.imp.num_rounds}; choose rounds from 0 to {cfg.imp.num_rounds}.")


def run_share(cfg: Config, request: Request) -> float:
    """The IMP run's share of an arm's job, for its progress: counted in trainings of a round,
    the run's 1 + num_rounds × (1 + controls) against the analysis' rounds × rewind steps ×
    copies (each copy trains steps k..T of a round; k is counted as nothing)."""
    run = 1 + cfg.imp.num_rounds * (1 + len(cfg.imp.controls))
    return run / (run + len(request.rounds) * len(request.rewinds) * request.copies)


def after_run(folder: Path, request: Request, listener: Listener | None = None) -> list[dict]:
    """Analyse (or go on analysing) a finished run; rewrite its report with the figures when a
    line was added. Returns the lines written now."""
    from ..lottery import instability
    from ..report import page as report

    written = instability.analyse(Path(folder), request, listener)
    if written:
        report.write(Path(folder))
    return written
