"""What the scaled topology costs: the same load straight to a gateway and through nginx.

    python -m perf.nginx [--seconds 6] [--rounds 3] [--connections 64]

One stack found through etcd (Redis with AOF, etcd, two im-rpc, two gateways) and
two nginx processes from deploy/nginx/im.conf.template: one in front of gateway 1,
one in front of both. wrk runs /ping and send against gateway 1 directly and against
each nginx, visiting the three targets in turn every round, each first in its turn
(interleaved). It prints a table of medians and writes nginx.md into the report directory.
"""

from __future__ import annotations

import statistics
import sys
from contextlib import ExitStack

from devtools.procs import nginx_server
from perf.lib.rounds import interleaved, log
from perf.lib.stack import ScaledStack, comparison_args, start_owned
from perf.report import write_table
from perf.wrk import run_wrk

SCENARIOS = ("ping", "send")
TARGETS = ("gateway 1 directly", "nginx -> gateway 1", "nginx -> gateways 1 and 2")


def main(argv: list[str] | None = None) -> int:
    """Start the stack, measure every target, print and write the table."""
    args = comparison_args("perf.nginx", __doc__, argv, seconds=6, rounds=3)
    runs: dict[str, list[dict[str, float]]] = {t: [] for t in TARGETS}
    with ExitStack() as stack:
        scaled = ScaledStack(stack, "im-nginx-")
        work, gateways = scaled.work, scaled.gateways
        one = start_owned(stack, nginx_server(work, [gateways[0].port]))
        both = start_owned(stack, nginx_server(work, [g.port for g in gateways]))
        urls = dict(zip(TARGETS, (gateways[0], one, both), strict=True))
        for r, _, target in interleaved(args.rounds, TARGETS, rotate=True):
            url = f"http://127.0.0.1:{urls[target].port}"
            result = {
                s: run_wrk(url, s, args.connections, args.seconds, prefix=f"ng{r}").rps
                for s in SCENARIOS
            }
            runs[target].append(result)
            log("nginx", f"round {r + 1}: {target}: "
                         + ", ".join(f"{k} {v:,.0f}/s" for k, v in result.items()))  # fmt: skip
    lines = [
        f"Through nginx or not, {args.connections} connections, medians of {args.rounds} "
        f"interleaved rounds of {args.seconds:g} s (2 im-rpc found through etcd; wrk, nginx "
        "and every process on the same 2-core machine):",
        "",
        "| target | /ping req/s | send req/s |",
        "| --- | --- | --- |",
    ]
    for target, results in runs.items():
        med = {s: statistics.median(r[s] for r in results) for s in SCENARIOS}
        lines.append(f"| {target} | {med['ping']:,.0f} | {med['send']:,.0f} |")
    write_table(args.out, "nginx.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
