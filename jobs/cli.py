"""The `lottery` command line: run IMP, rebuild a ticket or a report, and drive the job queue."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lottery_engine import preflight
from lottery_engine.config import architectures, load as config_lib
from lottery_engine.export import export_records
from lottery_engine.foundations import quiet_import, runfolder
from lottery_engine.lottery.progress import ProgressBar, bar


def _cmd_run(args: argparse.Namespace) -> int:
    cfg = preflight.load(args.config, args.set)
    out = Path(args.out) if args.out else runfolder.new_run_dir(runfolder.runs_home(cfg),
                                                                cfg.run.name)
    if runfolder.is_complete(out):
        raise config_lib.ConfigError(f"--out {out}: holds a finished run; choose another folder.")
    if out.exists() and not out.is_dir():
        raise config_lib.ConfigError(f"--out {out}: is a file; choose a folder.")
    quiet_import.tensorflow()  # only now: a config refused above is refused in 0.1 s, not 5
    from lottery_engine.lottery import runtime
    from lottery_engine import pipeline

    runtime.check_device(cfg.run.device)
    _check_user_model(cfg)
    print(f"run folder: {out}", flush=True)
    summary = pipeline.execute(cfg, out, ProgressBar(cfg))
    ticket = summary["ticket"]
    if ticket:
        print(f"winning ticket: round {ticket['round']}, sparsity "
              f"{100 * ticket['global_sparsity']:.1f}%, val accuracy "
              f"{ticket['reloaded_val_accuracy']:.4f} (reproduced from the saved model), "
              f"test accuracy {ticket['test_accuracy']:.4f}")
    return 0


def _cmd_ticket(args: argparse.Namespace) -> int:
    from lottery_engine.lottery import ticket

    summary = ticket.make(Path(args.run_dir))
    print(f"round {summary['round']}: val accuracy {summary['reloaded_val_accuracy']:.6f} "
          f"(logged {summary['logged_val_accuracy']:.6f}); dense {summary['dense_bytes']:,} B, "
          f"compressed {summary['compressed_bytes']:,} B")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    """Each format's file and record (exports.json), one summary line each; a format that
    fails is reported and the others still export."""
    from lottery_engine.export import exporter as export
    from lottery_engine.export import measure
    from lottery_engine.report import page as report

    measure.limit_threads(1)
    formats = export.FORMATS if args.format == "all" else (args.format,)
    records = export.export(Path(args.run_dir), formats, args.round, args.out,
                            force=args.force)
    report.write(Path(args.run_dir))  # its "Deploying the ticket" section
    for record in records:
        print(record["summary"])
    return 0 if all(r["status"] == "ok" for r in records) else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from lottery_engine.report import page as report

    run_dir = Path(args.run_dir)
    if not runfolder.read_rounds(run_dir):
        raise FileNotFoundError(f"{run_dir / runfolder.ROUNDS}: no finished rounds to report.")
    report.write(run_dir)
    print(f"wrote {run_dir / runfolder.REPORT_HTML} and {run_dir / runfolder.REPORT_MD}")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    if args.report:
        from jobs import experiments, queue

        quiet_import.tensorflow()  # the write-up's ship line exports a ticket
        path = experiments.write_up(queue.home(args.home), args.report,
                                    Path(args.results) if args.results else None)
        print(f"wrote {path} and {path.with_suffix('.png')}")
        return 0
    if not args.config:
        raise config_lib.ConfigError("lottery experiment: give --config FILE (or --report ID).")
    from lottery_engine.science import experiment

    exp = experiment.load(Path(args.config))
    quiet_import.tensorflow()  # only now: a refused experiment file is refused at once
    if args.local:
        return _experiment_here(exp, args)
    return _experiment_queued(exp, args)


def _experiment_here(exp, args: argparse.Namespace) -> int:
    """`--local`: every series in this process, one after another."""
    from lottery_engine.science import experiment, writeup

    exp.out = args.out or exp.out
    folders = experiment.execute(exp, args.set, ProgressBar(config_lib.Config()), args.seeds)
    results = Path(args.results or exp.results)
    timing = {label: [runfolder.read_json(f / "experiment_timing.json", {}).get("seconds", 0.0)
                      for f in by_seed.values()] for label, by_seed in folders.items()}
    writeup.write(exp.name, folders, results, notes=exp.notes, timing=timing,
                  wall=sum(map(sum, timing.values())),
                  source=f"lottery experiment --local --config {args.config}")
    print(f"wrote {results} and {results.with_suffix('.png')}")
    return 0


def _experiment_queued(exp, args: argparse.Namespace) -> int:
    """Submit one job per (arm, seed), follow them with one bar, then write the write-up."""
    from jobs import experiments, queue

    from lottery_engine.science import experiment

    root = queue.home(args.home)
    experiment_id = experiments.submit(exp, experiment.plan(exp, args.set, args.seeds), root)
    print(f"experiment {experiment_id}: {len(experiments.manifest(root, experiment_id)['jobs'])} "
          f"jobs queued in {root}", flush=True)
    workers = experiments.started_workers(args.workers, root, args.threads,
                                          experiments.folder(root, experiment_id))
    try:
        while True:
            jobs = experiments.statuses(root, experiment_id)
            done = sum(j["state"] in queue.FINISHED for j in jobs)
            fraction = experiments.fraction_done(jobs)
            sys.stderr.write(f"\r{bar(done, len(jobs))} jobs finished, "
                             f"{100 * fraction:.0f}% of the work ")
            sys.stderr.flush()
            if experiments.finished(jobs):
                break
            time.sleep(2.0)
    finally:
        experiments.stop_workers(workers)
    sys.stderr.write("\n")
    failed = [j for j in jobs if j["state"] != queue.DONE]
    for job in failed:
        print(f"job {job['id']} ({job['label']} seed {job['seed']}) {job['state']}"
              + (f": {job['error']}" if job.get("error") else ""))
    kept = experiments.write_up(root, experiment_id)  # the dashboard's copy
    results = experiments.write_up(root, experiment_id, Path(args.results or exp.results))
    print(f"wrote {results} and {results.with_suffix('.png')} (and {kept})")
    return 1 if failed else 0


def _cmd_hybrid(args: argparse.Namespace) -> int:
    from lottery_engine.science import hybrid
    from lottery_engine.lottery import runtime

    if not (args.config or args.run):
        raise config_lib.ConfigError("hybrid: pass --config FILE, or --run RUN_DIR.")
    run_dir = Path(args.run) if args.run else None
    if run_dir and not (run_dir / runfolder.SPLIT).is_file():
        raise config_lib.ConfigError(f"--run {run_dir}: not a run folder with finished rounds.")
    cfg = (preflight.load(args.config, args.set) if args.config
           else preflight.load_run(run_dir, overrides=args.set))
    out = Path(args.out) if args.out else (
        run_dir / runfolder.HYBRID if run_dir
        else runfolder.new_run_dir(runfolder.runs_home(cfg), f"hybrid-{cfg.run.name}"))
    runtime.setup_runtime(cfg.run.device)
    result = hybrid.run(cfg, out, run_dir, args.model, args.layer, args.trees)
    print(f"hybrid {result['layer']} + RandomForest: test accuracy {result['accuracy']:.4f}, "
          f"F1 {result['f1']:.4f}, {result['flops']:,} FLOPs to that layer -> "
          f"{out / runfolder.HYBRID_METRICS}")
    if run_dir:
        from lottery_engine.report import page as report

        report.write(run_dir)
    return 0


def _cmd_instability(args: argparse.Namespace) -> int:
    """The analysis of issue 31, its request refused in one line before TensorFlow loads."""
    from lottery_engine.lottery import instability_plan as plan

    run_dir = Path(args.run_dir)
    request = plan.Request(plan.parse_steps("--rounds", args.rounds),
                           plan.parse_steps("--rewind", args.rewind), args.copies, args.points)
    cfg = plan.check(run_dir, request)
    quiet_import.tensorflow()
    from lottery_engine.lottery import instability

    written = instability.analyse(run_dir, request, ProgressBar(cfg))
    for line in written:
        print(f"round {line['round']} (sparsity {100 * line['sparsity']:.1f}%) "
              f"k={line['rewind_step']} copies {line['pair'][0]}-{line['pair'][1]}: test instability "
              f"{100 * line['test_instability']:.2f} points")
    from lottery_engine.report import page as report

    report.write(run_dir)  # its instability figures
    print(f"{len(written)} new lines in {run_dir / runfolder.INSTABILITY}; figures in "
          f"{run_dir / runfolder.REPORT_HTML}")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    if args.ray:
        if args.once or args.device != "auto":
            raise config_lib.ConfigError("--ray: --once and --device are for local workers; on "
                                         "a cluster each job's run.device says what it asks "
                                         "Ray for.")
        from jobs import ray_worker

        return ray_worker.main(args.home, args.ray, args.max_jobs, args.lease, args.threads)
    from jobs import worker

    return worker.main(args.home, args.device, args.once, args.lease, args.threads)


def _check_user_model(cfg: config_lib.Config) -> None:
    """A user's model is loaded and checked against the data before anything is written."""
    if cfg.train.arch in architectures.own_names():
        quiet_import.tensorflow()
        from lottery_engine import model_summary

        model_summary.summarize(cfg)


