"""What authentication costs: send and pull10 through a gateway with it off, on, and on
without the cache of verified tokens, interleaved (A/B/C, A/B/C, ...) on one im-rpc.

    python -m perf.auth [--seconds 5] [--rounds 5] [--connections 64]

Each simulated user has its own ES256 token (perf/tokens.py). The gateways run one at a
time; the order of the three rotates every round. Prints the medians, each round's ratio
to "off" (median of the rounds' ratios) and the gateway's CPU time per request (read from
/proc: less noisy than throughput on a shared machine), writes auth.md into the report
directory, and audits
every acknowledged send (read back as a member, with tokens): exit 1 when one is lost,
duplicated or out of order.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from devtools.procs import http_service, redis_server, rpc_service
from perf.audit import run_audit
from perf.lib.procstats import cpu_seconds, pid_of
from perf.lib.rounds import Samples, interleaved, log
from perf.lib.stack import comparison_args, make_keys, start_owned
from perf.report import write_table
from perf.tokens import load_users, read_tokens, write_tokens
from perf.wrk import run_wrk

SCENARIOS = ("send", "pull10")
CHATS = 200
PREFIX = "auth"


def _variants(public: Path) -> dict[str, dict[str, str]]:
    """Each gateway's settings: authentication off, on, on without the cache."""
    on = {"IM_AUTH_JWKS_FILE": str(public)}
    return {"off": {}, "on": on, "on, no cache": {**on, "IM_AUTH_CACHE_SIZE": "0"}}


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the table; 1 if the audit failed."""
    args = comparison_args("perf.auth", __doc__, argv, seconds=5, rounds=5)
    rps: Samples[float] = Samples()
    p99: Samples[float] = Samples()
    cpu_us: Samples[float] = Samples()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-auth-")))
        redis = start_owned(stack, redis_server(work / "redis", fsync="everysec"))
        rpc = start_owned(stack, rpc_service(work, f"redis://127.0.0.1:{redis.port}/0"))
        signing, public = make_keys(work)
        tokens = write_tokens(work / "tokens.txt", load_users(PREFIX, CHATS), signing)
        gateways = {
            name: start_owned(stack, http_service(work, [rpc.port], None, **env))
            for name, env in _variants(public).items()
        }
        urls = {name: f"http://127.0.0.1:{g.port}" for name, g in gateways.items()}
        acks = work / "acks.txt"
        names = list(urls)
        for url in urls.values():  # warm up each gateway (and fill the chats for pull10)
            run_wrk(
                url,
                "send",
                args.connections,
                2,
                chats=CHATS,
                prefix=PREFIX,
                tokens=tokens,
                acks=acks,
            )
        for r, scenario, name in interleaved(args.rounds, names, SCENARIOS, rotate=True):
            pid = pid_of(gateways[name])
            cpu = cpu_seconds(pid)
            got = run_wrk(
                urls[name],
                scenario,
                args.connections,
                args.seconds,
                chats=CHATS,
                prefix=PREFIX,
                tokens=tokens,
                acks=acks if scenario == "send" else None,
            )
            if got.error_count:
                raise SystemExit(f"{name} {scenario}: {got.errors} (tokens refused?)")
            used = (cpu_seconds(pid) - cpu) / max(got.requests, 1) * 1e6
            cpu_us.add((name, scenario), used)
            rps.add((name, scenario), got.rps)
            p99.add((name, scenario), got.p99_ms)
            log("auth", f"round {r + 1} {scenario:>6} {name:<13} {got.rps:>8,.0f}/s "
                        f"p99 {got.p99_ms:.2f} ms, gateway CPU {used:.0f} us/request")  # fmt: skip
        audit = asyncio.run(run_audit(urls["on"], [acks], tokens=read_tokens(tokens)))
        log("auth", audit.line())
    lines = [
        f"Authentication off / on / on without the token cache, at {args.connections} "
        f"connections: medians of {args.rounds} interleaved rounds of {args.seconds:g} s (one "
        f"im-http, one im-rpc, redis-server and wrk on this machine; {CHATS * 2 + 2} users, an "
        "ES256 token each):",
        "",
        "| scenario | gateway | req/s | of off (median of the rounds' ratios) | p99 ms "
        "| gateway CPU µs/request |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in SCENARIOS:
        for name in names:
            key = (name, scenario)
            ratio = rps.ratio(key, ("off", scenario))
            lines.append(
                f"| {scenario} | {name} | {rps.median(key):,.0f} | {ratio:.1%} | "
                f"{p99.median(key):.2f} | {cpu_us.median(key):.1f} |"
            )
    lines += ["", audit.line()]
    write_table(args.out, "auth.md", lines)
    return 0 if audit.ok else 1


if __name__ == "__main__":
    sys.exit(main())
