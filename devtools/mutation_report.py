"""The mutation score per module, from `mutmut results --all true` (run in the folder that
holds mutants/): `python -m devtools.mutation_report`.

Each mutant is one small change to the code (an operator, a constant, a string, a call
argument); the tests that reach its function run against it. A killed mutant made a test
fail (or time out); a survivor did not; "no tests" means no test in the process reached it.
The score is killed / (killed + survived): the share of reached changes the tests notice.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable

_ROW = re.compile(r"^\s*(?P<name>[\w.ǁ]+)__mutmut_\d+: (?P<status>.+?)\s*$")
KILLED = {"killed", "timeout"}


def module_of(mutant: str) -> str:
    """The module of a mutant's name: rpc_svc.domain.names of
    rpc_svc.domain.names.x_parse_chat."""
    return mutant.split(".x", 1)[0]


def tally(lines: Iterable[str]) -> dict[str, Counter[str]]:
    """Per module, how many mutants ended in each status."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for line in lines:
        row = _ROW.match(line)
        if row:
            status = "killed" if row["status"] in KILLED else row["status"]
            counts[module_of(row["name"])][status] += 1
    return dict(counts)


def score(counts: Counter[str]) -> float:
    """killed / (killed + survived); 0 when no mutant was reached."""
    reached = counts["killed"] + counts["survived"]
    return counts["killed"] / reached if reached else 0.0


def render(counts: dict[str, Counter[str]]) -> str:
    """A markdown table: module, mutants, killed, survived, not reached, not run, score."""
    out = ["| module | mutants | killed | survived | no test reached | not run | score |"]
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    for module in sorted(counts):
        c = counts[module]
        out.append(
            f"| `{module}` | {sum(c.values())} | {c['killed']} | {c['survived']} | "
            f"{c['no tests']} | {c['not checked']} | {score(c):.1%} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the table for the mutants/ folder here."""
    argparse.ArgumentParser(description="The mutation score per module.").parse_args(argv)
    results = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sys.stdout.write(render(tally(results.splitlines())) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
