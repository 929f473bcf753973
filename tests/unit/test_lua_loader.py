"""The script loader: a script's `-- uses:` helpers go in front of its text, and only the
definitions it names, directly or through a definition kept (EVALSHA runs the whole text on
each call). Every script of the store then runs in the integration tests."""

from __future__ import annotations

import re
from pathlib import Path

from rpc_svc.store.lua import SCRIPTS, SEND, SYNC, load

HELPERS = """\
-- helpers of a test: the header names used_a, dropped_b
local function used_a(x)
  return inner_c(x) + 1
end
local function dropped_b() return dropped_d() end
local LIMIT, SPARE = 7, {
  a = 1,
}
local function inner_c(x) return x * LIMIT end
local function dropped_d() return 0 end
local function table_user() return SPARE end

local function last_e()  -- a comment that names dropped_d
  return 5
end
"""


def _defined(text: str) -> list[str]:
    return re.findall(r"^local function (\w+)", text, re.M)


def _script(tmp_path: Path, body: str) -> str:
    (tmp_path / "helpers.lua").write_text(HELPERS, encoding="utf-8")
    (tmp_path / "job.lua").write_text(f"-- uses: helpers\n{body}", encoding="utf-8")
    return load("job", tmp_path).text


def test_only_what_the_script_names_goes_in_with_what_that_names(tmp_path: Path) -> None:
    text = _script(tmp_path, "return used_a(KEYS[1])\n")
    assert _defined(text) == ["used_a", "inner_c"]  # inner_c: named by used_a
    assert "local LIMIT, SPARE = 7, {\n  a = 1,\n}\n" in text  # named by inner_c, kept whole
    assert text.startswith("-- helpers of a test")  # comments stay
    assert text.endswith("return used_a(KEYS[1])\n")


def test_a_definition_of_two_names_stays_for_either(tmp_path: Path) -> None:
    text = _script(tmp_path, "return table_user()\n")
    assert _defined(text) == ["table_user"]
    assert "local LIMIT, SPARE" in text


def test_a_name_in_a_kept_comment_keeps_its_definition_too(tmp_path: Path) -> None:
    text = _script(tmp_path, "return last_e()\n")  # (its comment names dropped_d)
    assert _defined(text) == ["dropped_d", "last_e"]
    assert text.index("local function dropped_d") < text.index("local function last_e")


def test_a_script_that_names_no_helper_gets_their_comments_alone(tmp_path: Path) -> None:
    text = _script(tmp_path, "return 0\n")  # (no line of a definition left: its `}` too)
    assert text == "-- helpers of a test: the header names used_a, dropped_b\n\nreturn 0\n"


def test_the_store_scripts_leave_out_the_helpers_they_do_not_name() -> None:
    sync = set(_defined(SYNC.text))
    assert {"tl_at", "feed_catch_up", "short_get"} <= sync
    assert not {"remember", "tl_append", "note_pair"} & sync
    send = set(_defined(SEND.text))
    assert {"tl_append", "note_pair", "feed_push"} <= send
    assert not {"tl_after", "feed_catch_up"} & send
    for script in SCRIPTS:  # each defined name is defined once
        names = _defined(script.text)
        assert len(names) == len(set(names)), script.name


def test_a_statement_that_defines_nothing_stays_with_what_it_names(tmp_path: Path) -> None:
    (tmp_path / "setup.lua").write_text(
        "local function checked() return 1 end\nlocal function unused() return 2 end\n"
        "assert(checked() == 1)\n",
        encoding="utf-8",
    )
    (tmp_path / "job.lua").write_text("-- uses: setup\nreturn 0\n", encoding="utf-8")
    text = load("job", tmp_path).text
    assert _defined(text) == ["checked"]
    assert "assert(checked() == 1)\n" in text
