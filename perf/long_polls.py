"""Waiting clients at scale: many concurrent long polls held by one gateway and one im-rpc
while sends land on the polled chats.

Starts redis-server, one im-rpc and one im-http (one worker) on loopback, opens `--polls`
keep-alive connections that each long-poll their own chat (`wait_ms` 30,000, polling again
from `next_cursor` after every answer), then sends `--rate` messages a second for
`--seconds` seconds, spread evenly over the polled chats, and waits until every poll has
seen every message of its chat (or `--drain` seconds pass). Prints:

  - how long the polls took to open, and the sends/s reached;
  - wake-up latency, from a message's send_time (Redis's clock, this machine) to its
    poller reading the answer: p50, p99, max;
  - errors: non-200 answers, broken connections, messages never seen;
  - RSS and open file descriptors of im-http and im-rpc: before the polls, with every poll
    waiting, and at the end of the sends.

    python -m perf.long_polls [--polls 10000] [--rate 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field

import orjson
import uvloop

from devtools.procs import Process
from devtools.rawhttp import Connection
from perf.lib.procstats import cpu_seconds, pid_of, usage
from perf.lib.stack import raise_fd_limit, waiting_trio

WAIT_MS = 30_000


@dataclass
class Tally:
    """What the pollers and senders saw."""

    latencies_us: list[int] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    empty: int = 0  # polls that ran out their wait (200, no message)
    sending: bool = True
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self) -> None:
        """Set caught_up once the sends are over and every sent message was seen."""
        if not self.sending and sum(self.seen.values()) >= sum(self.sent.values()):
            self.caught_up.set()


def chat_of(i: int) -> str:
    """The chat poller i waits on."""
    return f"lp{i:05d}:peer{i:05d}"


async def poller(
    port: int, i: int, tally: Tally, opened: asyncio.Event, done: asyncio.Event
) -> None:
    """Long-poll chat i from its start until `done`, recording each message's wake-up."""
    chat = chat_of(i)
    conn = await Connection.open(port)
    cursor = 0
    try:
        while not done.is_set():
            path = f"/api/pull?chat={chat}&cursor={cursor}&limit=100&wait_ms={WAIT_MS}"
            opened.set()  # get() writes the request before this task yields
            answer = await conn.get(path)
            now_us = time.time_ns() // 1000
            if answer.status != 200:
                tally.errors[f"pull {answer.status}"] += 1
                await asyncio.sleep(0.1)
                continue
            page = orjson.loads(answer.body)
            if not page["messages"]:
                tally.empty += 1
            for message in page["messages"]:
                tally.latencies_us.append(now_us - message["send_time"])
                tally.seen[chat] += 1
            tally.check()
            cursor = page["next_cursor"] or cursor
    except (OSError, asyncio.IncompleteReadError) as exc:
        if not done.is_set():
            tally.errors[f"poll connection: {type(exc).__name__}"] += 1
    finally:
        with contextlib.suppress(OSError):
            await conn.close()


async def sender(port: int, chats: list[str], rate: float, seconds: float, tally: Tally) -> None:
    """Send `rate` messages a second for `seconds` on `chats` in turn, over 32 connections."""
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)

    async def worker() -> None:
        conn = await Connection.open(port)
        try:
            while (chat := await queue.get()) is not None:
                body = {"chat": chat, "sender": chat.split(":")[1], "text": "hi"}
                answer = await conn.post_json("/api/send", body)
                if answer.status == 200:
                    tally.sent[chat] += 1
                else:
                    tally.errors[f"send {answer.status}"] += 1
        finally:
            await conn.close()

    workers = [asyncio.create_task(worker()) for _ in range(32)]
    start = time.monotonic()
    for n, chat in enumerate(itertools.islice(itertools.cycle(chats), int(rate * seconds))):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await queue.put(chat)
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)


