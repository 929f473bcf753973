"""Bearer-token authentication: who is calling, from a JWT verified with PyJWT.

A token is accepted when its signature checks against a configured key with the one
algorithm that key allows (HS256 for the shared secret; RS256 or ES256 for a key-set key,
chosen by the token's `kid`), its `exp` is in the future, its `nbf`/`iat` (when present)
are not in the future beyond the leeway, each of those three is a JSON number from 0 to
MAX_TIME (RFC 7519's NumericDate: not a string, not a boolean, not 1e400), its `aud`/`iss`
match when those are configured, and its `sub` is a valid member name: the acting user.
Anything else is Unauthenticated, with a `reason` from REASONS (for metrics; never the
token itself).

Verified tokens are remembered (bounded, oldest dropped first, never past their `exp`) so
that a client reusing its token pays the signature check once; a change of keys forgets
them all, so that a removed key's tokens fail at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt import PyJWK
from jwt import exceptions as jwt_errors

from http_svc.errors import ApiError
from im_common.names import member_fault

# why a token was refused: the label values of the 401 metric
REASONS = (
    "missing",  # no Authorization header
    "malformed",  # not "Bearer <JWT>", or not a JWT
    "algorithm",  # an algorithm no configured key allows (none, HS256 without a secret, ...)
    "unknown_key",  # a kid the key set does not hold
    "bad_signature",
    "expired",
    "not_yet_valid",  # nbf or iat in the future
    "audience",
    "issuer",
    "subject",  # sub missing or not a valid member name
    "claims",  # exp missing, or a claim of the wrong type
)
CHALLENGE = 'Bearer realm="im"'
TIME_CLAIMS = ("exp", "nbf", "iat")
MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z: any later "time" is not one
_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt_errors.ExpiredSignatureError, "expired"),
    (jwt_errors.ImmatureSignatureError, "not_yet_valid"),
    (jwt_errors.InvalidSignatureError, "bad_signature"),
    (jwt_errors.InvalidAudienceError, "audience"),
    (jwt_errors.InvalidIssuerError, "issuer"),
    (jwt_errors.InvalidSubjectError, "subject"),
    (jwt_errors.DecodeError, "malformed"),
)
_MISSING = {"sub": "subject", "aud": "audience", "iss": "issuer"}  # a claim required but absent
_MESSAGES = {
    "missing": "an Authorization: Bearer <token> header is required",
    "malformed": "the Authorization header does not hold a Bearer JWT",
    "algorithm": "the token's algorithm is not accepted",
    "unknown_key": "the token's key (kid) is not known",
    "bad_signature": "the token's signature does not verify",
    "expired": "the token has expired",
    "not_yet_valid": "the token is not valid yet",
    "audience": "the token is for another audience",
    "issuer": "the token is from another issuer",
    "subject": "the token's sub is missing or not a valid member name",
    "claims": "the token lacks exp, or exp, nbf or iat is not a number of seconds 0..9999-12-31",
}


class Unauthenticated(ApiError):
    """401: no usable token. The answer carries WWW-Authenticate: Bearer."""

    def __init__(self, reason: str) -> None:
        super().__init__(401, "unauthenticated", _MESSAGES[reason], reason=reason)
        error = "" if reason == "missing" else ', error="invalid_token"'  # RFC 6750, 3.1
        self.headers = {"WWW-Authenticate": CHALLENGE + error}


@dataclass(frozen=True)
class Keys:
    """What tokens may be signed with: the HS256 secret, the public keys by kid."""

    secret: bytes | None = None
    public: Mapping[str, PyJWK] = field(default_factory=dict)


class Authenticator:
    """Verifies bearer tokens against `keys`; `user_of` answers the acting user."""

    def __init__(
        self,
        keys: Keys,
        *,
        audience: str = "",
        issuer: str = "",
        leeway_s: int = 30,
        cache_size: int = 10_000,
    ) -> None:
        self._keys = keys
        self._audience = audience or None
        self._issuer = issuer or None
        self._leeway = leeway_s
        self._cache_size = cache_size
        self._cache: dict[str, tuple[str, float]] = {}  # token -> (sub, exp)
        self.verified = 0  # signature checks made (the cache's misses)

    @property
    def keys(self) -> Keys:
        """The keys tokens are verified with now."""
        return self._keys

    def set_keys(self, keys: Keys) -> None:
        """Verify with `keys` from now on; every remembered token is checked again."""
        self._keys = keys
        self._cache.clear()

    def user_of(self, authorization: str | None) -> str:
        """The `sub` of the bearer token in an Authorization header value, or
        Unauthenticated."""
        if authorization is None:
            raise Unauthenticated("missing")
        scheme, _, token = authorization.partition(" ")
        token = token.strip(" ")
        # a JWT is ASCII (base64url and dots); other bytes would not even encode back
        if scheme.lower() != "bearer" or not token or not token.isascii():
            raise Unauthenticated("malformed")
        hit = self._cache.get(token)
        if hit is not None:
            if hit[1] > time.time():
                return hit[0]
            del self._cache[token]
            raise Unauthenticated("expired")
        sub, exp = self._verify(token)
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]  # the oldest entry
            self._cache[token] = (sub, exp)
        return sub

    def _verify(self, token: str) -> tuple[str, float]:
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.InvalidTokenError, ValueError, TypeError):  # a kid not a string, ...
            raise Unauthenticated("malformed") from None
        key, alg = self._key_for(header)
        self.verified += 1
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(_reason(exc)) from None
        except (TypeError, ValueError, OverflowError):  # (PyJWT 2.15 checks claim types
            raise Unauthenticated("claims") from None  # itself; older ones may not)
        _check_times(claims)
        return self._subject(claims), float(claims["exp"])

    def _key_for(self, header: dict[str, Any]) -> tuple[Any, str]:
        """The key and algorithm to check this token with: the algorithm comes from the
        key, never from the token (the token's must be that one)."""
        alg = header.get("alg")
        if alg == "HS256" and self._keys.secret is not None:
            return self._keys.secret, alg
        if alg not in ("RS256", "ES256"):
            raise Unauthenticated("algorithm")
        kid = header.get("kid")
        key = self._keys.public.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthenticated("unknown_key")
        if key.algorithm_name != alg:
            raise Unauthenticated("algorithm")
        return key.key, alg

    def _subject(self, claims: dict[str, Any]) -> str:
        sub = claims["sub"]
        if not isinstance(sub, str) or member_fault(sub) is not None:
            raise Unauthenticated("subject")
        # PyJWT allows exp up to the leeway in the past; the contract wants it in the future
        if float(claims["exp"]) <= time.time():
            raise Unauthenticated("expired")
        return sub


def _check_times(claims: dict[str, Any]) -> None:
    """Unauthenticated("claims") unless each of exp, nbf, iat present is a JSON number (not
    a string or a boolean, which PyJWT would take) from 0 to MAX_TIME (nor NaN, nor an
    integer too large for a float)."""
    for name in TIME_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Unauthenticated("claims")
        if not 0 <= value <= MAX_TIME:  # NaN compares False
            raise Unauthenticated("claims")


def _reason(exc: Exception) -> str:
    if isinstance(exc, jwt_errors.MissingRequiredClaimError):
        return _MISSING.get(exc.claim, "claims")
    return next((reason for kind, reason in _ERRORS if isinstance(exc, kind)), "claims")
