"""The OpenAPI 3.1 document of the public API, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from http_svc.openapi_schemas import response_schemas

_MEMBER = r"[^:\s\x00-\x1f\x7f]{1,64}"
_CHAT = {
    "type": "string",
    "pattern": f"^({_MEMBER}:{_MEMBER}|#{_MEMBER})$",
    "description": "a 1:1 chat, '<member1>:<member2>': exactly one ':'; members 1..64 printable "
    "characters (no whitespace, control or format characters) in Unicode NFC. 'a:b' and 'b:a' "
    "are the same chat. Or a group, '#<name>': the name under the same rules.",
    "example": "alice:bob",
}
_GROUP = {
    "type": "string",
    "pattern": f"^#{_MEMBER}$",
    "description": "a group: '#' and 1..64 printable characters (no ':', whitespace, control or "
    "format characters) in Unicode NFC; case-sensitive",
    "example": "#ops",
}
_ERROR = {"$ref": "#/components/schemas/Error"}
_USER = {
    "type": "string",
    "pattern": f"^{_MEMBER}$",
    "description": "a member name: 1..64 printable characters (no ':', whitespace, control or "
    "format characters) in Unicode NFC",
    "example": "alice",
}
_BODY_TYPES = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")


def _param(
    name: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def _cursor(description: str) -> dict[str, Any]:
    return _param("cursor", {"type": "integer", "minimum": 0, "default": 0}, description)


_LIMIT = _param(
    "limit",
    {"type": "integer", "minimum": 0, "maximum": 1000, "default": 10},
    "page size, 1..1000; 0 means 10",
)


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Bad input",
        401: "No valid bearer token (with authentication on); see WWW-Authenticate",
        403: "Not a member of the group (not_a_member; with authentication on also for a group "
        "that does not exist: no answer tells what exists); or, with authentication on, the "
        "token's user may not do this: act as someone else, pull a chat it is not a member of",
        413: "Body too large",
        415: "Unsupported content type",
        404: "The group does not exist (unknown_group; with authentication off), or no "
        "message at that send_time in that chat (unknown_message)",
        409: "The group exists already (group_exists), is full (group_full), its owner would "
        "leave (owner_cannot_leave), or the member is in as many groups as a user may be "
        "(too_many_groups); past the edit or recall window (window_closed); an edit of a "
        "recalled message (recalled)",
        410: "The sync token is older than the events the service keeps, its feed was "
        "dropped after a long idle time, or the store lost events it had read (a failover, "
        "a crash) (sync_reset): sync again without since",
        429: "Too many sends from this sender (when IM_HTTP_SENDER_RATE is set), or long polls "
        "of this user or address (too_many_long_polls); see Retry-After",
        502: "im-rpc failed",
        503: "im-rpc or the store unavailable, or the gateway overloaded; see Retry-After",
        504: "im-rpc or the store timed out",
    }
    return {
        str(s): {"description": text[s], "content": {"application/json": {"schema": _ERROR}}}
        for s in statuses
    }


_REQUEST_ID = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "the request's id for logs (1..128 of A-Z a-z 0-9 . _ : @ / + = -); "
    "another value is replaced by a new id. Returned in the X-Request-ID response header.",
}


def _ok(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "200": {"description": description, "content": {"application/json": {"schema": schema}}}
    }


def _message_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["chat", "text", "sender", "send_time"],
        "properties": {
            "chat": {"type": "string", "description": "canonical chat: members sorted"},
            "text": {"type": "string"},
            "sender": {"type": "string"},
            "send_time": {
                "type": "integer",
                "description": "µs since the Unix epoch; unique and increasing within a chat",
            },
            "edited_at": {
                "type": "integer",
                "description": "only on an edited message: the last edit's time (µs, store "
                "clock, strictly increasing per message)",
            },
            "recalled": {
                "const": True,
                "description": "only on a recalled message (its text is then empty)",
            },
        },
    }


def _text(max_text_bytes: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "description": f"1..{max_text_bytes} bytes of UTF-8"}


def _send_body(max_text_bytes: int) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["chat", "sender", "text"],
        "properties": {
            "chat": _CHAT,
            "sender": {
                "type": "string",
                "pattern": f"^{_MEMBER}$",
                "description": "one of the chat's two members",
            },
            "text": _text(max_text_bytes),
            "client_msg_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "description": "idempotency key (or header Idempotency-Key)",
            },
        },
    }
    return _body(schema, {"chat": "alice:bob", "sender": "alice", "text": "hello"})


def _body(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {mime: {"schema": schema, "example": example} for mime in _BODY_TYPES},
    }


def _read_body() -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["chat", "user", "send_time"],
        "properties": {
            "chat": _CHAT,
            "user": {**_USER, "description": "one of the chat's two members"},
            "send_time": {
                "type": "integer",
                "minimum": 0,
                "maximum": 2**63 - 1,
                "description": "read up to here: the position becomes the send_time of the "
                "chat's last message at or before it, and never moves back",
            },
        },
    }
    return _body(schema, {"chat": "alice:bob", "user": "bob", "send_time": 1700000000000000})


def _change(summary: str, who: str, extra: dict[str, Any], answer: str) -> dict[str, Any]:
    """POST /api/edit or /api/recall: a change to the message at `send_time` of `chat`."""
    properties = {
        "chat": _CHAT,
        who: {**_USER, "description": "the message's sender (recall: or the group's owner)"},
        "send_time": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        **extra,
    }
    example = {"chat": "alice:bob", who: "alice", "send_time": 1700000000000000}
    example.update({"text": "hello, fixed"} if extra else {})
    schema = {"type": "object", "required": list(properties), "properties": properties}
    return {
        "summary": summary,
        "parameters": [_REQUEST_ID],
        "requestBody": _body(schema, example),
        "responses": {
            **_ok({"$ref": f"#/components/schemas/{answer}"}, "Changed"),
            **_errors(400, 403, 404, 409, 413, 415, 502, 503, 504),
        },
    }


def _chats() -> dict[str, Any]:
    return {
        "summary": "A user's chats, most recently active first, with unread counts",
        "parameters": [
            _REQUEST_ID,
            _param("user", _USER, "whose inbox", required=True),
            _cursor("0 = from the most recent activity; else a next_cursor"),
            _LIMIT,
        ],
        "responses": {
            **_ok({"$ref": "#/components/schemas/ChatsResponse"}, "A page of chats"),
            **_errors(400, 415, 502, 503, 504),
        },
    }


def _group_call(summary: str, extra: tuple[str, ...]) -> dict[str, Any]:
    names = ("chat", "user", *extra)
    properties = {"chat": _GROUP, "user": _USER, **{name: _USER for name in extra}}
    schema = {"type": "object", "required": list(names), "properties": properties}
    example = {"chat": "#ops", "user": "alice", **dict.fromkeys(extra, "bob")}
    return {
        "summary": summary,
        "parameters": [_REQUEST_ID],
        "requestBody": _body(schema, example),
        "responses": {
            **_ok({"$ref": "#/components/schemas/Group"}, "The group"),
            **_errors(400, 403, 404, 409, 413, 415, 502, 503, 504),
        },
    }


def _members() -> dict[str, Any]:
    return {
        "summary": "A group's owner and members",
        "parameters": [_REQUEST_ID, _param("chat", _GROUP, "the group", required=True)],
        "responses": {
            **_ok({"$ref": "#/components/schemas/Group"}, "The group"),
            **_errors(400, 404, 415, 502, 503, 504),
        },
    }


def _user_groups() -> dict[str, Any]:
    return {
        "summary": "The groups a user is a member of, with messages or not",
        "parameters": [_REQUEST_ID, _param("user", _USER, "whose groups", required=True)],
        "responses": {
            **_ok({"$ref": "#/components/schemas/UserGroups"}, "The user's groups"),
            **_errors(400, 415, 502, 503, 504),
        },
    }


def _pull() -> dict[str, Any]:
    return {
        "summary": "Read one page of a chat",
        "parameters": [
            _REQUEST_ID,
            _param("chat", _CHAT, "the chat", required=True),
            _cursor("forward: from send_time >= cursor; reverse: <= cursor (0 = newest)"),
            _LIMIT,
            _param(
                "reverse",
                {"type": "boolean", "default": False},
                "newest first (true/false/1/0, any case)",
            ),
            _param(
                "wait_ms",
                {"type": "integer", "minimum": 0, "maximum": 30000, "default": 0},
                "forward only: when the page would be empty, wait up to this long for a "
                "message at or after cursor and answer as soon as one is stored (long polling)",
            ),
        ],
        "responses": {
            **_ok({"$ref": "#/components/schemas/PullResponse"}, "A page"),
            **_errors(400, 404, 415, 429, 502, 503, 504),
        },
    }


def _sync() -> dict[str, Any]:
    return {
        "summary": "What changed in all of a user's chats since a token (long polls)",
        "parameters": [
            _REQUEST_ID,
            _param("user", _USER, "whose chats", required=True),
            _param(
                "since",
                {"type": "string"},
                "the next of an earlier sync of this user; absent or empty: from now (no "
                "events, a token that marks now)",
            ),
            _param(
                "limit",
                {"type": "integer", "minimum": 0, "maximum": 1000, "default": 100},
                "events per answer, 1..1000; 0 means 100",
            ),
            _param(
                "wait_ms",
                {"type": "integer", "minimum": 0, "maximum": 30000, "default": 0},
                "with since: when there is no event after it, wait up to this long for one",
            ),
        ],
        "responses": {
            **_ok({"$ref": "#/components/schemas/SyncResponse"}, "Events, next, has_more"),
            **_errors(400, 410, 415, 429, 502, 503, 504),
        },
    }


def _authenticated(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` for a gateway with authentication on: every /api/ route takes a bearer token
    and may answer 401 and 403; `sender` and `user` may be omitted (the token's user)."""
    doc["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "sub: the acting user; signed HS256, RS256 or ES256 (docs/security.md)",
        }
    }
    for path, operations in doc["paths"].items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            operation["security"] = [{"bearer": []}]
            operation["responses"].update(_errors(401, 403))
            for param in operation["parameters"]:
                if param["name"] == "user":
                    param["required"] = False
                    param["description"] += "; default and only allowed value: the token's sub"
            body = operation.get("requestBody")
            for content in body["content"].values() if body else ():
                schema = content["schema"]
                schema["required"] = [n for n in schema["required"] if n not in _OWN]
    return doc


