"""The OpenAPI 3.1 document of the public API, served at /openapi.json."""

from __future__ import annotations

from typing import Any

_MEMBER = r"[^:\s\x00-\x1f\x7f]{1,64}"
_CHAT = {
    "type": "string",
    "pattern": f"^{_MEMBER}:{_MEMBER}$",
    "description": "'<member1>:<member2>': exactly one ':'; members 1..64 characters without "
    "whitespace or control characters. 'a:b' and 'b:a' are the same chat.",
    "example": "alice:bob",
}
_ERROR = {"$ref": "#/components/schemas/Error"}


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


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Bad input",
        413: "Body too large",
        415: "Unsupported content type",
        429: "Too many sends from this sender (when IM_HTTP_SENDER_RATE is set); see Retry-After",
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
        },
    }


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
            "text": {
                "type": "string",
                "minLength": 1,
                "description": f"1..{max_text_bytes} bytes of UTF-8",
            },
            "client_msg_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "description": "idempotency key (or header Idempotency-Key)",
            },
        },
    }
    example = {"chat": "alice:bob", "sender": "alice", "text": "hello"}
    return {
        "required": True,
        "content": {
            mime: {"schema": schema, "example": example}
            for mime in (
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            )
        },
    }


def _pull() -> dict[str, Any]:
    return {
        "summary": "Read one page of a chat",
        "parameters": [
            _REQUEST_ID,
            _param("chat", _CHAT, "the chat", required=True),
            _param(
                "cursor",
                {"type": "integer", "minimum": 0, "default": 0},
                "forward: from send_time >= cursor; reverse: <= cursor (0 = newest)",
            ),
            _param(
                "limit",
                {"type": "integer", "minimum": 0, "maximum": 1000, "default": 10},
                "page size, 1..1000; 0 means 10",
            ),
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
            **_errors(400, 415, 502, 503, 504),
        },
    }


def build_openapi(max_body_bytes: int, max_text_bytes: int = 4096) -> dict[str, Any]:
    """The OpenAPI document; `max_body_bytes` is this gateway's body limit."""
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
                        **_errors(400, 413, 415, 429, 502, 503, 504),
                    },
                }
            },
            "/api/pull": {"get": _pull()},
        },
        "components": {
            "schemas": {
                "Message": _message_schema(),
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
                            "items": {"$ref": "#/components/schemas/Message"},
                        },
                        "has_more": {"type": "boolean"},
                        "next_cursor": {"type": "integer"},
                    },
                },
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
