"""The store's operations: what the services ask of the store, each a value whose outcome
the store answers (`Store.execute`), and the steps a cluster backend takes for some of them.

Each operation's docstring says its outcome; a refusal of a group operation is a negative
code (rpc_svc.domain.refusals). A failure is a StoreError in the outcome's place.
"""

from __future__ import annotations

from typing import NamedTuple

from rpc_svc.domain.limits import DEFAULT_MAX_GROUPS
from rpc_svc.domain.values import ReadMark

# What the services ask: 1:1 chats.


class Append(NamedTuple):
    """Store one message of `role` in `chat`, idempotent on a non-empty client_msg_id
    (remembered 24 h), else on a non-empty retry_key (remembered briefly): its send time."""

    chat: str
    role: int
    text: str
    client_msg_id: str = ""
    retry_key: str = ""


class Read(NamedTuple):
    """Up to `entries` entries of `chat` from `cursor` (inclusive): a list of Entry."""

    chat: str
    cursor: int
    entries: int
    reverse: bool


class Latest(NamedTuple):
    """The last message of `chat` at or before `at` (0: the newest), with its tally: a Tip,
    or None."""

    chat: str
    at: int = 0


class MarkRead(NamedTuple):
    """Move `user`'s read position in `chat` forward to `mark` (never back): the position
    kept (a ReadMark). A move is a read event in the user's sync feed unless `event` is
    False (the position a join sets); in a group after the messages up to `newest` and the
    change log's records up to `changes` (accepted before it; `log`: lua/feed.lua's
    log_newest of those records, which a cluster's step reads)."""

    user: str
    chat: str
    mark: ReadMark
    event: bool = True
    newest: int = 0
    changes: int = 0
    log: str = ""


# What the services ask: groups and the inbox.


class CreateGroup(NamedTuple):
    """Make group `chat` with `owner` its only member: 1, 0 when it exists, or -6 when the
    owner is in `max_groups` groups already (`fits` False: a cluster's reservation on the
    owner's side says so)."""

    chat: str
    owner: str
    max_groups: int = DEFAULT_MAX_GROUPS
    fits: bool = True


class GroupInfo(NamedTuple):
    """The group (a Group), or a refusal code; with `actor`, only for a member."""

    chat: str
    actor: str = ""


class AddMember(NamedTuple):
    """`user` (a member) adds `member`, the member's side with it: (code, the Group or None,
    the member's read position on joining, the group's change log's length then, whether
    the group turned big with this add: its members' waiting syncs are woken).
    `acting`: an acting user is set (a non-member gets -2 for a missing group too)."""

    chat: str
    user: str
    member: str
    max_members: int
    fanout_max: int = 100
    max_groups: int = DEFAULT_MAX_GROUPS
    acting: bool = False
    fits: bool = True


class RemoveMember(NamedTuple):
    """`user` removes `member` (itself: leaves), the member's side with it: (code, the
    Group or None, the send time of the group's newest message then and its change log's
    length: where the member's sync feed stops)."""

    chat: str
    user: str
    member: str
    acting: bool = False


class Posted(NamedTuple):
    """A send's outcome on a cluster: its send time, and what its second step writes:
    `kind` "s" (a small group: each of `members`' inbox and sync feed), "b" (a big group:
    its activity) or "p" (a 1:1 chat: both members'); "" when nothing is left to do.
    `prev`: the send time of the chat's message before it (0: none, -1: not known)."""

    send_time: int
    kind: str = ""
    members: tuple[str, ...] = ()
    prev: int = -1


class GroupAppend(NamedTuple):
    """Store a message of `sender` in group `chat`: a Posted, or a refusal code."""

    chat: str
    sender: str
    text: str
    client_msg_id: str = ""
    retry_key: str = ""
    acting: bool = False


class GroupRead(NamedTuple):
    """Up to `entries` entries of group `chat` from `cursor`: a list of GroupEntry, or a
    refusal code (with `actor`: -2 for a non-member, whether or not the group exists)."""

    chat: str
    actor: str
    cursor: int
    entries: int
    reverse: bool


