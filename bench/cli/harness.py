"""The harness's subcommands of ``graphpar``: sweep, plot, project, regress, paper.

    graphpar sweep default --workers 1,2,4          # bench/configs/default.yaml, or any sweep YAML
    graphpar plot --dataset rmat-arxiv

Bad input (a malformed or missing file, an unknown key, a value of the wrong type, no runs to report
on) is one line naming the fix and exit 2, with nothing run or written. Reports and figures go to
``out/`` (untracked) unless ``--out-dir`` says otherwise.
    graphpar project --workers 16 --bandwidth-gbps 15 --latency-us 20
    graphpar project --validate --measure-link
    graphpar regress [--update]
    graphpar paper neutrontp
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Callable

from graphpar.strategies import TrainConfig

from .. import metrics
from ..api import check_out, check_out_dir, check_processes
from ..errors import UsageError
from ..harness import control, regress, sweep
from ..harness.projection import Link, measure_link, project, validate
from ..harness.sweep import rejected_summary
from ..record import append_record, damaged_lines, read_records, scan_records
from ..results import config_key, export_csv, read
from ..specs import validate_sweep
from ..tables import bench_table, compare_runs
from .args import at_least_one

DEFAULT_RESULTS = "results/runs.jsonl"
DEFAULT_OUT_DIR = "out"  # generated reports and figures: untracked (see .gitignore)


def csv_list(value: str | None, cast=str, flag: str = "") -> list | None:
    """Comma list; a piece like ``edges=E`` continues the previous spec (``rmat:nodes=N,edges=E``)."""
    if not value:
        return None
    out: list[str] = []
    for piece in value.split(","):
        if out and "=" in piece and ":" not in piece and ":" in out[-1]:
            out[-1] += "," + piece
        else:
            out.append(piece)
    try:
        return [cast(v) for v in out]
    except ValueError:
        raise UsageError(f"{flag}: {value!r} is not a comma list of integers, e.g. 1,2,4") from None


CONFIG_FIELDS = {"strategy": str, "dataset": str, "model": str, "workers": int}


def check_records(records: list, path: str) -> None:
    """Every record well-formed (a mapping with a config; an ok one with the usual config fields and every
    raw sample its numbers are derived from): a hand-edited or foreign file is one line naming the record."""
    for i, rec in enumerate(records, 1):
        where = f"{path}: record {i}"
        if not isinstance(rec, dict) or not isinstance(rec.get("config"), dict):
            raise UsageError(f"{where} is not a graphpar run record (no config mapping); pass a JSONL written "
                             "by graphpar run or sweep")
        if rec.get("status") != "ok":  # a failed run keeps the configuration as it was given
            continue
        for key, t in CONFIG_FIELDS.items():
            value = rec["config"].get(key)
            if not isinstance(value, t) or isinstance(value, bool):
                raise UsageError(f"{where}: config.{key} must be {t.__name__}, got {value!r}; pass a JSONL written "
                                 "by graphpar run or sweep")
        try:
            metrics.summary(rec)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as e:
            detail = f"missing {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            raise UsageError(f"{where} (run {rec.get('run_id')}) is damaged ({detail}); drop that line or "
                             "rerun it") from None


def _records_or_usage(path: str) -> list[dict]:
    """The records of a results file; a missing, empty or malformed file is bad input (one line, exit 2)."""
    if not Path(path).is_file():
        raise UsageError(f"no results file {path}: run graphpar sweep (or make bench) first, or pass --results PATH")
    records = read(path)
    if not records:
        _, damaged = scan_records(Path(path))
        if damaged:
            raise UsageError(f"{path} holds no readable records ({damaged_lines(Path(path), damaged)}): repair or drop "
                             "those lines, or pass another --results")
        raise UsageError(f"{path} holds no records: run graphpar sweep (or make bench) first")
    check_records(records, path)
    return records


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = sweep.load_spec(args.config) if args.config else {"grid": {}, "fixed": {}}
    grid = spec["grid"]
    for axis, value, cast, flag in (("strategy", args.strategies, str, "--strategies"),
                                    ("dataset", args.datasets, str, "--datasets"),
                                    ("workers", args.workers, int, "--workers"), ("model", args.models, str, "--models"),
                                    ("layers", args.layers, int, "--layers"), ("hidden", args.hidden, int, "--hidden")):
        if value:
            grid[axis] = csv_list(value, cast, flag)
    if args.options:
        try:
            grid["options"] = [json.loads(o) for o in args.options]
        except json.JSONDecodeError as e:
            raise UsageError(f"--options: not JSON ({e.msg}); e.g. --options '{{\"pipe_chunks\": 4}}'") from None
    if args.epochs is not None:
        spec["fixed"]["epochs"] = args.epochs
    where = "command line" if not args.config else args.config
    validate_sweep(spec, where)
    if "dataset" not in grid:
        raise UsageError("a sweep needs datasets: --datasets cora,... or dataset: [...] under grid: in the file")
    sweep.check_grid_size(spec, where)  # sized from the axes, before anything is expanded or opened
    out = Path(args.out or spec.get("out") or DEFAULT_RESULTS)
    check_out(out)
    configs = sweep.expand(spec, where)
    for c in configs:  # a value out of range is bad input whatever the strategy (not a rejected combination)
        TrainConfig.from_dict(c).check()
    if args.dry_run:
        for c in configs:
            print(f"{c['strategy']} P={c['workers']} {c['model']} L={c['layers']} H={c['hidden']} on {c['dataset']} "
                  f"{c['options'] or ''}")
        print(f"{len(configs)} configurations")
        return 0
    past_memory = {"runner": lambda c, path: sweep._default_runner(c, path, ignore_memory=True),
                   "validator": lambda c: sweep._validate(c, ignore_memory=True)} if args.ignore_memory_check else {}
    outcome = sweep.run_sweep(configs, out, force=args.force, repeat=args.repeat, **past_memory)
    keys = {config_key(c) for c in configs}
    mine = [r for r in read_records(out) if r.get("status") == "ok" and config_key(r["config"]) in keys]
    if mine:  # repeats of a configuration pool into one row (metrics.repeats)
        print(bench_table(sorted(mine, key=lambda r: (r["config"]["dataset"], r["config"]["model"],
                                                      r["config"]["strategy"], r["config"]["workers"]))))
    if outcome.skipped:
        print("  " + rejected_summary(outcome.skipped))
    for line in outcome.failed:
        print("  FAILED  " + line)
    print(f"{len(outcome.ran)} ran, {len(outcome.resumed)} already recorded at this git sha (--force reruns), "
          f"{len(outcome.skipped)} rejected, {len(outcome.failed)} failed; records in {out}")
    if outcome.failed:
        print(f"graphpar sweep: {len(outcome.failed)} configuration(s) FAILED: "
              + "; ".join(line.split(":")[0] for line in outcome.failed), file=sys.stderr)
        return 1
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from ..harness.plots import plot_all  # noqa: PLC0415  (matplotlib: only the commands that draw load it)

    records = _records_or_usage(args.results)
    if os.sep in args.prefix or "/" in args.prefix or ".." in args.prefix:
        raise UsageError(f"--prefix {args.prefix!r}: a file name prefix cannot hold '/' or '..'; put the folder in "
                         "--out-dir instead")
    check_out_dir(Path(args.out_dir))
    if args.csv:
        check_out_dir(Path(args.csv), "--csv")
    formats = _formats(args)
    ok = [r for r in records if r.get("status") == "ok"]
    for key, value in (("dataset", args.dataset), ("model", args.model)):
        if value and not any(r["config"].get(key) == value for r in ok):
            known = sorted({str(r["config"].get(key)) for r in ok})
            raise UsageError(f"no successful runs with {key} {value!r} in {args.results}; recorded: {', '.join(known) or 'none'}")
    paths = plot_all(records, args.out_dir, args.dataset, args.model, args.prefix, formats, args.mix_versions)
    for p in paths:
        print(p)
    if args.csv:
        for p in export_csv(records, args.csv):
            print(p)
    if not paths:
        raise UsageError(f"no successful runs in {args.results}: run graphpar sweep (or make bench) first")
    return 0


def _formats(args: argparse.Namespace) -> tuple[str, ...]:
    from ..harness.figstyle import parse_formats  # noqa: PLC0415  (matplotlib: imported when plotting)

    try:
        return parse_formats(args.format)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _link(args: argparse.Namespace, workers: int | None = None):
    if args.measure_link:
        m = measure_link(workers or args.link_workers)
        print(f"loopback gloo, P={m['workers']}: all_to_all {m['bandwidth_Bps'] / 1e9:.2f} GB/s per rank, "
              f"latency {m['latency_s'] * 1e6:.0f} us; all_reduce {m['allreduce_bandwidth_Bps'] / 1e9:.2f} GB/s, "
              f"{m['allreduce_latency_s'] * 1e6:.0f} us")
        return Link(m["bandwidth_Bps"], m["latency_s"])
    return Link.from_gbps(args.bandwidth_gbps, args.latency_us)


def cmd_project(args: argparse.Namespace) -> int:
    for flag, value in (("--workers", args.workers), ("--link-workers", args.link_workers)):
        if value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
    if not (math.isfinite(args.bandwidth_gbps) and args.bandwidth_gbps > 0):
        raise UsageError(f"--bandwidth-gbps {args.bandwidth_gbps}: pass a finite number > 0")
    if not (math.isfinite(args.latency_us) and args.latency_us >= 0):
        raise UsageError(f"--latency-us {args.latency_us}: pass a finite number >= 0")
    if args.measure_link:
        check_processes(args.link_workers, warn=False)
    records = [r for r in _records_or_usage(args.results) if r.get("status") == "ok"
               and (not args.strategy or r["config"]["strategy"] in args.strategy.split(","))
               and (not args.dataset or r["config"]["dataset"] == args.dataset)]
    if not records:
        raise UsageError(f"no successful runs matching --strategy/--dataset in {args.results}")
    if args.validate:
        ps = sorted({r["config"]["workers"] for r in records if r["config"]["workers"] > 1})
        link = {p: _link(args, p) for p in ps} if args.measure_link else _link(args)
        rows = validate(records, link)
        print(f"{'strategy':<10} {'dataset':<14} {'from P':>6} {'P':>3} {'measured ms':>11} {'predicted ms':>12} "
              f"{'overlap ms':>10} {'error':>7} {'compute ms meas/pred':>20} {'error':>7}")
        for r in rows:
            print(f"{r['strategy']:<10} {r['dataset'][:14]:<14} {r['from_P']:>6} {r['P']:>3} {r['measured_s'] * 1e3:>11.1f} "
                  f"{r['predicted_s'] * 1e3:>12.1f} {r['predicted_overlap_s'] * 1e3:>10.1f} {r['error']:>+7.0%} "
                  f"{r['measured_compute_s'] * 1e3:>9.1f}/{r['predicted_compute_s'] * 1e3:<10.1f} "
                  f"{r['compute_error']:>+7.0%} {r['note']}")
        if rows:
            same = [abs(r["error"]) for r in rows if r["from_P"] == r["P"] and not r["note"]]
            cross = [abs(r["error"]) for r in rows if r["from_P"] != r["P"] and not r["note"]]
            cross_c = [abs(r["compute_error"]) for r in rows if r["from_P"] != r["P"] and not r["note"]]
            if cross_c:
                print(f"mean |compute error| P=2 -> larger P: {sum(cross_c) / len(cross_c):.0%} (CPU seconds of the "
                      "slowest rank; the epoch error above also carries the cores the ranks shared)")
            for name, errs in (("same P", same), ("P=2 -> larger P", cross)):
                if errs:
                    print(f"mean |error| {name}: {sum(errs) / len(errs):.0%} over {len(errs)} runs "
                          "(runs with overlapping async comm left out)")
        return 0
    link = _link(args)
    latest = {(r["config"]["strategy"], r["config"]["dataset"], r["config"]["model"], r["config"]["workers"]): r
              for r in metrics.latest(records).values()}
    print(f"link {link.describe()}; projected to P={args.workers}")
    print(f"{'strategy':<10} {'dataset':<14} {'meas P':>6} {'meas ms':>8} {'compute ms':>10} {'comm ms':>8} "
          f"{'epoch ms':>9} {'overlap ms':>10} {'MB/rank':>8}")
    for (s, ds, _, p), r in sorted(latest.items()):
        pr = project(r, args.workers, link)
        print(f"{s:<10} {ds[:14]:<14} {p:>6} {metrics.summary(r)['epoch_s'] * 1e3:>8.1f} {pr.compute_s * 1e3:>10.1f} "
              f"{pr.comm_s * 1e3:>8.1f} {pr.epoch_no_overlap_s * 1e3:>9.1f} {pr.epoch_overlap_s * 1e3:>10.1f} "
              f"{pr.bytes_per_rank / 1e6:>8.2f}")
    return 0


def cmd_regress(args: argparse.Namespace) -> int:
    spec = regress.load_spec(args.configs)
    if not args.update and not Path(args.baseline).is_file():
        raise UsageError(f"no baseline at {args.baseline}: run `make bench-baseline` (graphpar regress --update) first")
    if not args.update:  # read now: a damaged baseline must not cost a whole CI run
        try:
            baseline = json.loads(Path(args.baseline).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(f"{args.baseline}: not a readable JSON baseline ({type(e).__name__}); restore it from "
                             "git or write a new one with graphpar regress --update") from None
        if not isinstance(baseline, dict):
            raise UsageError(f"{args.baseline}: a baseline is a JSON object; restore it from git or rerun --update")
    if not args.update:
        sha, why = _control_for(args.control, baseline)
        if sha is None and args.control not in ("auto", "stored"):
            raise UsageError(f"--control {args.control}: {why}; pass a commit of this clone, auto or stored")
        regress.check_baseline(baseline, args.baseline)
    check_out(Path(args.baseline), "--baseline")
    check_out(Path(args.baseline).with_name(Path(args.baseline).stem + ".proposed.json"))
    if args.out:
        check_out(Path(args.out))
    baseline_path = Path(args.baseline)
    proposed = baseline_path.with_name(baseline_path.stem + ".proposed.json")
    if args.update:
        current = _measure_here(spec, args.out)
        doc = regress.baseline_doc(current, spec)
        regress.write_json(doc, proposed)
        regress.write_json(doc, baseline_path)
        print(f"baseline written to {baseline_path} ({len(current)} entries)")
        if not doc["code_sha"] and not os.environ.get(control.SIDE_ENV):
            print("  note: the code is not committed, so CI cannot rebuild it as the control and will compare "
                  "with these stored numbers; commit, then run make bench-baseline again", file=sys.stderr)
        return 0
    control_entries, gated, name = None, True, "stored numbers"
    if sha and args.control == "auto" and control.same_code(sha, control.REPO_ROOT):
        print(f"bench-ci: the code is the baseline's own ({sha[:12]}): bytes gated, compute shown against the "
              "stored numbers, not gated (nothing to regress; `--control HEAD` measures A/A noise)")
        current, gated = _measure_here(spec, args.out), False
    elif sha:
        name = f"control {sha[:12]}"
        print(f"bench-ci: A/B against the baseline's code {sha[:12]}, built from git, interleaved on this machine")
        try:
            with control.control_tree(sha, control.REPO_ROOT) as root:
                current, control_entries = regress.run_ab(Path(args.configs), root, spec["rounds"], args.out)
        except control.SideFailed as e:
            if e.side == "current":
                print(f"REGRESSION: {e}", file=sys.stderr)
                return 1
            print(f"bench-ci: {e}; gating on the stored numbers instead (measured elsewhere: less robust)",
                  file=sys.stderr)
            current, name = _measure_here(spec, args.out), "stored numbers"
    else:
        print(f"bench-ci: no control code ({why}): compute gated on the stored numbers", file=sys.stderr)
        current = _measure_here(spec, args.out)
    doc = regress.baseline_doc(current, spec)
    if control_entries is not None:  # kept beside the proposal: a FAIL can be read round by round
        doc["control"] = {"name": name, "entries": control_entries}
    regress.write_json(doc, proposed)
    rows, failed = regress.compare(baseline, current, spec["margin"], spec["margins"], control=control_entries,
                                   control_name=name, gated=gated)
    print(regress.table(rows, only_moved=not args.all))
    print("REGRESSION" if failed else "bench-ci ok", f"({len(current)} entries, compute vs {name}; "
          f"proposed baseline in {proposed})")
    return 1 if failed else 0


def _measure_here(spec: dict, out: str | None) -> dict:
    """The CI set in this process (its rounds interleaved), records appended to ``out``; the entries."""
    records, skipped = regress.run_ci(spec, progress=sys.stderr.isatty())
    if out:
        for rec in records:
            append_record(rec, Path(out))
    if skipped:
        print("  " + rejected_summary(skipped))
    return regress.measure(records)


def _control_for(requested: str, baseline: dict) -> tuple[str | None, str]:
    """The control commit: the baseline's (auto), a named one, or none (stored); with the reason if none."""
    if requested == "stored":
        return None, "--control stored"
    if requested == "auto":
        return control.control_sha(baseline, control.REPO_ROOT)
    return control.resolve(requested, control.REPO_ROOT)


