"""The store's Lua scripts: one `.lua` file each, run atomically on the Redis (or cluster
node) of their keys with EVALSHA.

A script's first line may name the helper files it uses (`-- uses: timeline, members`):
their text goes before the script's own, in that order, so a script is one self-contained
text with one SHA1. Only the helpers' definitions the script names go in (and those they
name, in turn): EVALSHA runs a script's whole text on each call, and each function defined
there is made again (sync's unused ones cost 2% of its call). Each script's header comment
says its KEYS, ARGV, answer and bound (the entries and keys it touches for its worst input).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable

_HERE = files(__package__)
_USES = "-- uses:"
# a helper file's definitions start at column 0: "local function f(" or "local a, b ="
_DEFINES = re.compile(r"local (?:function (\w+)|([\w, ]+?)\s*=)")
_NAME = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Script:
    """A Lua script, its name and the SHA1 that EVALSHA names it by."""

    name: str
    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())


def _read(name: str, where: Traversable) -> str:
    return (where / f"{name}.lua").read_text(encoding="utf-8")


def load(name: str, where: Traversable = _HERE) -> Script:
    """The script `name`.lua with the helpers it names in front (from the folder `where`:
    this package's, or another commit's for a benchmark)."""
    own = _read(name, where)
    first, _, rest = own.partition("\n")
    if not first.startswith(_USES):
        return Script(name, own)
    helpers = [h.strip() for h in first.removeprefix(_USES).split(",")]
    return Script(name, _used("".join(_read(h, where) for h in helpers), rest) + rest)


def _statements(helpers: str) -> list[tuple[str, set[str]]]:
    """The helpers' text cut into its top-level statements, each with the names it defines
    (none for a comment, a blank line or a statement that defines nothing: those always
    stay). A definition runs from its line `local ...` over the lines that start indented or
    with `end`, `}` or `)` (its body and its close)."""
    out: list[tuple[str, set[str]]] = []
    for line in helpers.splitlines(keepends=True):
        if line.startswith("local "):
            defines = _DEFINES.match(line)
            names = (defines[1] or defines[2]) if defines else ""
            out.append((line, {n.strip() for n in names.split(",") if n.strip()}))
        elif out and out[-1][1] and line.startswith((" ", "\t", "end", "}", ")")):
            out[-1] = (out[-1][0] + line, out[-1][1])
        else:
            out.append((line, set()))
    return out


def _used(helpers: str, body: str) -> str:
    """The helpers' text without the definitions that `body` does not name, directly or
    through a definition it keeps (a name in a comment counts: at worst one kept too many)."""
    statements = _statements(helpers)
    named = set(_NAME.findall(body))
    for text, defines in statements:  # (what always stays names what it needs)
        if not defines and not text.startswith("--"):
            named |= set(_NAME.findall(text))
    kept = [False] * len(statements)
    grew = True
    while grew:
        grew = False
        for i, (text, defines) in enumerate(statements):
            if not kept[i] and defines & named:
                kept[i], grew = True, True
                named |= set(_NAME.findall(text))
    return "".join(
        text for (text, defines), k in zip(statements, kept, strict=True) if k or not defines
    )


SEND = load("send")
MARK_READ = load("mark_read")
INBOX = load("inbox")
INBOX_PAGE = load("inbox_page")
GROUP_CREATE = load("group_create")
GROUP_INFO = load("group_info")
GROUP_ADD = load("group_add")
GROUP_REMOVE = load("group_remove")
GROUP_SEND = load("group_send")
GROUP_READ = load("group_read")
GROUP_MARK = load("group_mark")
GROUP_TIPS = load("group_tips")
USER_RESERVE = load("user_reserve")
USER_SIDE = load("user_side")
GROUP_STATE = load("group_state")
USER_GROUPS = load("user_groups")
BIG_NOTE = load("big_note")
BIG_CHANGED = load("big_changed")
USER_NOTE = load("user_note")
SYNC = load("sync")
SPAN = load("span")
CHANGE = load("change")
GROUP_CHANGE = load("group_change")
CHANGE_NOTE = load("change_note")
ERASE_STEP = load("erase_step")
ERASE_TAIL = load("erase_tail")
RECALL_DONE = load("recall_done")
LUA_NUMBERS = load("lua_numbers")

SCRIPTS = (
    SEND, MARK_READ, INBOX, INBOX_PAGE, GROUP_CREATE, GROUP_INFO, GROUP_ADD, GROUP_REMOVE,
    GROUP_SEND, GROUP_READ, GROUP_MARK, GROUP_TIPS, USER_RESERVE, USER_SIDE, GROUP_STATE,
    USER_GROUPS, BIG_NOTE, BIG_CHANGED, USER_NOTE, SYNC, SPAN, CHANGE, GROUP_CHANGE, CHANGE_NOTE,
    ERASE_STEP, ERASE_TAIL, RECALL_DONE, LUA_NUMBERS,
)  # fmt: skip
# the scripts that write: with IM_REDIS_WAIT_REPLICAS, a WAIT follows them
WRITES = (
    SEND, MARK_READ, INBOX, INBOX_PAGE, GROUP_CREATE, GROUP_ADD, GROUP_REMOVE, GROUP_SEND,
    USER_RESERVE, USER_SIDE, USER_GROUPS, BIG_NOTE, USER_NOTE, SYNC, CHANGE, GROUP_CHANGE,
    CHANGE_NOTE, ERASE_STEP, ERASE_TAIL, RECALL_DONE,
)  # fmt: skip