class GroupMark(NamedTuple):
    """Where `user`'s read position in `chat` would be for send time `at`: a GroupMarked,
    or a refusal code."""

    chat: str
    user: str
    at: int
    acting: bool = False


class GroupMarked(NamedTuple):
    """A GroupMark's answer: the ReadMark (count of messages, and of the user's own, up to
    it), and the group's newest send time and change log's length then (MarkRead's)."""

    mark: ReadMark
    newest: int
    changes: int


class InboxRows(NamedTuple):
    """`user`'s inbox rows at or below `below` (0: the top) for a page of `limit` after
    `skip` rows, and the newest message of each row the page may show, with the user's own
    count in a group: (rows, tips, owns). The user's big groups with messages since its
    last inbox read move in its inbox first."""

    user: str
    below: int
    skip: int
    limit: int


class UserGroups(NamedTuple):
    """The groups `user` is a member of, sorted (its side of any other is dropped)."""

    user: str


# A cluster backend's own steps (one Redis writes a member's side in the group's script).


class InboxRange(NamedTuple):
    """Up to `rows` rows of `user`'s inbox at or below `below`, the first `skip` left out:
    (the big groups' counter the user's inbox has seen, how many groups the user is in, the
    rows). With `caught_up`, first each of `moves` (big group, its last send time) among
    the user's groups moves in its inbox, and the inbox has seen `caught_up`."""

    user: str
    below: int
    skip: int
    rows: int
    caught_up: int = 0
    moves: tuple[tuple[str, int], ...] = ()


class GroupTips(NamedTuple):
    """For each of `chats`: its newest message (a GroupTip) and `user`'s own count there
    ((None, None) when it has no message or the user is not a member)."""

    user: str
    chats: tuple[str, ...]


class ReserveGroup(NamedTuple):
    """Take a place for group `chat` among `user`'s groups: True, or False when the user is
    in `max_groups` groups already."""

    user: str
    chat: str
    max_groups: int


class GroupTruth(NamedTuple):
    """What a group says of one user: whether it is a member, the group's newest send time
    (0: no message), and its change log's length."""

    member: bool
    newest: int
    changes: int = 0


class GroupState(NamedTuple):
    """What group `chat` says of `user`: a GroupTruth."""

    chat: str
    user: str


class UserSide(NamedTuple):
    """Make `user`'s side of group `chat` what `truth` says: the group in its groups and
    inbox (a member), or none of it and no read position (anyone else); its sync feed a
    joined or left event, the group's newest message when it joined or left at `at` (0:
    not known); `log`: for one who left, the newest send times of the change log's records
    its feed has not had (lua/feed.lua's log_newest)."""

    user: str
    chat: str
    truth: GroupTruth
    at: int = 0
    changes: int = -1  # the change log's length when it joined or left (-1: the truth's)
    log: str = ""


class UserGroupSet(NamedTuple):
    """The set of `user`'s groups as its side holds it (a place reserved included)."""

    user: str


class BigChanged(NamedTuple):
    """The big groups with a message, edit or recall since counter `seen`: (the counter
    now, {group: (its last send time, its change log's length)}); of `among` when given,
    else of all unless more than `most`: then (the counter, None)."""

    seen: int
    most: int
    among: tuple[str, ...] = ()


# What the services ask: edits and recalls.


class Change(NamedTuple):
    """An edit (`kind` "e": `text` becomes the message's) or a recall ("r") of the message
    at `send_time` in `chat`, asked by `who` (a 1:1 chat: the role digit; a group: the
    member), refused past `window_us` after the send time (0: never): a Changed, or a refusal
    code. `acting`: an acting user is set (a group's non-member gets -2 for a missing group
    too)."""

    chat: str
    who: str
    send_time: int
    kind: str
    text: str = ""
    window_us: int = 0
    acting: bool = False


class Changed(NamedTuple):
    """A change stored: its time (an edit's edited_at, a recall's), whether the recalled text
    waits in the stream to be erased (EraseStep), `again` for a recall of a recalled message
    (nothing changed; on a cluster within the idempotency keys' lifetime after the recall,
    its second step again, which each feed takes once); and on a cluster what the second
    step writes: `fanout` "p" (a 1:1
    chat: both members' feeds), "s" (a small group: each of `members`' feeds), "b" (a big
    group: its activity, its change log holding `records` records), "" (nothing); `newest`:
    the send time of the chat's newest message then (a feed gets the change after it)."""

    at: int
    erasing: bool
    fanout: str = ""
    members: tuple[str, ...] = ()
    records: int = 0
    again: bool = False
    newest: int = 0