def cmd_compare(args: argparse.Namespace) -> int:
    runs = []
    for path in (args.a, args.b):
        if not Path(path).is_file():
            raise UsageError(f"{path} is not a file; pass a results JSONL written by graphpar run")
        records, damaged = scan_records(Path(path))
        if damaged:  # a damaged line may be the newest run: comparing an older one instead would mislead
            raise UsageError(f"{damaged_lines(path, damaged)}, so the newest run there cannot be told; repair or "
                             "drop that line (or rerun) and compare again")
        check_records(records, path)
        newest = sorted(metrics.latest(records).values(), key=lambda r: r.get("time_utc") or "")
        if not newest:
            raise UsageError(f"{path} holds no completed run; pass a JSONL with an ok record")
        runs.append(newest[-1])
    a, b = runs
    if metrics.config_key(a["config"]) != metrics.config_key(b["config"]):
        diff = sorted(k for k in set(a["config"]) | set(b["config"])
                      if k != "timeout_s" and a["config"].get(k) != b["config"].get(k))
        raise UsageError(f"the newest runs in {args.a} and {args.b} differ in {', '.join(diff)}; "
                         "compare two runs of the same configuration")
    c = a["config"]
    print(f"{c['strategy']} P={c['workers']} {c['model']} on {c['dataset']}: A = {a['run_id']} "
          f"({a['env'].get('git_sha')}), B = {b['run_id']} ({b['env'].get('git_sha')})")
    print(compare_runs(a, b))
    return 0


