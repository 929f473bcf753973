"""The response schemas of the OpenAPI document (http_svc.openapi), one per answer."""

from __future__ import annotations

from typing import Any

_MESSAGE = {"$ref": "#/components/schemas/Message"}


def response_schemas() -> dict[str, Any]:
    """Each route's answer, by name."""
    return {
        "SendResponse": {
            "type": "object",
            "required": ["chat", "send_time"],
            "properties": {"chat": {"type": "string"}, "send_time": {"type": "integer"}},
        },
        "PullResponse": {
            "type": "object",
            "required": ["messages", "has_more", "next_cursor"],
            "properties": {
                "messages": {
                    "type": "array",
                    "items": _MESSAGE,
                },
                "has_more": {"type": "boolean"},
                "next_cursor": {"type": "integer"},
            },
        },
        "ChatsResponse": {
            "type": "object",
            "required": ["chats", "has_more", "next_cursor"],
            "properties": {
                "chats": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["chat", "last_message", "unread"],
                        "properties": {
                            "chat": {"type": "string"},
                            "last_message": {"$ref": "#/components/schemas/Message"},
                            "unread": {
                                "type": "integer",
                                "minimum": 0,
                                "description": "the other member's messages after "
                                "the user's read position",
                            },
                        },
                    },
                },
                "has_more": {"type": "boolean"},
                "next_cursor": {
                    "type": "integer",
                    "description": "the position of the first chat of the next "
                    "page (has_more), else 0",
                },
            },
        },
        "EditResponse": {
            "type": "object",
            "required": ["chat", "send_time", "edited_at"],
            "properties": {
                "chat": {"type": "string"},
                "send_time": {"type": "integer"},
                "edited_at": {"type": "integer"},
            },
        },
        "RecallResponse": {
            "type": "object",
            "required": ["chat", "send_time", "recalled"],
            "properties": {
                "chat": {"type": "string"},
                "send_time": {"type": "integer"},
                "recalled": {"const": True},
            },
        },
        "ReadResponse": {
            "type": "object",
            "required": ["chat", "user", "read_until"],
            "properties": {
                "chat": {"type": "string"},
                "user": {"type": "string"},
                "read_until": {"type": "integer"},
            },
        },
        "Group": {
            "type": "object",
            "required": ["chat", "owner", "members"],
            "properties": {
                "chat": {"type": "string"},
                "owner": {"type": "string"},
                "members": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "sorted by code point",
                },
            },
        },
        "UserGroups": {
            "type": "object",
            "required": ["user", "groups"],
            "properties": {
                "user": {"type": "string"},
                "groups": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "sorted by code point; at most IM_USER_MAX_GROUPS",
                },
            },
        },
        "SyncEvent": {
            "type": "object",
            "required": ["type", "chat"],
            "properties": {
                "type": {"enum": ["message", "read", "joined", "left", "edit", "recall"]},
                "chat": {"type": "string", "description": "canonical chat or group"},
                "message": {
                    **_MESSAGE,
                    "description": "type message: the message as it is when the sync answers; "
                    "type edit: its new state",
                },
                "send_time": {
                    "type": "integer",
                    "description": "type recall: the recalled message's send_time",
                },
                "read_until": {
                    "type": "integer",
                    "description": "type read: the user's own read position, moved by a read",
                },
            },
        },
        "SyncResponse": {
            "type": "object",
            "required": ["events", "next", "has_more"],
            "properties": {
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/SyncEvent"}},
                "next": {
                    "type": "string",
                    "description": "the token of the next sync (opaque, bound to the user)",
                },
                "has_more": {
                    "type": "boolean",
                    "description": "more events wait: sync again at once with next",
                },
            },
        },
    }