class EraseStep(NamedTuple):
    """A step of erasing recalled texts from `chat`'s stream (lua/erase_step.lua), copying at
    most `most` entries after `after` ("" for the first step): the entry last copied,
    "done", or "busy"."""

    chat: str
    token: str
    after: str
    most: int
    lock_ms: int
    times: tuple[str, ...]


class EraseTail(NamedTuple):
    """Erase the recalled texts of `times` from `chat`'s stream by rewriting its tail in place
    (lua/erase_tail.lua), when at most `most` entries follow the oldest: "done", or "deep"
    (EraseStep copies the whole stream)."""

    chat: str
    most: int
    times: tuple[str, ...]


class Erasures(NamedTuple):
    """The send times whose recalled text waits in `chat`'s stream (strings)."""

    chat: str


class Erasing(NamedTuple):
    """Note `chat` among the chats with recalled texts to erase (`add`), or take it off:
    the erasers of every im-rpc finish what one that stopped left; with no chat, the chats
    noted (a list)."""

    chat: str = ""
    add: bool = True


# What the services ask: sync.


class SyncFeed(NamedTuple):
    """A page of `user`'s sync feed after the token (`epoch`: "" for none, "from now";
    `position`: records read; `place`: the send time last given of the next record, a
    range; `check`: the record it read last, which must still be there), at most `limit`
    events; a feed made with `new_epoch` when there is none and no token; with `listing`,
    the user's big groups and their positions too: a FeedPage."""

    user: str
    epoch: str
    position: int
    place: int
    limit: int
    new_epoch: str
    listing: bool = False
    check: str = ""


class SyncStep(NamedTuple):
    """A cluster's step of SyncFeed in the user's slot: the records (not their messages),
    given the big groups' counter seen (`seen`: "" for none yet) and `groups` (for a feed
    to make: each of the user's groups, its newest send time, change log's length and "";
    else each big group with activity since, its last send time, change log's length and
    the newest send times its change log's records name from the feed's position on:
    lua/feed.lua's log_newest)."""

    feed: SyncFeed
    seen: str = ""
    groups: tuple[tuple[str, int, int, str], ...] = ()


class Span(NamedTuple):
    """The entries of `chat` (a 1:1 chat or a group) with send times in [low, high], at most
    `most`: Entry or GroupEntry values."""

    chat: str
    low: int
    high: int
    most: int


class ChangeLog(NamedTuple):
    """A big group's change log's records `start`..`stop` (0-based, inclusive): (kind "E"
    or "X", the send time of the message edited or recalled, the send time of the group's
    newest message then) each."""

    group: str
    start: int
    stop: int


class ChangeMarks(NamedTuple):
    """How many records of each of `groups`' change logs `user`'s sync feed has had: an int,
    or None (no feed, or not a member), each."""

    user: str
    groups: tuple[str, ...]


class BigFlags(NamedTuple):
    """Which of `chats` (groups) are big: a tuple of bools."""

    chats: tuple[str, ...]


class WakeSyncs(NamedTuple):
    """Wake the waiting syncs of `users` (a cluster's members of a group that turned big:
    each reads again and watches the group); None."""

    users: tuple[str, ...]


ChatOp = Append | Read | Latest | MarkRead | Change | EraseStep | EraseTail | Erasures | Erasing
GroupOp = CreateGroup | GroupInfo | AddMember | RemoveMember | GroupAppend | GroupRead | GroupMark
ClusterStep = (
    InboxRange | GroupTips | ReserveGroup | GroupState | UserSide | UserGroupSet | BigChanged
    | SyncStep | Span | BigFlags | ChangeLog | ChangeMarks | WakeSyncs
)  # fmt: skip
Op = ChatOp | GroupOp | InboxRows | UserGroups | SyncFeed | ClusterStep
