"""JSON Web Key Sets: the public keys gateways verify tokens with, the private ones the
identity provider (or `im-token`) signs with.

Each key is fixed to one algorithm by its type: RSA keys (2048 bits or more) sign RS256, EC
keys on P-256 sign ES256. A key names its algorithm in "alg" or leaves it out; any other
value, a missing or repeated "kid", or another key type (such as "oct": shared secrets are
configured on their own, never in a key set) makes the whole set unusable, so that a typo
cannot silently drop a key. A public set holding a private key is refused too: it would
hand every gateway the power to sign.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import PyJWK
from jwt.exceptions import PyJWKError

ALGORITHMS = {"RSA": "RS256", "EC": "ES256"}
MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi"})


class JwksError(ValueError):
    """A key set that cannot be used; the message says which key and why."""


def parse_keys(document: Any, *, private: bool = False) -> dict[str, PyJWK]:
    """The keys of a JWKS document by kid, each fixed to its algorithm; `private` says
    whether the keys must be private (signing) or must be public (verifying)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError('a JWKS document is a JSON object with a "keys" array')
    keys: dict[str, PyJWK] = {}
    for n, jwk in enumerate(document["keys"]):
        kid, key = _parse_key(jwk, n, private)
        if kid in keys:
            raise JwksError(f"key {n}: kid {kid!r} is used twice")
        keys[kid] = key
    return keys


def _parse_key(jwk: Any, n: int, private: bool) -> tuple[str, PyJWK]:
    if not isinstance(jwk, dict):
        raise JwksError(f"key {n} is not a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise JwksError(f'key {n} has no "kid"')
    alg = ALGORITHMS.get(jwk.get("kty"))  # type: ignore[arg-type]
    if alg is None:
        raise JwksError(f"key {kid!r}: kty must be one of {', '.join(ALGORITHMS)}")
    if jwk.get("alg", alg) != alg:
        raise JwksError(f"key {kid!r}: a {jwk['kty']} key signs {alg} only")
    if private != bool(_PRIVATE_MEMBERS & jwk.keys()):
        raise JwksError(f"key {kid!r} is {'not ' if private else ''}a private key")
    try:
        key = PyJWK(jwk, algorithm=alg)
    except (PyJWKError, ValueError, TypeError) as exc:
        raise JwksError(f"key {kid!r}: {exc}") from None
    _check_strength(kid, key.key)
    return kid, key


def _check_strength(kid: str, key: Any) -> None:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        raise JwksError(f"key {kid!r}: RSA keys need {MIN_RSA_BITS} bits or more")
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise JwksError(f"key {kid!r}: EC keys must be on P-256 (ES256)")


def read_keys(path: Path, *, private: bool = False) -> dict[str, PyJWK]:
    """The keys of the JWKS file at `path` (see parse_keys); JwksError if unusable."""
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise JwksError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise JwksError(f"{path}: not JSON: {exc}") from None
    try:
        return parse_keys(document, private=private)
    except JwksError as exc:
        raise JwksError(f"{path}: {exc}") from None


def document(jwks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A JWKS document of the JWKs in `jwks` (by kid), in that order."""
    return {"keys": [dict(jwk) for jwk in jwks.values()]}
