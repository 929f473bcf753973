"""The mutation report's tally: statuses per module, and the score over reached mutants."""

from __future__ import annotations

from devtools.mutation_report import module_of, render, score, tally

RESULTS = """\
    http_svc.params.x_int_param__mutmut_1: killed
    http_svc.params.x_int_param__mutmut_2: survived
    http_svc.params.x__body_params__mutmut_3: no tests
    http_svc.params.x_bool_param__mutmut_4: timeout
    rpc_svc.domain.names.xǁChatǁrole_of__mutmut_7: survived
    rpc_svc.domain.names.x_parse_chat__mutmut_1: killed
    rpc_svc.domain.names.x_parse_chat__mutmut_2: killed
    rpc_svc.domain.names.x_parse_chat__mutmut_3: killed
    rpc_svc.domain.names.x_parse_chat__mutmut_4: not checked
"""


def test_mutants_are_counted_per_module_and_status() -> None:
    counts = tally(RESULTS.splitlines())
    assert dict(counts["http_svc.params"]) == {"killed": 2, "survived": 1, "no tests": 1}
    assert dict(counts["rpc_svc.domain.names"]) == {"killed": 3, "survived": 1, "not checked": 1}
    assert module_of("rpc_svc.domain.names.xǁChatǁrole_of") == "rpc_svc.domain.names"


def test_the_score_counts_only_reached_mutants() -> None:
    counts = tally(RESULTS.splitlines())
    assert score(counts["http_svc.params"]) == 2 / 3
    assert score(counts["rpc_svc.domain.names"]) == 3 / 4
    table = render(counts).splitlines()
    assert table[2] == "| `http_svc.params` | 4 | 2 | 1 | 1 | 0 | 66.7% |"
    assert table[3] == "| `rpc_svc.domain.names` | 5 | 3 | 1 | 0 | 1 | 75.0% |"
