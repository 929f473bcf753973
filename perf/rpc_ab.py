"""im-rpc code A/B: an older commit's im-rpc against this tree's, on one Redis.

    python -m perf.rpc_ab --base 8eccfd7 --rounds 4 --seconds 6 [--own-redis]

The base commit is checked out in a temporary git worktree; its im-rpc runs from there
(`PYTHONPATH`), this tree's beside it, each behind a gateway of this tree, both storing in
one redis-server (AOF everysec), or with `--own-redis` each in its own (for a base that
stores in another layout; each side is then filled). wrk runs each scenario at 64
connections on A and B in turn (the order alternating by round) over a pool of `--chats`
chats, after a fill of sends; each run records requests/s and the CPU time each process
(gateway, im-rpc, Redis with its AOF rewrites, wrk) spent per request
(perf.cpu_split.measure). Prints every run, then per scenario the median B/A throughput
ratio of the rounds and the medians of the per-request CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from devtools.procs import Process, http_service, redis_server, rpc_service
from perf.cpu_split import Sample, measure
from perf.stack import comparison_args, start_owned
from perf.wrk import run_wrk

ROOT = Path(__file__).resolve().parent.parent


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default="HEAD", help="the commit whose im-rpc is A")
    p.add_argument("--scenarios", default="send,pull10", help="wrk scenarios, comma-separated")
    p.add_argument("--chats", type=int, default=100_000, help="chats in the load's pool")
    p.add_argument("--fill-seconds", type=float, default=10, help="sends before the runs")
    p.add_argument(
        "--own-redis", action="store_true", help="a redis-server per side (another layout)"
    )


def worktree(stack: ExitStack, base: str) -> Path:
    """A checkout of `base` in a temp dir, removed when `stack` closes."""
    path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-ab-"))) / "base"
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(path), base], check=True)
    stack.callback(subprocess.run, [*git, "worktree", "remove", "--force", str(path)], check=False)
    return path


def _module_path(python: list[str], path: str) -> str:
    """Where `python` with PYTHONPATH `path` finds the rpc_svc package."""
    code = "import rpc_svc; print(rpc_svc.__file__)"
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run([*python, "-c", code], env=env, capture_output=True, text=True)
    return done.stdout.strip()


def base_rpc(
    work: Path, redis_url: str, base: Path, settings: dict[str, str]
) -> tuple[Process, str]:
    """An im-rpc (not started) of the checkout at `base`, and the rpc_svc module it runs;
    SystemExit when Python would not import that checkout's rpc_svc."""
    old = rpc_service(work, redis_url, None, PYTHONPATH=str(base), **settings)
    old.argv = [sys.executable, "-P", "-m", "rpc_svc"]  # -P: the worktree, not the cwd
    module = _module_path(old.argv[:2], str(base))
    if not module.startswith(str(base)):
        raise SystemExit(f"A would not run the base commit's im-rpc, but {module}")
    return old, module


def main(argv: list[str] | None = None) -> int:
    """Run the A/B, print every run and the medians."""
    args = comparison_args("perf.rpc_ab", __doc__ or "", argv, 6, 4, more=_options)
    scenarios = args.scenarios.split(",")
    with ExitStack() as stack:
        base = worktree(stack, args.base)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-ab-run-")))
        redises = {
            side: start_owned(stack, redis_server(work / f"redis-{side}", fsync="everysec"))
            for side in (("A", "B") if args.own_redis else ("A",))
        }
        redises.setdefault("B", redises["A"])
        stores = {side: f"redis://127.0.0.1:{r.port}/0" for side, r in redises.items()}
        old, module = base_rpc(work, stores["A"], base, {})
        rpcs = {
            "A": start_owned(stack, old),
            "B": start_owned(stack, rpc_service(work, stores["B"])),
        }
        gateways = {
            side: start_owned(stack, http_service(work, [rpc.port])) for side, rpc in rpcs.items()
        }
        print(f"A: im-rpc of {args.base} ({module}); B: this tree", flush=True)
        for side in ("A", "B") if args.own_redis else ("B",):
            if args.fill_seconds:
                fill = f"http://127.0.0.1:{gateways[side].port}"
                sent = run_wrk(fill, "send", 64, args.fill_seconds, chats=args.chats)
                print(f"filled {side}: {sent.requests:,} sends", flush=True)
        runs: dict[tuple[str, str], list[Sample]] = {}
        for r in range(args.rounds):
            sides = ("A", "B") if r % 2 == 0 else ("B", "A")
            for scenario in scenarios:
                for side in sides:
                    procs = {
                        "im-http": gateways[side],
                        "im-rpc": rpcs[side],
                        "redis": redises[side],
                    }
                    url = f"http://127.0.0.1:{gateways[side].port}"
                    run = measure(url, procs, scenario, args)
                    runs.setdefault((scenario, side), []).append(run)
                    cpu = "  ".join(f"{n} {us:5.1f}" for n, us in run.cpu_us.items())
                    print(f"round {r + 1} {scenario:>7} {side} {run.rps:9,.0f}/s  "
                          f"CPU µs per request: {cpu}", flush=True)  # fmt: skip
    for scenario in scenarios:
        a, b = runs[(scenario, "A")], runs[(scenario, "B")]
        ratios = [y.rps / x.rps for x, y in zip(a, b, strict=True)]
        cpu = "  ".join(
            f"{name} {statistics.median(x.cpu_us[name] for x in a):.1f} -> "
            f"{statistics.median(y.cpu_us[name] for y in b):.1f}"
            for name in a[0].cpu_us
        )
        rounds = ", ".join(f"{x:.2f}" for x in ratios)
        print(f"{scenario}: B/A {statistics.median(ratios):.3f} (rounds {rounds}); "
              f"CPU µs per request A -> B: {cpu}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
