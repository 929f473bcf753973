"""How the store's records read: stream IDs and send times, a 1:1 chat's entries and tips,
a group's, a short chat's hash records, and read positions.

A message's stream ID is its send time (µs): "<send_time // 1000>-<send_time % 1000>", so
IDs sort as send times do and a cursor is an ID. A 1:1 chat's entry has one field `t`,
"<role><sent by role 0>:<sent by role 1>:<text>"; a group's one field `g`,
"<messages so far>:<sender>:<text>". A short chat's hash holds "<ID> <value>" records, the
value as its stream entry would hold it.
"""

from __future__ import annotations

from typing import Any

from rpc_svc.domain.values import NO_READ, Entry, GroupEntry, GroupTip, ReadMark, Tip

Rows = list[tuple[str, Any]]  # XRANGE's shape: [ID, [field, value]] each (a dict on a cluster)


def entry_id(send_time: int) -> str:
    """The stream ID of a send time in microseconds."""
    return f"{send_time // 1000}-{send_time % 1000}"


def send_time_of(entry_id_: str) -> int:
    """The send time in microseconds of a stream ID."""
    ms, _, seq = entry_id_.partition("-")
    return int(ms) * 1000 + int(seq)


def value_of(fields: Any) -> str:
    """An entry's one value: a raw reply lists [field, value]; the cluster client's pipeline
    makes it a dict."""
    value: str = fields[1] if type(fields) is list else next(iter(fields.values()))
    return value


def entries(rows: Rows) -> list[Entry]:
    """The entries of a 1:1 chat's XRANGE reply, in one loop: the hot path of a pull, where
    a named-tuple constructor per entry costs a tenth of it."""
    out: list[Entry] = []
    append = out.append
    for entry_id_, fields in rows:
        value = value_of(fields)
        text = value[value.index(":", value.index(":") + 1) + 1 :]
        role = 1 if value[0] == "1" else 0
        append(tuple.__new__(Entry, (send_time_of(entry_id_), role, text, 0)))
    return out


def pair_tip(entry_id_: str, value: str) -> Tip:
    """A 1:1 chat's entry with its tallies."""
    sent0, sent1, text = value[1:].split(":", 2)
    role = 1 if value[0] == "1" else 0
    return Tip(Entry(send_time_of(entry_id_), role, text), (int(sent0), int(sent1)))


def group_tip(entry_id_: str, value: str) -> GroupTip:
    """A group's entry with the group's message count up to it."""
    messages, sender, text = value.split(":", 2)
    return GroupTip(GroupEntry(send_time_of(entry_id_), sender, text), int(messages))


def pair_entry(send_time: int, value: str, change: int = 0) -> Entry:
    """A 1:1 chat's entry of a stored value (`change` as an Entry's)."""
    text = value[value.index(":", value.index(":") + 1) + 1 :]
    return tuple.__new__(Entry, (send_time, 1 if value[0] == "1" else 0, text, change))


def group_entry(send_time: int, value: str, change: int = 0) -> GroupEntry:
    """A group's entry of a stored value (`change` as a GroupEntry's)."""
    _count, sender, text = value.split(":", 2)
    return tuple.__new__(GroupEntry, (send_time, sender, text, change))


def group_entries(rows: Rows) -> list[GroupEntry]:
    """The entries of a group's XRANGE reply."""
    return [group_entry(send_time_of(entry_id_), value_of(fields)) for entry_id_, fields in rows]


def short_rows(
    values: list[str] | None, cursor: int, count: int, reverse: bool, field: str
) -> Rows:
    """The XRANGE-shaped rows of a short chat's hash values (each "<ID> <value>", in any
    order: a hash table answers so): up to `count` from `cursor` (inclusive; 0: from the
    oldest, or the newest when `reverse`)."""
    timed = []
    for record in values or ():
        entry_id_, _, value = record.partition(" ")
        timed.append((send_time_of(entry_id_), entry_id_, value))
    timed.sort(reverse=reverse)
    rows: Rows = []
    for at, entry_id_, value in timed:
        if cursor and ((at > cursor) if reverse else (at < cursor)):
            continue
        rows.append((entry_id_, [field, value]))
        if len(rows) == count:
            break
    return rows


def change_of(member: str) -> tuple[int, int, str]:
    """(send time, change, text now) of a member of a chat's changes set: change is the
    edit's edited_at, or minus the recall's time (and no text: a recall's member may end in
    a '.', lua/recall_done.lua)."""
    send_time, _, rest = member.partition(":")
    at, _, text = rest[1:].partition(":")
    if rest[0] == "e":
        return int(send_time), int(at), text
    return int(send_time), -int(at), ""


def with_changes(entries: list[Any], members: list[str]) -> list[Any]:
    """`entries` (Entry or GroupEntry) as their messages are now: each edited or recalled
    one of `members` (the changes set's, for the entries' range) changed."""
    changes = {}
    for member in members:
        send_time, change, text = change_of(member)
        changes[send_time] = (change, text)
    if not changes:
        return entries
    out = []
    for entry in entries:
        found = changes.get(entry.send_time)
        out.append(entry if found is None else entry._replace(text=found[1], change=found[0]))
    return out


def mark_of(mark: str) -> int:
    """The change of a script's mark ('' none, 'e<edited at>', 'r<recalled at>')."""
    if not mark:
        return 0
    return int(mark[1:]) if mark[0] == "e" else -int(mark[1:])


def mark(value: str | None) -> ReadMark:
    """A read position as the user's read hash holds it ("" or None: none)."""
    if not value:
        return NO_READ
    send_time, first, second = value.split(":")
    return ReadMark(int(send_time), (int(first), int(second)))