def _cmd_submit(args: argparse.Namespace) -> int:
    from jobs import queue

    cfg = preflight.load(args.config, args.set)
    _check_user_model(cfg)
    job_id = queue.submit(cfg, args.home)
    print(job_id)
    return 0


def _cmd_jobs(args: argparse.Namespace) -> int:
    from jobs import queue, worker

    for status in queue.list_jobs(args.home):
        print(worker.job_line(status))
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    from jobs import queue

    if queue.cancel(args.job_id, args.home) == queue.RUNNING:
        export = queue.is_export(queue.get(args.job_id, args.home))
        print(f"{args.job_id}: stopping "
              + ("before its next format" if export else "at the next batch"))
        return 0
    since = queue.get(args.job_id, args.home).get("stalled_since")
    print(f"{args.job_id}: cancelled" + ("" if since is None else
          f" at once: its worker is gone (no heartbeat since {queue.clock(since)}), so nothing "
          f"was running it; lottery delete {args.job_id} removes its folder."))
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    from jobs import queue

    queue.delete(args.job_id, args.home)
    print(f"{args.job_id}: deleted")
    return 0


def _add_queue_commands(sub) -> None:
    home_help = "queue home folder (default $LOTTERY_HOME, else ./runs)"
    worker = sub.add_parser("worker", help="serve the job queue",
                            description="Claim queued jobs and run each in a child process.")
    worker.add_argument("--home", help=home_help)
    worker.add_argument("--device", default="auto",
                        help="cpu, gpu:N or auto (default): where this worker's jobs train")
    worker.add_argument("--once", action="store_true", help="run at most one job, then exit")
    worker.add_argument("--threads", type=int, help="TensorFlow threads per job (default: all "
                        "cores); one-thread workers, one per core, finish experiments sooner")
    worker.add_argument("--lease", type=float, default=30.0,
                        help="seconds without heartbeat after which a running job is resumed")
    worker.add_argument("--ray", metavar="ADDRESS",
                        help="run jobs on the Ray cluster at ADDRESS (host:port, or auto) "
                             "instead of in child processes; needs the [ray] extra")
    worker.add_argument("--max-jobs", type=int, default=4,
                        help="with --ray: jobs running on the cluster at once (default 4)")
    worker.set_defaults(func=_cmd_worker)

    submit = sub.add_parser("submit", help="queue a run for a worker",
                            description="Validate a config and queue it; prints the job id.")
    submit.add_argument("--config", required=True)
    submit.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    submit.add_argument("--home", help=home_help)
    submit.set_defaults(func=_cmd_submit)

    jobs = sub.add_parser("jobs", help="list jobs", description="List every job with its state.")
    jobs.add_argument("--home", help=home_help)
    jobs.set_defaults(func=_cmd_jobs)

    for name, func, text in (("cancel", _cmd_cancel, "cancel a queued or running job"),
                             ("delete", _cmd_delete, "delete a finished job's folder")):
        cmd = sub.add_parser(name, help=text, description=text.capitalize() + ".")
        cmd.add_argument("job_id")
        cmd.add_argument("--home", help=home_help)
        cmd.set_defaults(func=func)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lottery", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run IMP from a YAML config",
                         description="Run Iterative Magnitude Pruning from a YAML config.")
    run.add_argument("--config", required=True, help="YAML config, e.g. configs/quickstart.yaml")
    run.add_argument("--out", help="run folder (default: a new <name>-<time>-<random> folder "
                                   "under imp.results_dir, $LOTTERY_HOME or ./runs); an "
                                   "unfinished one is resumed after its last finished round")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override a config value, e.g. --set imp.prune_rate=0.3 (repeatable)")
    run.set_defaults(func=_cmd_run)

    ticket = sub.add_parser("ticket", help="save and verify the winning ticket of a run",
                            description="Pick the best pruned round, save it, re-evaluate it.")
    ticket.add_argument("run_dir")
    ticket.set_defaults(func=_cmd_ticket)

    export = sub.add_parser(
        "export", help="export a ticket smaller and faster (compact Keras, sparse TFLite, int8)",
        description="Write a round's ticket (default: the winning ticket's) in a deployable format "
                    "and measure its size, latency and accuracy against the dense ticket; "
                    "records go to RUN_DIR/exports.json.")
    export.add_argument("run_dir")
    export.add_argument("--format", default="all",
                        choices=["all", *export_records.FORMATS])
    export.add_argument("--round", type=int, default=None, help="default: the winning ticket's")
    export.add_argument("--out", default=None, help="the file (one format only), outside the "
                        "run folder or in its export/ subfolder; default "
                        "RUN_DIR/export/FORMAT.EXT")
    export.add_argument("--force", action="store_true", help="replace an existing --out file")
    export.set_defaults(func=_cmd_export)

    report = sub.add_parser("report", help="write the HTML report and Markdown table of a run",
                            description="Write report.html and rounds.md into a run folder.")
    report.add_argument("run_dir")
    report.set_defaults(func=_cmd_report)
    experiment = sub.add_parser(
        "experiment", help="run configs x seeds with controls and write RESULTS.md",
        description="Run every config and seed of an experiment YAML (each an ordinary run "
                    "folder; finished ones are kept), then write the results table and figure.")
    experiment.add_argument("--config", help="experiment YAML, e.g. configs/experiment_fashion.yaml")
    experiment.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                            help="override a key in every run config")
    experiment.add_argument("--seeds", type=int, nargs="+", help="replace every arm's seeds")
    experiment.add_argument("--results", help="Markdown file to write (default from the YAML)")
    experiment.add_argument("--home", help="queue home (default $LOTTERY_HOME, else ./runs)")
    experiment.add_argument("--workers", type=int, default=0,
                            help="start this many local workers for the experiment's duration "
                                 "(default 0: workers already serving the home run it)")
    experiment.add_argument("--threads", type=int, default=1,
                            help="threads per started worker (default 1)")
    experiment.add_argument("--local", action="store_true",
                            help="run every series in this process instead of the queue")
    experiment.add_argument("--out", help="with --local: folder for the run folders")
    experiment.add_argument("--report", metavar="EXPERIMENT_ID",
                            help="(re)make the write-up of a queued experiment and exit")
    experiment.set_defaults(func=_cmd_experiment)
    hybrid = sub.add_parser(
        "hybrid", help="pooled conv features + RandomForest baseline",
        description="Extract globally pooled features from a conv layer of the dense model or "
                    "the winning ticket, fit a RandomForest, write test_metrics.json; with --run, "
                    "into RUN/hybrid/ and onto the run's accuracy-vs-FLOPs figure.")
    hybrid.add_argument("--config", help="YAML config (default: the run's own, with --run)")
    hybrid.add_argument("--run", help="a finished run folder to take weights and split from")
    hybrid.add_argument("--model", choices=["dense", "ticket"], default="dense",
                        help="with --run: round 0's dense weights or the winning ticket")
    hybrid.add_argument("--layer", help="conv layer (default block3_conv3 for vgg16, conv_2 "
                                        "for lenet)")
    hybrid.add_argument("--trees", type=int, default=200)
    hybrid.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    hybrid.add_argument("--out", help="output folder")
    hybrid.set_defaults(func=_cmd_hybrid)
    instability = sub.add_parser(
        "instability", help="error barrier between copies trained in other data orders",
        description="For each round r (its mask; 0 is dense) and rewind step k, train copies "
                    "from round 0's weights after step k in different data orders and measure "
                    "the error along the line between them (Frankle et al. 2020); lines go to "
                    "RUN_DIR/instability.jsonl, and a rerun resumes.")
    instability.add_argument("run_dir")
    instability.add_argument("--rounds", required=True, help="finished rounds, e.g. 0,4,8")
    instability.add_argument("--rewind", required=True,
                             help="rewind steps k of round 0, e.g. 0,100,500,2000")
    instability.add_argument("--copies", type=int, default=2, help="copies per (r, k) (default 2)")
    instability.add_argument("--points", type=int, default=31,
                             help="evenly spaced points along each line (default 31)")
    instability.set_defaults(func=_cmd_instability)
    _add_queue_commands(sub)
    return parser


