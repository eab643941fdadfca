"""Multi-host proof on one machine: every strategy across 2 fake hosts equals the same run on one host.

    .venv/bin/python tests/multinode/run_netns.py                       # every registered strategy but single
    .venv/bin/python tests/multinode/run_netns.py --strategies tensor --hosts 3 --workers 6
    .venv/bin/python tests/multinode/run_netns.py --fault 3:1:raise     # a rank dies: every host must fail

Creates network namespaces joined by a bridge (tests/multinode/netns.py), starts one
``graphpar run --nnodes H --node-rank R --master-addr 10.77.0.1 --master-port 29500`` launcher per
namespace (GLOO_SOCKET_IFNAME=eth0: the ranks really talk over the veth links), runs the same
configuration on one host, and compares the records: per-epoch losses and per-rank per-tag byte
counts (training, setup and evaluation) must be equal. Exit codes: 0 agree, 1 disagree or a run
failed, 2 bad arguments, 77 namespaces cannot be created here (the pytest wrapper skips on it).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netns import IFACE, Hosts, NetnsUnavailable, probe

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_NO_NETNS = 0, 1, 2, 77
REPO = Path(__file__).resolve().parents[2]
MASTER_PORT = 29500


def graphpar_argv() -> list[str]:
    """The ``graphpar`` command of this interpreter's environment."""
    exe = Path(sys.executable).with_name("graphpar")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "graphpar.bench.cli"]


def pick_shape(strategy: str, args: argparse.Namespace) -> tuple[str, int]:
    """(model, layers): --model/--layers when the strategy takes them, else the first of its models
    (and --layers, then one layer per rank: pipeline needs a stage per layer) its defaults accept."""
    from graphpar.datasets import load_dataset
    from graphpar.strategies import ConfigError, TrainConfig, get_strategy

    cls, summary = get_strategy(strategy), load_dataset(args.dataset).summary()
    for layers in dict.fromkeys((args.layers, max(args.layers, args.workers))):
        for model in ([args.model] if args.model else list(cls.models)):
            cfg = TrainConfig(strategy=strategy, dataset=args.dataset, workers=args.workers, model=model,
                              layers=layers, hidden=args.hidden, epochs=args.epochs)
            try:
                cls.validate(cfg, summary)
                return model, layers
            except ConfigError:
                continue
    return args.model or cls.models[0], args.layers  # graphpar run will say why


def run_args(strategy: str, args: argparse.Namespace, out: Path) -> list[str]:
    model, layers = pick_shape(strategy, args)
    return [*graphpar_argv(), "run", "--strategy", strategy, "--model", model, "--layers", str(layers),
            "--dataset", args.dataset, "--workers", str(args.workers),
            "--epochs", str(args.epochs), "--hidden", str(args.hidden),
            "--eval-every", "0", "--timeout", str(args.timeout), "--out", str(out), *args.extra]


def base_env() -> dict[str, str]:
    env = dict(os.environ, OUTDATED_IGNORE="1", PYTHONUNBUFFERED="1")
    env.pop("GRAPHPAR_FAULT", None)
    return env


def start_single_host(strategy: str, args: argparse.Namespace, work: Path) -> tuple[subprocess.Popen, Path, Path]:
    """The same configuration as one ordinary single-host launcher (in its own session)."""
    out, log = work / f"{strategy}-single.jsonl", work / f"{strategy}-single.log"
    env = dict(base_env(), GLOO_SOCKET_IFNAME="lo", MASTER_ADDR="127.0.0.1")
    proc = subprocess.Popen(run_args(strategy, args, out), env=env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, out, log


def wait_single_host(proc: subprocess.Popen, deadline: float) -> int:
    try:
        return proc.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        return 124
    finally:
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill a launcher and the workers it started (its own session); ours only, by process group id."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_multi_host(strategy: str, args: argparse.Namespace, work: Path, fault: str | None = None,
                   alongside: subprocess.Popen | None = None) -> tuple[list[int], Path, list[Path]]:
    """One launcher per namespace; every launcher's exit code (124: killed at --run-timeout), records, logs.

    ``alongside`` (the single-host run, started first so both overlap) is waited for inside the
    namespaces' lifetime, so a Ctrl-C anywhere still removes them.
    """
    out = work / f"{strategy}-multi{'-fault' if fault else ''}.jsonl"
    logs = [work / f"{strategy}-host{i}{'-fault' if fault else ''}.log" for i in range(args.hosts)]
    try:
        return _run_in_namespaces(strategy, args, out, logs, fault, alongside)
    finally:
        if alongside is not None and alongside.poll() is None:  # interrupted: do not leave it behind
            _kill_group(alongside)


