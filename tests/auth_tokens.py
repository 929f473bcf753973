"""Key sets and tokens for the authentication tests: real keys made with im-token's own
functions, good tokens, and one token for every defect the gateway must refuse (each
with the reason it must be refused for)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from im_common.jwks import parse_keys
from im_common.token_cli import add_key

SECRET = "a-test-secret-of-more-than-32-bytes-0123456789"
AUDIENCE = "im-test"
ISSUER = "https://idp.test"


@dataclass(frozen=True)
class KeyFiles:
    """An identity provider's key set (one ES256 and one RS256 key) and the gateways'."""

    private: Path
    public: Path
    es_kid: str
    rs_kid: str

    def signing_key(self, kid: str) -> Any:
        """The private key `kid` of the identity provider's set."""
        return _signing_key(self.private, kid)

    def public_pem(self, kid: str) -> bytes:
        """The PEM bytes of public key `kid` (what an HS256 key-confusion attack signs with)."""
        key = self.signing_key(kid).public_key()
        pem: bytes = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem


@functools.lru_cache(maxsize=16)
def _signing_key(path: Path, kid: str) -> Any:
    """(Loading an RSA private key costs tens of milliseconds: once per key.)"""
    return parse_keys(json.loads(path.read_bytes()), private=True)[kid].key


def make_key_files(directory: Path) -> KeyFiles:
    """Both key sets in `directory`, made by im-token's add_key."""
    private, public = directory / "idp.jwks", directory / "gateway.jwks"
    es_kid = add_key(private, public, "ES256", "es-1")
    rs_kid = add_key(private, public, "RS256", "rs-1")
    return KeyFiles(private, public, es_kid, rs_kid)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())  # NaN, Infinity allowed


def hs256_by_hand(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """An HS256 JWT signed with any bytes (PyJWT refuses to sign with a PEM key)."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def claims(sub: Any = "alice", ttl: int = 600, **more: Any) -> dict[str, Any]:
    """Claims of a token for `sub` valid for `ttl` seconds from now (`more` added)."""
    now = int(time.time())
    out: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl}
    out.update(more)
    return {k: v for k, v in out.items() if v is not None}


def es_token(keys: KeyFiles, body: dict[str, Any], **header: Any) -> str:
    """An ES256 token with `body`, signed by the ES key (kid es-1 unless `header` says)."""
    head = {"kid": keys.es_kid, **header}
    return jwt.encode(body, keys.signing_key(keys.es_kid), algorithm="ES256", headers=head)


def good_token(keys: KeyFiles, user: str = "alice", kind: str = "es256") -> str:
    """A valid token for `user` signed with the HS256 secret ("hs256"), the ES256 key or
    the RS256 key of the key set."""
    body = claims(user, aud=AUDIENCE, iss=ISSUER)
    if kind == "hs256":
        return jwt.encode(body, SECRET.encode(), algorithm="HS256")
    kid, alg = (keys.es_kid, "ES256") if kind == "es256" else (keys.rs_kid, "RS256")
    return jwt.encode(body, keys.signing_key(kid), algorithm=alg, headers={"kid": kid})


def good_tokens(keys: KeyFiles, user: str = "alice") -> dict[str, str]:
    """A valid token for `user` per kind of key: HS256 secret, ES256 and RS256 key set."""
    return {kind: good_token(keys, user, kind) for kind in ("hs256", "es256", "rs256")}


def defects(keys: KeyFiles) -> dict[str, tuple[str | None, str]]:
    """Authorization header values (None: no header) the gateway must refuse, each with the
    reason it must give, for a gateway with SECRET, the public key set, AUDIENCE and ISSUER."""
    now = int(time.time())
    ok = claims(aud=AUDIENCE, iss=ISSUER)
    good = es_token(keys, ok)
    head, payload, signature = good.split(".")
    other_key = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(ok, other_key, algorithm="ES256", headers={"kid": keys.es_kid})
    tampered = f"{head}.{_segment({**ok, 'sub': 'mallory'})}.{signature}"
    none = f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    confusion = hs256_by_hand(
        {"alg": "HS256", "typ": "JWT", "kid": keys.rs_kid}, ok, keys.public_pem(keys.rs_kid)
    )
    rs_as_es = jwt.encode(  # an RS256 token naming the ES key's kid
        ok, keys.signing_key(keys.rs_kid), algorithm="RS256", headers={"kid": keys.es_kid}
    )
    tokens: dict[str, tuple[str, str]] = {
        "not_a_jwt": ("not-a-jwt", "malformed"),
        "garbage_segments": ("a.b.c", "malformed"),
        "alg_none": (none, "algorithm"),
        "hs256_signed_with_the_rsa_public_key": (confusion, "bad_signature"),
        "hs256_wrong_secret": (
            jwt.encode(ok, SECRET[::-1].encode(), algorithm="HS256"),
            "bad_signature",
        ),
        "wrong_signature": (forged, "bad_signature"),
        "tampered_claims": (tampered, "bad_signature"),
        "rs256_naming_an_es256_key": (rs_as_es, "algorithm"),
        "unknown_kid": (es_token(keys, ok, kid="nobody"), "unknown_key"),
        "no_kid": (
            jwt.encode(ok, keys.signing_key(keys.es_kid), algorithm="ES256"),
            "unknown_key",
        ),
        "expired": (es_token(keys, {**ok, "exp": now - 5}), "expired"),
        "expired_long_ago": (es_token(keys, {**ok, "exp": now - 86_400}), "expired"),
        "not_yet_valid": (es_token(keys, {**ok, "nbf": now + 120}), "not_yet_valid"),
        "issued_in_the_future": (es_token(keys, {**ok, "iat": now + 120}), "not_yet_valid"),
        "no_exp": (es_token(keys, {k: v for k, v in ok.items() if k != "exp"}), "claims"),
        "no_sub": (es_token(keys, {k: v for k, v in ok.items() if k != "sub"}), "subject"),
        "sub_with_space": (es_token(keys, {**ok, "sub": "al ice"}), "subject"),
        "sub_with_colon": (es_token(keys, {**ok, "sub": "al:ice"}), "subject"),
        "sub_empty": (es_token(keys, {**ok, "sub": ""}), "subject"),
        "sub_too_long": (es_token(keys, {**ok, "sub": "a" * 65}), "subject"),
        "sub_not_a_string": (es_token(keys, {**ok, "sub": 42}), "subject"),
        "wrong_audience": (es_token(keys, {**ok, "aud": "another-app"}), "audience"),
        "no_audience": (es_token(keys, {k: v for k, v in ok.items() if k != "aud"}), "audience"),
        "wrong_issuer": (es_token(keys, {**ok, "iss": "https://evil.test"}), "issuer"),
        "no_issuer": (es_token(keys, {k: v for k, v in ok.items() if k != "iss"}), "issuer"),
    }
    out: dict[str, tuple[str | None, str]] = {"no_header": (None, "missing")}
    out["basic_scheme"] = ("Basic YWxpY2U6c2VjcmV0", "malformed")
    out["bearer_without_token"] = ("Bearer", "malformed")
    for name, (token, reason) in tokens.items():
        out[name] = (f"Bearer {token}", reason)
    return out