def cmd_paper(args: argparse.Namespace) -> int:
    from ..harness.paper import write_report  # noqa: PLC0415  (matplotlib)

    _records_or_usage(args.results)
    if args.target_acc is not None and not (0.0 < args.target_acc <= 1.0):
        raise UsageError(f"--target-acc {args.target_acc}: pass a test accuracy in (0, 1], e.g. 0.7")
    if not (math.isfinite(args.bandwidth_gbps) and args.bandwidth_gbps > 0 and math.isfinite(args.latency_us)
            and args.latency_us >= 0 and args.target_workers >= 1):
        raise UsageError(f"--bandwidth-gbps {args.bandwidth_gbps} --latency-us {args.latency_us} --target-workers "
                         f"{args.target_workers}: pass a bandwidth > 0, a latency >= 0 and 1 or more workers")
    check_out_dir(Path(args.out_dir))
    formats = _formats(args)
    try:
        path = write_report(args.which, args.results, args.out_dir, args.bandwidth_gbps, args.latency_us,
                            args.target_workers, formats, args.target_acc)
    except ValueError as e:  # no runs of the paper's sweep: the message names the sweep to run
        raise UsageError(str(e).splitlines()[0]) from None
    print(f"report written to {path}")
    return 0


def add_commands(sub, commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """Register sweep, plot, project, regress, paper on ``graphpar``'s subparsers."""
    p = sub.add_parser("sweep", help="run a grid of configurations (resumable), one record each")
    p.add_argument("config", nargs="?", help="sweep YAML (grid:, fixed:, out:) or a shipped one: default, quick, "
                   "neutrontp, gnnpipe; flags override its axes")
    p.add_argument("--strategies", help="comma list, or 'all'")
    p.add_argument("--datasets", help="comma list of catalog names or specs")
    p.add_argument("--workers", help="comma list of worker counts")
    p.add_argument("--models", help="comma list: gcn,sage,decoupled")
    p.add_argument("--layers", help="comma list")
    p.add_argument("--hidden", help="comma list")
    p.add_argument("--epochs", type=int)
    p.add_argument("--options", action="append", help="strategy options as JSON, repeatable (one grid value each)")
    p.add_argument("--out", help=f"results JSONL (default: the file's out: or {DEFAULT_RESULTS})")
    p.add_argument("--force", action="store_true", help="rerun configurations already recorded at this git sha")
    p.add_argument("--repeat", type=at_least_one, default=1,
                   help="runs per configuration, interleaved over the grid (tables: median and min-max)")
    p.add_argument("--dry-run", action="store_true", help="list the configurations and stop")
    p.add_argument("--ignore-memory-check", action="store_true",
                   help="run a configuration even when its ranks' estimated memory exceeds what this host has")
    commands["sweep"] = cmd_sweep

    p = sub.add_parser("plot", help="figures (PNG, PDF, SVG) from recorded runs")
    p.add_argument("--results", default=DEFAULT_RESULTS)
    p.add_argument("--out-dir", default=f"{DEFAULT_OUT_DIR}/figures", help="where PNGs go (untracked by default)")
    p.add_argument("--dataset")
    p.add_argument("--model")
    p.add_argument("--prefix", default="", help="file name prefix")
    p.add_argument("--csv", help="also export the tables as CSV into this folder")
    p.add_argument("--format", default="png", help="comma list of png (300 dpi), pdf, svg")
    p.add_argument("--mix-versions", action="store_true", help="draw runs of different code versions together")
    commands["plot"] = cmd_plot

    p = sub.add_parser("project", help="predict epoch time on a cluster from measured runs")
    p.add_argument("--results", default=DEFAULT_RESULTS)
    p.add_argument("--strategy")
    p.add_argument("--dataset")
    p.add_argument("--workers", type=int, default=16, help="target worker count P'")
    p.add_argument("--bandwidth-gbps", type=float, default=15.0, help="link bandwidth per worker (NeutronTP: 15)")
    p.add_argument("--latency-us", type=float, default=20.0)
    p.add_argument("--measure-link", action="store_true", help="measure the local gloo loopback link and use it")
    p.add_argument("--link-workers", type=int, default=2, help="processes for --measure-link")
    p.add_argument("--validate", action="store_true", help="predicted vs measured on the recorded local runs")
    commands["project"] = cmd_project

    p = sub.add_parser("regress", help="CI gate: exact bytes + same-run throughput ratios vs the baseline")
    p.add_argument("--configs", default="results/ci_configs.yaml")
    p.add_argument("--baseline", default="results/baseline.json")
    p.add_argument("--update", action="store_true", help="write the current numbers as the baseline")
    p.add_argument("--out", help="also append the CI records to this JSONL")
    p.add_argument("--all", action="store_true", help="print every row, not only what moved")
    p.add_argument("--control", default="auto", help="compute tier's yardstick: auto (the baseline's commit, "
                   "rebuilt and run here interleaved; skipped when the code is that commit's), a git commit "
                   "(A/B against it, even the same code), or stored (the baseline's numbers)")
    commands["regress"] = cmd_regress

    p = sub.add_parser("compare", help="per-phase wall/CPU difference of two runs of the same configuration")
    p.add_argument("a", help="results JSONL of run A (its newest completed run)")
    p.add_argument("b", help="results JSONL of run B")
    commands["compare"] = cmd_compare

    p = sub.add_parser("paper", help="markdown report beside a paper's numbers (after its sweep)")
    p.add_argument("which", choices=("neutrontp", "gnnpipe"))
    p.add_argument("--results", default=DEFAULT_RESULTS)
    p.add_argument("--out-dir", default=DEFAULT_OUT_DIR,
                   help="report and figures/ go here (default out/, untracked; --out-dir results refreshes the published ones)")
    p.add_argument("--bandwidth-gbps", type=float, default=15.0)
    p.add_argument("--latency-us", type=float, default=20.0)
    p.add_argument("--target-workers", type=int, default=16)
    p.add_argument("--target-acc", type=float, default=None,
                   help="neutrontp: test accuracy for the time-to-accuracy column (default: the lowest best among the runs)")
    p.add_argument("--format", default="png", help="comma list of png (300 dpi), pdf, svg")
    commands["paper"] = cmd_paper