def _run_in_namespaces(strategy: str, args: argparse.Namespace, out: Path, logs: list[Path], fault: str | None,
                       alongside: subprocess.Popen | None) -> tuple[list[int], Path, list[Path]]:
    with Hosts(args.hosts) as hosts:
        master = hosts.address(0)
        procs = []
        for i in range(args.hosts):
            env = dict(base_env(), GLOO_SOCKET_IFNAME=IFACE, MASTER_ADDR=master)
            if args.gloo_iface == "lo":  # as `make` exports it: the launcher must find eth0 itself
                env["GLOO_SOCKET_IFNAME"] = "lo"
            if fault:
                env["GRAPHPAR_FAULT"] = fault
            argv = run_args(strategy, args, out) + ["--nnodes", str(args.hosts), "--node-rank", str(i),
                                                    "--master-addr", master, "--master-port", str(MASTER_PORT)]
            procs.append(hosts.popen(i, argv, env, open(logs[i], "w")))
        deadline = time.monotonic() + args.run_timeout
        codes: list[int] = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=max(deadline - time.monotonic(), 1)))
            except subprocess.TimeoutExpired:
                codes.append(124)  # the context manager kills what is left
        if alongside is not None:
            codes.append(wait_single_host(alongside, deadline))
    return codes, out, logs


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _bytes_by_tag(rec: dict) -> list[dict]:
    """Per rank: {section/tag: (calls, sent, recv)} for training, setup and evaluation traffic."""
    out = []
    for w in rec["workers"]:
        table = {}
        for section, tags in (("train", w["comm_by_tag"]), ("setup", w["setup_comm"]), ("eval", w["eval_comm"])):
            for tag, st in tags.items():
                table[f"{section}:{tag}"] = (st["calls"], st["sent_bytes"], st["recv_bytes"])
        out.append(table)
    return out


def compare(single: dict, multi: dict, rel_tol: float) -> list[str]:
    """Differences between the two records (empty when they agree)."""
    problems = []
    ls, lm = [e["loss"] for e in single["epochs"]], [e["loss"] for e in multi["epochs"]]
    if len(ls) != len(lm):
        problems.append(f"epochs differ: {len(ls)} vs {len(lm)}")
    for i, (a, b) in enumerate(zip(ls, lm)):
        if abs(a - b) > rel_tol * max(abs(a), 1e-12):
            problems.append(f"epoch {i} loss {a!r} (one host) vs {b!r} (multi-host)")
    bs, bm = _bytes_by_tag(single), _bytes_by_tag(multi)
    if len(bs) != len(bm):
        problems.append(f"rank count differs: {len(bs)} vs {len(bm)}")
    for r, (ts, tm) in enumerate(zip(bs, bm)):
        for tag in sorted(set(ts) | set(tm)):
            if ts.get(tag) != tm.get(tag):
                problems.append(f"rank {r} {tag}: (calls, sent, recv) {ts.get(tag)} vs {tm.get(tag)}")
    return problems


def tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else ["(no log)"]
    return "\n".join("    " + line for line in text[-lines:])


