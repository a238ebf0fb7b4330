"""A whole run: IMP rounds, the winning ticket, the reports, and the summary that marks it finished."""

from __future__ import annotations

import logging
from pathlib import Path

from .config.load import Config
from .foundations import runfolder
from .foundations.events import IMP, Listener, RunCancelled
from .lottery import imp, ticket
from .report import page as report

log = logging.getLogger("lottery")


def _log_to(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / runfolder.LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("lottery").addHandler(handler)
    logging.getLogger("lottery").setLevel(logging.INFO)
    return handler


class _LogRounds(Listener):
    def __init__(self, inner: Listener):
        self.inner, self.series = inner, IMP

    def round_started(self, round_index, series, sparsity):
        self.series = series
        log.info("round %d (%s) starts at sparsity %.2f%%", round_index, series, 100 * sparsity)
        self.inner.round_started(round_index, series, sparsity)

    def batch_finished(self, round_index, epoch, batch, batches):
        self.inner.batch_finished(round_index, epoch, batch, batches)

    def epoch_finished(self, round_index, epoch, logs):
        log.info("round %d (%s) epoch %d: %s", round_index, self.series, epoch + 1,
                 ", ".join(f"{k}={v:.4f}" for k, v in logs.items()))
        self.inner.epoch_finished(round_index, epoch, logs)

    def phase_started(self, phase):
        self.inner.phase_started(phase)

    def work_progress(self, task, done, total):
        step = max(1, total // 10)
        if done == total or done // step != (done - 1) // step:
            log.info("%s: %d/%d", task, done, total)
        self.inner.work_progress(task, done, total)

    def round_finished(self, record):
        log.info("round %d (%s) done: sparsity %.2f%%, val accuracy %.4f", record.round,
                 record.series, 100 * record.global_sparsity, record.val_accuracy)
        self.inner.round_finished(record)


def execute(cfg: Config, run_dir: Path, listener: Listener | None = None) -> dict:
    """Run or resume everything for `cfg` in `run_dir`; returns the summary written last."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / runfolder.FINISHED).unlink(missing_ok=True)
    handler = _log_to(run_dir)
    try:
        records = imp.run(cfg, run_dir, _LogRounds(listener or Listener()))
        winner = ticket.make(run_dir) if any(r.round >= 1 for r in records) else None
        if winner:
            log.info("winning ticket: round %d, val accuracy %.4f reproduced from %s",
                     winner["round"], winner["reloaded_val_accuracy"], runfolder.TICKET_MODEL)
        report.write(run_dir, cfg.report.html, cfg.report.markdown)
        summary = {"name": cfg.run.name, "rounds": [r.to_json() for r in records],
                   "ticket": winner,
                   "series": {name: [r.to_json() for r in recs]
                              for name, recs in runfolder.series(run_dir).items() if name != IMP}}
        runfolder.write_json(run_dir / runfolder.FINISHED, summary)
        return summary
    except RunCancelled:
        log.info("run cancelled; finished rounds are kept")
        raise
    except Exception:
        log.exception("run failed")
        raise
    finally:
        logging.getLogger("lottery").removeHandler(handler)
        handler.close()
