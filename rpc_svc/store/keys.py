"""The store's Redis key names.

A chat's keys share the hash tag ``{<chat>}`` and a user's keys the tag ``{<user>}``
(a chat's tag always holds a ':' between two members, a user's never holds one), so each
script touches the keys of one Redis Cluster slot:

    im:{<chat>}:m      stream of the chat's messages, once it has IM_SHORT_CHAT_MESSAGES
    im:{<chat>}:s      hash of a short chat's messages: field i (the i-th message) ->
                       "<stream ID> <value>"
    im:{<chat>}:idem   sorted set: "<role>:<client_msg_id>" -> send_time (24 h)
    im:{<chat>}:retry  sorted set: "<role>:<retry_key>" -> send_time (60 s): the keys
                       gateways put on sends without a client_msg_id
    im:{<chat>}:w      the chat's wake-up channel (sharded pub/sub): each send's send time
    im:{<chat>}:x      sorted set: the chat's edited and recalled messages (score: the send
                       time; member "<send time>:e<edited at>:<text>" or "<send time>:r<at>:")
    im:{<chat>}:er     set: send times of recalled messages whose text waits in the stream
    im:{<chat>}:mc     the stream's copy while recalled texts are erased (lua/erase_step.lua)
    im:{<chat>}:el     the lock of that erasure
    im:{<user>}:inbox  sorted set: chat -> send time of the chat's last message
    im:{<user>}:read   hash: chat -> "<read_until>:<sent by role 0>:<sent by role 1>";
                       for a group "<read_until>:<messages up to it>:<own messages up to it>";
                       ":big" -> the big groups' counter the user's inbox has caught up to
    im:{<user>}:groups set: the groups the user is a member of
    im:{<user>}:feed   list: the user's sync feed while it syncs (header, then records:
                       lua/feed.lua); its positions: a 1:1 chat's is the chat's inbox
                       score, a group's the read-positions field "+<group>", and ":sync"
                       the big groups' counter its feed has caught up to
    im:{<user>}:sw     the user's sync channel (sharded pub/sub): its feed's length after
                       each record

A group ("#<name>") has a stream, short hash and idempotency sets as a chat does (its
entries' field is g: "<messages so far>:<sender>:<text>"), and:

    im:{#<name>}:owner   string: the owner
    im:{#<name>}:big     string: set once the group has more members than a small one may
    im:{#<name>}:mem     hash: member -> "<messages it sent>:<send time of its last one>"
    im:{#<name>}:own:<member>  string: the send times of the member's messages, 8 bytes
                         each (a big-endian double), oldest first (kept when it leaves:
                         its messages stay)
    im:{#<name>}:cl      list: a big group's change log, a record per edit or recall
    im:{#<name>}:cw      a big group's change channel: the change log's length

Keys of no chat or user, in tags no name hashes to (a user's has no ':', a chat's has
members on both sides of its one ':', a group's starts with '#'):

    im:{:big}:seq        counter: one more per message of a big group
    im:{:big}:act        sorted set: big group -> the counter at its last message
    im:{:big}:at         hash: big group -> the send time of its last message
    im:{:big}:cc         hash: big group -> the length of its change log
    im:{:meta}:layout    string: the layout of the data (LAYOUT), written by the first im-rpc
    im:{:meta}:sync      string: the key sync tokens are signed with, made by the first im-rpc
    im:{:meta}:erasing   set: chats with recalled texts waiting in their stream
"""

from __future__ import annotations

# The layout this code reads and writes. A change that older code could not read, or that
# could not read older data, takes the next number (docs/store.md, "Layout versions").
LAYOUT = "1"
LAYOUT_KEY = "im:{:meta}:layout"
SYNC_SECRET_KEY = "im:{:meta}:sync"
BIG_SEQ_KEY = "im:{:big}:seq"
BIG_ACTIVITY_KEY = "im:{:big}:act"
BIG_TIMES_KEY = "im:{:big}:at"
BIG_KEYS = (BIG_SEQ_KEY, BIG_ACTIVITY_KEY, BIG_TIMES_KEY)
BIG_CHANGES_KEY = "im:{:big}:cc"
ERASING_KEY = "im:{:meta}:erasing"