def source_digest() -> str:
    """Hash of the code a run executes (others may edit it while we run; then the pair is redone)."""
    h = hashlib.sha256()
    for path in sorted(p for d in ("strategies", "bench", "datasets") for p in (REPO / d).rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def prove_strategy(strategy: str, args: argparse.Namespace, work: Path) -> bool:
    for attempt in range(2):
        before = source_digest()
        ok = _prove_once(strategy, args, work)
        if ok or source_digest() == before:
            return ok
        print(f"  (the code changed during the run; running {strategy} again)")
    return ok


def _prove_once(strategy: str, args: argparse.Namespace, work: Path) -> bool:
    for stale in work.glob(f"{strategy}-*.jsonl"):
        stale.unlink()
    t0 = time.monotonic()
    single_proc, single_out, single_log = start_single_host(strategy, args, work)
    codes, multi_out, logs = run_multi_host(strategy, args, work, alongside=single_proc)
    codes, rc = codes[:-1], codes[-1]
    t_multi = time.monotonic() - t0
    multi, single = _records(multi_out), _records(single_out)
    model, layers = pick_shape(strategy, args)
    head = f"{strategy:<10} {model} x{layers} P={args.workers} over {args.hosts} hosts"
    if any(codes) or rc or len(multi) != 1 or len(single) != 1:
        print(f"FAIL {head}: launcher exits {codes}, single-host exit {rc}, "
              f"{len(multi)} multi-host and {len(single)} single-host records (want 1 each)")
        for log in [*logs, single_log]:
            print(f"  --- {log.name}\n{tail(log)}")
        return False
    problems = compare(single[0], multi[0], args.rel_tol)
    if problems:
        print(f"FAIL {head}: records differ\n  " + "\n  ".join(problems[:20]))
        return False
    m = multi[0]
    total = sum(sum(w["sent_bytes"]) for w in m["workers"])
    print(f"ok   {head}: {len(m['epochs'])} losses equal (last {m['epochs'][-1]['loss']:.6f}), "
          f"{sum(len(t) for t in _bytes_by_tag(m))} per-rank tags equal, {total} bytes sent in training; "
          f"both runs {t_multi:.1f}s")
    return True


def prove_fault(strategy: str, fault: str, args: argparse.Namespace, work: Path) -> bool:
    """A rank dying on one host must end the run on every host with a nonzero exit."""
    t0 = time.monotonic()
    codes, out, logs = run_multi_host(strategy, args, work, fault=fault)
    took = time.monotonic() - t0
    texts = [log.read_text(errors="replace") if log.exists() else "" for log in logs]
    rank, _, mode = fault.split(":")
    expected = "injected fault" if mode == "raise" else "exit 17"
    traceback_seen = any(expected in t for t in texts)
    ok = all(c not in (0, 124) for c in codes) and traceback_seen and not _records(out)
    print(f"{'ok  ' if ok else 'FAIL'} fault {fault} ({strategy}): launcher exits {codes} after {took:.1f}s, "
          f"'{expected}' {'reported' if traceback_seen else 'NOT reported'}, {len(_records(out))} records written")
    for i, text in enumerate(texts):
        lines = [ln for ln in text.splitlines() if "graphpar: run failed" in ln]
        print(f"  host {i}: {lines[0][:200] if lines else '(no failure line)'}")
    if not ok:
        for log in logs:
            print(f"  --- {log.name}\n{tail(log)}")
    return ok


def registered_strategies() -> list[str]:
    from graphpar.strategies import registered

    return [name for name in registered() if name != "single"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strategies", default="", help="comma list (default: every registered strategy but single)")
    p.add_argument("--hosts", type=int, default=2)
    p.add_argument("--workers", type=int, default=4, help="ranks over all hosts")
    p.add_argument("--dataset", default="cora")
    p.add_argument("--model", default="", help="default: the first model the strategy accepts with its defaults")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--timeout", type=float, default=60.0, help="graphpar's collective timeout (s)")
    p.add_argument("--run-timeout", type=float, default=120.0, help="wall limit of one run (s)")
    p.add_argument("--rel-tol", type=float, default=0.0, help="loss tolerance (default: bitwise equal)")
    p.add_argument("--gloo-iface", default=IFACE, choices=(IFACE, "lo"),
                   help="GLOO_SOCKET_IFNAME in the hosts; 'lo' proves the launcher picks the route's interface")
    p.add_argument("--fault", default="", help="RANK:EPOCH:kill|raise: prove fail-fast instead of equality")
    p.add_argument("--keep", default="", help="directory to keep records and logs in")
    p.add_argument("extra", nargs="*", help="more graphpar run flags, after --")
    args = p.parse_args(argv)
    if args.workers % args.hosts:
        p.error(f"--workers {args.workers} is not divisible by --hosts {args.hosts}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if os.geteuid() != 0:
        print("multinode: SKIP: network namespaces need root (ip netns add); run as root or use a real cluster")
        return EXIT_NO_NETNS
    reason = probe()
    if reason:
        print(f"multinode: SKIP: {reason}")
        return EXIT_NO_NETNS
    names = args.strategies.split(",") if args.strategies else registered_strategies()
    if not names:
        print("multinode: no strategy other than single is registered; nothing to prove across hosts")
        return EXIT_MISMATCH
    for sig in (signal.SIGTERM, signal.SIGHUP):  # finally blocks (namespaces, launchers) run on these too
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="graphpar-multinode-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        if args.fault:
            ok = all(prove_fault(name, args.fault, args, work) for name in names)
        else:
            ok = all([prove_strategy(name, args, work) for name in names])
    except NetnsUnavailable as e:
        print(f"multinode: SKIP: {e}")
        return EXIT_NO_NETNS
    print(f"multinode: {'PASS' if ok else 'FAIL'} in {time.monotonic() - t0:.1f}s (records and logs in {work})")
    return EXIT_OK if ok else EXIT_MISMATCH


if __name__ == "__main__":
    sys.exit(main())