_OWN = ("sender", "user")  # with authentication on: optional, and only the token's sub


def build_openapi(
    max_body_bytes: int, max_text_bytes: int = 4096, *, auth: bool = False
) -> dict[str, Any]:
    """The OpenAPI document; `max_body_bytes` is this gateway's body limit, `auth` whether
    it authenticates."""
    doc = _open_api(max_body_bytes, max_text_bytes)
    return _authenticated(doc) if auth else doc


def _open_api(max_body_bytes: int, max_text_bytes: int) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "IM backend (pull mode)",
            "version": "1.0.0",
            "description": "Parameters may come as a JSON body, a form body or the query "
            f"string; the body wins. Bodies over {max_body_bytes} bytes answer 413.",
        },
        "paths": {
            "/ping": {
                "get": {
                    "summary": "Liveness of the gateway alone",
                    "responses": _ok(
                        {"type": "object", "properties": {"message": {"const": "pong"}}}, "pong"
                    ),
                }
            },
            "/api/send": {
                "post": {
                    "summary": "Send a message",
                    "parameters": [
                        _REQUEST_ID,
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 64},
                        },
                    ],
                    "requestBody": _send_body(max_text_bytes),
                    "responses": {
                        **_ok({"$ref": "#/components/schemas/SendResponse"}, "Stored"),
                        **_errors(400, 403, 404, 413, 415, 429, 502, 503, 504),
                    },
                }
            },
            "/api/pull": {"get": _pull()},
            "/api/chats": {"get": _chats()},
            "/api/sync": {"get": _sync()},
            "/api/edit": {
                "post": _change(
                    "The sender replaces a message's text within IM_EDIT_WINDOW_S",
                    "sender",
                    {"text": _text(max_text_bytes)},
                    "EditResponse",
                )
            },
            "/api/recall": {
                "post": _change(
                    "The sender (within IM_RECALL_WINDOW_S) or a group's owner erases a message",
                    "user",
                    {},
                    "RecallResponse",
                )
            },
            "/api/groups": {
                "post": _group_call("Create a group; user is its owner", ()),
                "get": _user_groups(),
            },
            "/api/groups/add": {"post": _group_call("A member adds a member", ("member",))},
            "/api/groups/remove": {
                "post": _group_call("The owner removes a member, or a member leaves", ("member",))
            },
            "/api/groups/members": {"get": _members()},
            "/api/read": {
                "post": {
                    "summary": "Mark a chat read up to a message",
                    "parameters": [_REQUEST_ID],
                    "requestBody": _read_body(),
                    "responses": {
                        **_ok({"$ref": "#/components/schemas/ReadResponse"}, "The position kept"),
                        **_errors(400, 403, 404, 413, 415, 502, 503, 504),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Message": _message_schema(),
                **response_schemas(),
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string", "description": "machine code"},
                        "message": {
                            "type": "string",
                            "description": "what is wrong, naming the field",
                        },
                    },
                },
            }
        },
    }
