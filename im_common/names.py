"""Member names: the one rule set shared by im-rpc (chats, users) and the gateway (a token's
`sub`). Pure functions; nothing here does I/O."""

from __future__ import annotations

import re
import unicodedata

MAX_MEMBER_CHARS = 64
# Whitespace (anything str.isspace() accepts) and ':'; str.isprintable() refuses the rest.
_BAD_MEMBER_CHAR = re.compile(r"[\s:]")
NOT_NFC = "must be in Unicode normal form C (NFC)"


def member_fault(member: str) -> str | None:
    """What breaks the member-name rules, or None: 1..64 characters, none of them ':',
    whitespace or unprintable (control, format such as zero-width or bidi controls,
    surrogate, private-use, unassigned), in NFC, so that one name looks like one user.
    The fault is "length", "characters" or "nfc"."""
    if not 1 <= len(member) <= MAX_MEMBER_CHARS:
        return "length"
    if _BAD_MEMBER_CHAR.search(member) or not member.isprintable():
        return "characters"
    if not member.isascii() and not unicodedata.is_normalized("NFC", member):
        return "nfc"
    return None