TENSORFLOW_COMMANDS = ("ticket", "export", "hybrid")  # run, experiment: once their config is read


def _save_traceback() -> Path | None:
    """Keep the traceback of an unforeseen error in a file the one-line message points at."""
    import traceback

    from lottery_engine.data.image_folder import cache_root

    try:
        path = cache_root() / "last-error.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"lottery {' '.join(sys.argv[1:])}\n{traceback.format_exc()}")
        return path
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    """Run a command; every error ends in one line on stderr, a config's refusals one a line
    (exit 2 for input the user can fix, 1 for anything else, whose traceback is saved to a file
    the line names)."""
    from lottery_engine.foundations.faults import UserError, describe

    args = build_parser().parse_args(argv)
    try:
        if args.command in TENSORFLOW_COMMANDS:
            quiet_import.tensorflow()
        return args.func(args)
    except (UserError, FileNotFoundError) as exc:
        reasons = exc.errors if isinstance(exc, config_lib.ConfigError) else [exc]
        print("\n" + "\n".join(f"error: {describe(reason)}" for reason in reasons),
              file=sys.stderr)  # a config's every refusal, one a line
        return 2
    except BrokenPipeError:  # `lottery jobs | head`: the reader has what it wanted
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; finished rounds are kept (resume: lottery run --config FILE "
              "--out RUN_FOLDER)", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        saved = _save_traceback()
        print(f"\nerror: {describe(exc)}"
              + (f" (details in {saved})" if saved else ""), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