async def measure(args: argparse.Namespace, gateway: Process, rpc: Process) -> int:
    """Run the polls and sends; print the figures; 1 when a poll missed a message or
    anything failed."""
    port, tally = gateway.port, Tally()
    done = asyncio.Event()
    base = {"im-http": usage(gateway), "im-rpc": usage(rpc)}
    t0 = time.monotonic()
    opened_all = []
    tasks = []
    for i in range(args.polls):
        opened = asyncio.Event()
        tasks.append(asyncio.create_task(poller(port, i, tally, opened, done)))
        opened_all.append(opened)
        if i % 500 == 499:
            await asyncio.gather(*(e.wait() for e in opened_all[-500:]))
    await asyncio.gather(*(e.wait() for e in opened_all))
    await asyncio.sleep(1.0)  # the last requests reach im-rpc and wait
    opened_s = time.monotonic() - t0
    waiting = {"im-http": usage(gateway), "im-rpc": usage(rpc)}
    print(f"[long_polls] {args.polls:,} polls open in {opened_s:.1f} s", file=sys.stderr)
    chats = [chat_of(i) for i in range(args.polls)]
    cpu0 = {name: cpu_seconds(pid_of(p)) for name, p in (("im-http", gateway), ("im-rpc", rpc))}
    cpu0["load client"] = time.process_time()
    t1 = time.monotonic()
    await sender(port, chats, args.rate, args.seconds, tally)
    send_s = time.monotonic() - t1
    cpu = {name: cpu_seconds(pid_of(p)) for name, p in (("im-http", gateway), ("im-rpc", rpc))}
    cpu["load client"] = time.process_time()
    busy = {name: (cpu[name] - cpu0[name]) / send_s for name in cpu}
    loaded = {"im-http": usage(gateway), "im-rpc": usage(rpc)}
    tally.sending = False
    tally.check()
    with contextlib.suppress(TimeoutError):  # what is still unseen counts as missed below
        await asyncio.wait_for(tally.caught_up.wait(), args.drain)
    done.set()
    missed = sum(max(0, n - tally.seen[c]) for c, n in tally.sent.items())
    extra = sum(max(0, n - tally.sent[c]) for c, n in tally.seen.items())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    sent = sum(tally.sent.values())
    lat = sorted(tally.latencies_us)
    p50 = statistics.median(lat) / 1000 if lat else float("nan")
    p99 = lat[int(len(lat) * 0.99) - 1] / 1000 if lat else float("nan")
    print(f"polls: {args.polls:,} concurrent long polls (wait_ms {WAIT_MS}), opened in "
          f"{opened_s:.1f} s")  # fmt: skip
    print(f"sends: {sent:,} acknowledged in {send_s:.1f} s = {sent / send_s:,.0f}/s "
          f"(target {args.rate:,.0f}/s)")  # fmt: skip
    print(f"wake-ups: {len(lat):,} messages seen by their pollers; latency p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms, max {lat[-1] / 1000 if lat else float('nan'):.1f} ms")  # fmt: skip
    print(f"missed: {missed} messages never seen, {extra} seen twice or unsent; "
          f"errors: {dict(tally.errors) or 'none'}; polls that ran out their wait: "
          f"{tally.empty}")  # fmt: skip
    shares = ", ".join(f"{name} {share:.0%}" for name, share in busy.items())
    print(f"CPU during the sends (of one core): {shares}")
    print("| process | RSS MB idle | RSS MB, polls waiting | RSS MB, end of sends "
          "| fds idle | fds, polls waiting | fds, end of sends |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in ("im-http", "im-rpc"):
        (r0, f0), (r1, f1), (r2, f2) = base[name], waiting[name], loaded[name]
        print(f"| {name} | {r0:.0f} | {r1:.0f} | {r2:.0f} | {f0} | {f1} | {f2} |")
    return 1 if missed or extra or tally.errors else 0


def main(argv: list[str] | None = None) -> int:
    """Start the stack, measure, print; 1 on any miss or error."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--polls", type=int, default=10_000, help="concurrent long polls")
    p.add_argument("--rate", type=float, default=1000.0, help="sends per second")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to send")
    p.add_argument("--drain", type=float, default=35.0, help="most seconds to wait at the end")
    args = p.parse_args(argv)
    raise_fd_limit()
    with ExitStack() as stack:
        trio = waiting_trio(stack, args.polls, "im-polls-")
        # the load client on uvloop, as the services run (perf/README.md, "10,000 waiting clients")
        return uvloop.run(measure(args, trio.gateways[0], trio.rpc))


if __name__ == "__main__":
    sys.exit(main())
