"""One command for the whole benchmark: `python -m perf.run` (see perf/README.md).

Starts its own stack (redis-server with AOF everysec, one im-rpc, one im-http) unless
--target names a running gateway. Then it runs redis-benchmark and wrk /ping as ceilings,
wrk send/pull scenarios at each concurrency, and locust. (Designs of earlier commits are
compared by perf.rpc_ab.)
It audits every acknowledged send, and writes perf/reports/run/report.md with
plots. It exits 1 when the audit finds a message lost, duplicated or misordered.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import os
import platform
import subprocess
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

from perf.audit import read_acks, run_audit
from perf.change_audit import audit as change_audit
from perf.lib.rounds import interleaved, log
from perf.lib.stack import LocalStack, raise_fd_limit
from perf.redis_bench import redis_ceilings
from perf.report import REPORTS, RunData, median_result, write_report
from perf.sync_audit import audit_syncs, take_tokens
from perf.tokens import load_users, read_tokens, write_tokens
from perf.wrk import WrkResult, run_wrk

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("ping", "send", "pull10", "pull100", "inbox10")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m perf.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--target", help="base URL of a running gateway (default: start a stack)")
    p.add_argument("--connections", default="20,64,256,1024", help="wrk concurrency levels")
    p.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    p.add_argument("--rounds", type=int, default=1, help="rounds per scenario (median kept)")
    p.add_argument(
        "--chats",
        type=int,
        default=100_000,
        help="chats in the load's pool (chat i between users a<i> and b<i>)",
    )
    p.add_argument(
        "--fill-seconds",
        type=float,
        default=30,
        help="sends (wrk, 64 connections) before the measured runs, so that the pool's chats "
        "hold messages (0: none)",
    )
    p.add_argument("--locust-seconds", type=int, default=30, help="locust run (0: skip)")
    p.add_argument("--locust-users", type=int, default=50)
    p.add_argument("--memory", action="store_true", help="also measure Redis bytes/message")
    p.add_argument("--out", type=Path, help="report directory (default perf/reports/run)")
    p.add_argument("--smoke", action="store_true", help="seconds-long run with a tiny load")
    p.add_argument(
        "--no-sync-audit",
        dest="sync_audit",
        action="store_false",
        help="skip taking a sync token for every user first and following them all after",
    )
    p.add_argument(
        "--change-audit-seconds",
        type=float,
        default=10,
        help="mixed sends, edits and recalls, then every sync and pull checked (0: skip; "
        "not with --target or --auth)",
    )
    p.add_argument(
        "--auth",
        action="store_true",
        help="authentication on: ES256 tokens, one per simulated user (wrk, locust, audit)",
    )
    args = p.parse_args(argv)
    if args.auth and args.target:
        p.error("--auth starts its own stack (with its own keys): it cannot use --target")
    args.tokens = None  # the tokens file, once made
    if args.smoke:
        args.connections, args.seconds, args.chats, args.fill_seconds = "4", 1, 10, 1
        args.locust_seconds, args.locust_users = 3, 4
        args.change_audit_seconds = min(args.change_audit_seconds, 2)
    return args


def _run(
    url: str, scenario: str, conns: int, args: argparse.Namespace, prefix: str, acks: Path
) -> WrkResult:
    r = run_wrk(
        url,
        scenario,
        conns,
        args.seconds,
        chats=args.chats,
        prefix=prefix,
        acks=acks if scenario == "send" else None,
        tokens=args.tokens,
    )
    log(
        "perf",
        f"{scenario:>7} c={conns:<5} {r.rps:>9,.0f} req/s  p50 {r.p50_ms:6.2f}  "
        f"p99 {r.p99_ms:6.2f}  p99.9 {r.p999_ms:7.2f} ms  errors {r.error_count}",
    )
    return r


def _scenarios(
    url: str, args: argparse.Namespace, prefix: str, acks: Path
) -> tuple[list[WrkResult], list[WrkResult]]:
    """The median run of each scenario at each concurrency, and every run in order."""
    results, every = [], []
    for conns in (int(c) for c in args.connections.split(",")):
        rounds: dict[str, list[WrkResult]] = {s: [] for s in SCENARIOS}
        for _, _, scenario in interleaved(args.rounds, SCENARIOS):
            run = _run(url, scenario, conns, args, prefix, acks)
            rounds[scenario].append(run)
            every.append(run)
        results += [median_result(runs) for runs in rounds.values()]
    return results, every


def _locust(
    url: str, args: argparse.Namespace, out: Path, prefix: str, acks: Path
) -> list[dict[str, str]]:
    env = {
        "IM_PERF_ACKS": str(acks),
        "IM_PERF_PREFIX": f"{prefix}l",
        "IM_PERF_CHATS": str(args.chats),
    }
    if args.tokens:
        env["IM_PERF_TOKENS"] = str(args.tokens)
    log("perf", f"locust: {args.locust_users} users for {args.locust_seconds}s")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "perf" / "locustfile.py"),
            "--headless",
            "-u",
            str(args.locust_users),
            "-r",
            str(args.locust_users),
            "-t",
            f"{args.locust_seconds}s",
            "--host",
            url,
            "--csv",
            str(out / "locust"),
            "--html",
            str(out / "locust.html"),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        env={**os.environ, **env},
        check=False,
        timeout=args.locust_seconds + 120,
    )
    with open(out / "locust_stats.csv") as f:
        return list(csv.DictReader(f))


def _memory(args: argparse.Namespace) -> list[str]:
    n = "20000" if args.smoke else "100000"
    out = subprocess.run(
        [sys.executable, "-m", "perf.store_memory", "--messages", n],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def main(argv: list[str] | None = None) -> int:
    """Run everything, write the report, print where it is; 1 if the audit failed."""
    args = _args(argv)
    raise_fd_limit()
    out = (args.out or REPORTS / "run").resolve()
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"p{uuid.uuid4().hex[:6]}"
    acks = out / "acks.txt"
    acks.unlink(missing_ok=True)
    with ExitStack() as stack:
        local = None if args.target else LocalStack(stack, auth=args.auth)
        url = args.target or f"http://127.0.0.1:{local.gateway.port}"  # type: ignore[union-attr]
        if local is not None and local.signing is not None:
            users = load_users(prefix, args.chats) + load_users(f"{prefix}l", args.chats)
            args.tokens = write_tokens(out / "tokens.txt", users, local.signing)
            log("perf", f"authentication on: {len(users)} tokens (ES256) in {args.tokens}")
        since: dict[str, str] = {}
        if args.sync_audit:  # every user of wrk's and locust's pools syncs from now on
            users = [f"{p}{side}{i}" for p in (prefix, f"{prefix}l") for side in "ab"
                     for i in range(args.chats + 1)]  # fmt: skip
            log("perf", f"taking a sync token for each of {len(users):,} users ...")
            since = asyncio.run(take_tokens(url, users, read_tokens(args.tokens)))
        redis = redis_ceilings(local.redis.port) if local and not args.smoke else []
        for c in redis:
            log("perf", f"redis-benchmark {c.command} -P {c.pipeline}: {c.rps:,.0f}/s")
        if args.fill_seconds:
            log("perf", f"filling {args.chats:,} chats: sends for {args.fill_seconds:g} s ...")
            fill = run_wrk(
                url,
                "send",
                64,
                args.fill_seconds,
                chats=args.chats,
                prefix=prefix,
                acks=acks,
                tokens=args.tokens,
            )
            log(
                "perf",
                f"filled: {fill.requests:,} messages, {fill.requests / args.chats:.1f} per chat",
            )
        results, every_run = _scenarios(url, args, prefix, acks)
        locust = _locust(url, args, out, prefix, acks) if args.locust_seconds else []
        log("perf", "auditing every acknowledged send ...")
        audit = asyncio.run(run_audit(url, [acks], tokens=read_tokens(args.tokens)))
        log("perf", audit.line())
        synced = None
        if args.sync_audit:
            log("perf", "following every user's sync ...")
            synced = asyncio.run(
                audit_syncs(url, read_acks([acks]), since, read_tokens(args.tokens))
            )
            log("perf", synced.line())
        changed = ""
        if local is not None and not args.auth and args.change_audit_seconds:
            log("perf", "edits and recalls: the change audit's mixed traffic ...")
            seconds = args.change_audit_seconds
            found = asyncio.run(
                change_audit(local.gateway.port, argparse.Namespace(users=100, clients=16,
                                                                    seconds=seconds))
            )  # fmt: skip
            changed = "\n".join(line.removeprefix("- ") for line in found[2:])
            log("perf", changed)
    memory = _memory(args) if args.memory else []
    setup = [
        f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "stack: "
        + (
            f"target {args.target}"
            if args.target
            else "one im-http process and one im-rpc process (defaults), redis-server "
            "(AOF everysec), wrk and locust on the same machine"
        )
        + ("; authentication on (ES256 tokens, one per simulated user)" if args.auth else ""),
        f"load: wrk -t2, {args.seconds:g} s per run, {args.chats:,} chats ({2 * args.chats:,} "
        f"users), filled by {args.fill_seconds:g} s of sends first, 100-byte texts; "
        f"{args.rounds} round(s) per scenario (median)",
        "targets against /ping: each round's scenario over the same round's /ping (run just "
        "before it), median of the rounds; the tables divide the medians",
    ]
    data = RunData(
        f"IM backend performance report, {dt.date.today().isoformat()}",
        setup,
        results,
        audit,
        redis,
        locust,
        memory,
        command=_command(argv),
        rounds=every_run,
        sync_audit=synced.line() if synced else "",
        change_audit=changed,
    )
    log("perf", f"report: {write_report(out, data)}")
    changes_ok = not changed or changed.endswith("**OK**")
    return 0 if audit.ok and (synced is None or synced.ok) and changes_ok else 1


def _command(argv: list[str] | None) -> str:
    return "python -m perf.run " + " ".join(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
