"""Request parameters: gathered from the query string and the body, then typed.

The body (JSON object, urlencoded or multipart form) wins over the query string,
on every method (GET included); a JSON null counts as absent. Within one source the
first value of a repeated name counts (in a JSON object too). Text must be valid
UTF-8 everywhere. Errors are ApiError with code "missing_parameter" or
"invalid_<name>" (400), "invalid_body"/"invalid_json"/"invalid_utf8" (400) or
"unsupported_media_type" (415).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from sanic import Request
from sanic.headers import parse_content_header
from sanic.request.form import parse_multipart_form

from http_svc.errors import ApiError

Params = dict[str, Any]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INT = re.compile(r"[+-]?[0-9]{1,20}")
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def _first_wins(pairs: Iterable[tuple[str, Any]]) -> Params:
    params: Params = {}
    for name, value in pairs:
        params.setdefault(name, value)
    return params


def _urlencoded(raw: str, where: str) -> Params:
    try:
        return _first_wins(parse_qsl(raw, keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_utf8", f"the {where} is not valid UTF-8") from None


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_utf8", "the body is not valid UTF-8") from None


def _json_body(body: bytes) -> Params:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        _decode(body)  # not UTF-8 at all: say so
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json", "the JSON body must be an object")
    if _may_repeat_a_name(body, value):
        value = json.loads(body, object_pairs_hook=_first_wins)
    # null is no value: the query string's value (or the default) stands
    return {name: v for name, v in value.items() if v is not None}


def _may_repeat_a_name(body: bytes, value: dict[str, Any]) -> bool:
    """Whether the JSON object `body` (parsed: `value`, where a repeated name kept its last
    value) may hold a name twice: then it is parsed again, keeping first values. Cheap on
    the usual body; any escape in it takes the slow road."""
    if b"\\" in body:
        return True
    return any(body.count(b'"%s"' % name.encode()) > 1 for name in value)


def _multipart_body(body: bytes, boundary: str | None) -> Params:
    if not boundary:
        raise ApiError(400, "invalid_body", "multipart/form-data needs a boundary")
    try:
        fields, _files = parse_multipart_form(body, boundary.encode("utf-8"))  # type: ignore[no-untyped-call]
    except UnicodeError:
        raise ApiError(400, "invalid_utf8", "a form field is not valid UTF-8") from None
    except (ValueError, LookupError, IndexError):
        raise ApiError(400, "invalid_body", "the multipart body is malformed") from None
    params = {name: values[0] for name, values in fields.items()}
    for value in params.values():  # a part in another charset may decode to anything
        if not is_utf8(value):  # (names come from part heads, which must be UTF-8)
            raise ApiError(400, "invalid_utf8", "a form field is not valid UTF-8")
    return params


def is_utf8(value: str) -> bool:
    """Whether `value` can be written as UTF-8: no lone surrogates (what undecodable header
    bytes and some charsets become)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _body_params(request: Request) -> Params:
    body = request.body
    if not body:
        return {}
    mime, options = parse_content_header(request.headers.get("content-type", ""))
    if mime == "application/json" or mime.endswith("+json"):
        return _json_body(body)
    if mime == "application/x-www-form-urlencoded":
        return _urlencoded(_decode(body), "body")
    if mime == "multipart/form-data":
        boundary = options.get("boundary")
        return _multipart_body(body, boundary if isinstance(boundary, str) else None)
    raise ApiError(
        415,
        "unsupported_media_type",
        "the body must be application/json, application/x-www-form-urlencoded "
        f"or multipart/form-data, not {repr(mime) if mime else 'without a content type'}",
    )


def collect(request: Request) -> Params:
    """All parameters of a request, the body's over the query string's."""
    params = _urlencoded(request.query_string, "query string") if request.query_string else {}
    params.update(_body_params(request))
    return params


def text_param(params: Params, name: str) -> str:
    """A required string parameter."""
    value = params.get(name)
    if value is None:
        raise ApiError(400, "missing_parameter", f"{name} is required")
    if not isinstance(value, str):
        raise ApiError(400, f"invalid_{name}", f"{name} must be a string")
    return value


def optional_text_param(params: Params, name: str) -> str | None:
    """A string parameter that may be absent (None)."""
    return None if params.get(name) is None else text_param(params, name)


def int_param(params: Params, name: str, default: int | None, lo: int, hi: int) -> int:
    """An integer parameter in lo..hi; absent or empty gives `default` (None: required)."""
    value = params.get(name)
    if value is None or value == "":
        if default is None:
            raise ApiError(400, "missing_parameter", f"{name} is required")
        return default
    if isinstance(value, str) and _INT.fullmatch(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"invalid_{name}", f"{name} must be an integer")
    if not lo <= value <= hi:
        raise ApiError(400, f"invalid_{name}", f"{name} must be {lo}..{hi}")
    return value


def bool_param(params: Params, name: str, default: bool) -> bool:
    """A boolean parameter: true/false/1/0 in any case, or a JSON boolean."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    key = value.lower() if isinstance(value, str) else str(value)
    if key not in _BOOLS:
        raise ApiError(400, f"invalid_{name}", f"{name} must be true, false, 1 or 0")
    return _BOOLS[key]
