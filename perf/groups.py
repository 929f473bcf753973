"""What group chats cost: a send to a 1,000-member group (big: no write per member) and to a
100-member group (small: one inbox write per member) against a 1:1 send, and the inbox of a
user in 200 groups and 200 1:1 chats against a 10-message pull, interleaved.

    python -m perf.groups [--seconds 5] [--rounds 5] [--members 1000] [--groups 200]

One redis-server, one im-rpc, one gateway (stream mode). Set-up (through the API): 10 groups
of `--members` members each, 10 of `--small-members`, and a user ("hub") in `--groups` groups
and as many 1:1 chats, each with a message. Each round runs, in turn: 1:1 send and the two
group sends at 64 connections, pull10 and the hub's inbox (10 rows) at 20. Prints and writes
groups.md (medians; ratios are the median of each round's own ratio), then audits every
acknowledged send, group messages included: exit 1 when one is lost, duplicated or out of
order.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

from devtools.procs import start_trio
from perf.audit import run_audit
from perf.lib.rounds import Samples, interleaved, log
from perf.lib.stack import raise_fd_limit
from perf.report import write_table
from perf.wrk import P99, RPS, WrkResult, run_wrk

PREFIX = "grp"
SMALL = "grs"  # the small groups' prefix
BIG_GROUPS = 10
CHATS = 200


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m perf.groups", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=5, help="length of each wrk run")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians kept)")
    p.add_argument("--members", type=int, default=1000, help="members of each big group")
    p.add_argument("--small-members", type=int, default=100, help="members of each small group")
    p.add_argument("--groups", type=int, default=200, help="groups (and 1:1 chats) of the hub")
    p.add_argument("--out", type=Path, help="report directory (default perf/reports)")
    return p.parse_args(argv)


async def _post_all(
    url: str, calls: list[tuple[str, dict[str, str]]], concurrency: int = 64
) -> None:
    """POST every (path, body), `concurrency` at a time; each must answer 200."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(path: str, body: dict[str, str]) -> None:
            async with gate:
                answer = await client.post(path, json=body)
                if answer.status_code != 200:
                    raise SystemExit(f"set-up failed: {path} {body}: {answer.text}")

        await asyncio.gather(*(one(path, body) for path, body in calls))


async def _groups_of(url: str, prefix: str, members: int) -> None:
    owner = f"{prefix}m1"
    groups = [f"#{prefix}g{i}" for i in range(1, BIG_GROUPS + 1)]
    await _post_all(url, [("/api/groups", {"chat": g, "user": owner}) for g in groups])
    adds = [
        ("/api/groups/add", {"chat": g, "user": owner, "member": f"{prefix}m{j}"})
        for g in groups
        for j in range(2, members + 1)
    ]
    await _post_all(url, adds)


async def set_up(url: str, members: int, small_members: int, groups: int) -> None:
    """The big and small groups, and the hub's groups and 1:1 chats, each with a message."""
    await _groups_of(url, PREFIX, members)
    await _groups_of(url, SMALL, small_members)
    hub = f"{PREFIX}hub"
    mine = [f"#{PREFIX}h{i}" for i in range(groups)]
    await _post_all(url, [("/api/groups", {"chat": g, "user": hub}) for g in mine])
    sends = [("/api/send", {"chat": g, "sender": hub, "text": "hi"}) for g in mine]
    sends += [
        ("/api/send", {"chat": f"{hub}:{PREFIX}p{i}", "sender": f"{PREFIX}p{i}", "text": "hi"})
        for i in range(groups)
    ]
    await _post_all(url, sends)


def main(argv: list[str] | None = None) -> int:
    """Set up, measure, print and write the table; 1 if the audit failed."""
    args = _args(argv)
    raise_fd_limit()
    runs: Samples[WrkResult] = Samples()  # by scenario
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-groups-")))
        trio = start_trio(work, fsync="everysec")
        stack.callback(trio.stop)
        url = trio.url()
        log("groups", f"set-up: {BIG_GROUPS} groups of {args.members}, a hub in "
                      f"{args.groups} groups and {args.groups} chats")  # fmt: skip
        asyncio.run(set_up(url, args.members, args.small_members, args.groups))
        acks = work / "acks.txt"
        common = {"prefix": PREFIX, "members": args.members}
        run_wrk(url, "send", 64, 2, chats=CHATS, acks=acks, **common)  # fills chats for pull10
        plan = [
            ("send", "send", 64, CHATS, common),
            ("gsend", "gsend", 64, BIG_GROUPS, common),
            ("small", "gsend", 64, BIG_GROUPS, {"prefix": SMALL, "members": args.small_members}),
            ("pull10", "pull10", 20, CHATS, common),
            ("chats10", "chats10", 20, CHATS, common),
        ]
        for r, _, (scenario, mode, conns, chats, names) in interleaved(
            args.rounds, plan, rotate=True
        ):
            got = run_wrk(
                url,
                mode,
                conns,
                args.seconds,
                chats=chats,
                acks=acks if "send" in mode else None,
                **names,
            )
            if got.error_count:
                raise SystemExit(f"{scenario}: errors {got.errors}")
            runs.add(scenario, got)
            log("groups", f"round {r + 1} {scenario:>7} c={conns} {got.rps:>8,.0f}/s "
                          f"p99 {got.p99_ms:.2f} ms")  # fmt: skip
        audit = asyncio.run(run_audit(url, [acks]))
        log("groups", audit.line())
    med = {s: runs.median(s, RPS) for s in runs.by_key}
    p99 = {s: runs.median(s, P99) for s in runs.by_key}
    send_ratio = runs.ratio("gsend", "send", RPS)
    small_ratio = runs.ratio("small", "send", RPS)
    p99_ratio = runs.ratio("chats10", "pull10", P99)
    lines = [
        f"Group chats: medians of {args.rounds} interleaved rounds of {args.seconds:g} s (one "
        "im-http, one im-rpc, redis-server and wrk on this machine):",
        "",
        "| scenario | connections | req/s | p99 ms |",
        "| --- | --- | --- | --- |",
        f"| 1:1 send ({CHATS} chats) | 64 | {med['send']:,.0f} | {p99['send']:.2f} |",
        f"| group send ({BIG_GROUPS} groups of {args.members} members) | 64 | "
        f"{med['gsend']:,.0f} | {p99['gsend']:.2f} |",
        f"| small group send ({BIG_GROUPS} groups of {args.small_members} members) | 64 | "
        f"{med['small']:,.0f} | {p99['small']:.2f} |",
        f"| pull, 10 messages | 20 | {med['pull10']:,.0f} | {p99['pull10']:.2f} |",
        f"| inbox of a user in {args.groups} groups and {args.groups} 1:1 chats, 10 rows | 20 | "
        f"{med['chats10']:,.0f} | {p99['chats10']:.2f} |",
        "",
        f"big group send / 1:1 send: **{send_ratio:.1%}** (target >= 80%); small group send / "
        f"1:1 send: **{small_ratio:.1%}**; inbox p99 / pull10 p99: **{p99_ratio:.2f}** "
        "(target <= 2).",
        "",
        audit.line(),
    ]
    write_table(args.out, "groups.md", lines)
    return 0 if audit.ok else 1


if __name__ == "__main__":
    sys.exit(main())