def _tag(name: str) -> str:
    # Braces would end the hash tag early; '%' is escaped so the mapping stays one-to-one.
    return name.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _key(name: str, suffix: str) -> str:
    return f"im:{{{_tag(name)}}}:{suffix}"


def messages_key(chat: str) -> str:
    """The stream key of a canonical chat (or a group)."""
    return _key(chat, "m")


def short_key(chat: str) -> str:
    """The hash key of a short chat's messages (before they move into the stream)."""
    return _key(chat, "s")


def idempotency_key(chat: str) -> str:
    """The sorted set of a chat's idempotency keys."""
    return _key(chat, "idem")


def retry_keys_key(chat: str) -> str:
    """The sorted set of a chat's gateway-made (short-lived) idempotency keys."""
    return _key(chat, "retry")


def idempotency_entry(
    chat: str, who: str, client_msg_id: str, retry_key: str, ttl_us: int, retry_ttl_us: int
) -> tuple[str, str, int]:
    """Where a send's idempotency key is kept: (the chat's set, its member "<who>:<key>",
    its lifetime in µs). A client_msg_id goes to the idempotency set for `ttl_us`, else a
    retry key to the retry set for `retry_ttl_us`; with neither the member is "" (none)."""
    if client_msg_id:
        return idempotency_key(chat), f"{who}:{client_msg_id}", ttl_us
    if retry_key:
        return retry_keys_key(chat), f"{who}:{retry_key}", retry_ttl_us
    return idempotency_key(chat), "", ttl_us


def wake_channel(chat: str) -> str:
    """The sharded pub/sub channel announcing a chat's new messages."""
    return _key(chat, "w")


def changes_key(chat: str) -> str:
    """The sorted set of a chat's edited and recalled messages."""
    return _key(chat, "x")


def erasures_key(chat: str) -> str:
    """The set of send times whose recalled text waits in the chat's stream."""
    return _key(chat, "er")


def stream_copy_key(chat: str) -> str:
    """The copy of a chat's stream made while recalled texts are erased."""
    return _key(chat, "mc")


def erase_lock_key(chat: str) -> str:
    """The lock of a chat's erasure."""
    return _key(chat, "el")


def change_log_key(group: str) -> str:
    """A big group's change log: a record per edit or recall."""
    return _key(group, "cl")


def change_channel(group: str) -> str:
    """The sharded pub/sub channel announcing a big group's edits and recalls."""
    return _key(group, "cw")


def inbox_key(user: str) -> str:
    """The sorted set of a user's chats by last activity."""
    return _key(user, "inbox")


def reads_key(user: str) -> str:
    """The hash of a user's read positions, by chat."""
    return _key(user, "read")


def user_groups_key(user: str) -> str:
    """The set of the groups a user is a member of."""
    return _key(user, "groups")


def feed_key(user: str) -> str:
    """The list of a user's sync feed."""
    return _key(user, "feed")


def recalls_key(user: str) -> str:
    """The sorted set of the recalls a user's sync feed got on a cluster (so that a
    retried recall's step gives each once), by when."""
    return _key(user, "rc")


def sync_channel(user: str) -> str:
    """The sharded pub/sub channel announcing a user's new sync records."""
    return _key(user, "sw")


TURNED_BIG = "big"  # on a sync channel: no feed length, so it wakes all its waiters (feed.lua)


def user_side_keys(user: str) -> tuple[str, str, str, str]:
    """A user's groups, inbox, read positions and sync feed: its side of its groups."""
    return user_groups_key(user), inbox_key(user), reads_key(user), feed_key(user)


def group_owner_key(group: str) -> str:
    """The string holding a group's owner (the group exists while it does)."""
    return _key(group, "owner")


def group_members_key(group: str) -> str:
    """The hash of a group's members and their own message counts."""
    return _key(group, "mem")


def group_big_key(group: str) -> str:
    """The flag set once a group is big (read diffusion: no inbox write per member)."""
    return _key(group, "big")


def own_times_key(group: str, member: str) -> str:
    """The string of the send times of `member`'s messages in `group` (8 bytes each)."""
    return f"{_key(group, 'own')}:{member}"
