"""The gateway's token checks (http_svc/auth.py) with real keys: every defect refused for
its own reason, every kind of key accepted, the cache of verified tokens."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from http_svc.auth import CHALLENGE, Authenticator, Keys, Unauthenticated
from http_svc.auth_keys import load_keys
from im_common.token_cli import add_key, mint, retire_key
from tests.auth_tokens import (
    AUDIENCE,
    ISSUER,
    SECRET,
    KeyFiles,
    claims,
    defects,
    es_token,
    good_tokens,
    make_key_files,
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return make_key_files(tmp_path_factory.mktemp("keys"))


def _auth(keys: KeyFiles, **options: int) -> Authenticator:
    loaded = load_keys(SECRET, str(keys.public))
    return Authenticator(loaded, audience=AUDIENCE, issuer=ISSUER, **options)


def _reason(auth: Authenticator, header: str | None) -> str:
    with pytest.raises(Unauthenticated) as refused:
        auth.user_of(header)
    assert refused.value.status == 401
    assert refused.value.code == "unauthenticated"
    assert refused.value.headers["WWW-Authenticate"].startswith(CHALLENGE)
    return refused.value.reason


def test_every_defect_is_refused_for_its_reason(keys: KeyFiles) -> None:
    auth = _auth(keys)
    found = {name: _reason(auth, header) for name, (header, _) in defects(keys).items()}
    assert found == {name: reason for name, (_, reason) in defects(keys).items()}


def test_a_missing_token_is_challenged_without_an_error_and_a_bad_one_with_one(
    keys: KeyFiles,
) -> None:
    auth = _auth(keys)
    with pytest.raises(Unauthenticated) as missing:
        auth.user_of(None)
    assert missing.value.headers["WWW-Authenticate"] == CHALLENGE
    with pytest.raises(Unauthenticated) as bad:
        auth.user_of("Bearer x.y.z")
    assert bad.value.headers["WWW-Authenticate"] == CHALLENGE + ', error="invalid_token"'


@pytest.mark.parametrize("kind", ["hs256", "es256", "rs256"])
def test_each_kind_of_key_is_accepted(keys: KeyFiles, kind: str) -> None:
    auth = _auth(keys)
    assert auth.user_of(f"Bearer {good_tokens(keys, 'bob')[kind]}") == "bob"
    assert auth.user_of(f"bearer {good_tokens(keys, 'ann')[kind]}") == "ann"  # any case


def test_without_a_secret_hs256_is_not_an_algorithm_at_all(keys: KeyFiles) -> None:
    auth = Authenticator(load_keys("", str(keys.public)), audience=AUDIENCE, issuer=ISSUER)
    assert _reason(auth, f"Bearer {good_tokens(keys)['hs256']}") == "algorithm"
    assert auth.user_of(f"Bearer {good_tokens(keys)['es256']}") == "alice"


def test_without_a_key_set_only_the_secret_is_accepted(keys: KeyFiles) -> None:
    auth = Authenticator(load_keys(SECRET, ""))
    assert auth.user_of(f"Bearer {mint('bob', 60, secret=SECRET)}") == "bob"
    assert _reason(auth, f"Bearer {good_tokens(keys)['es256']}") == "unknown_key"


def test_audience_and_issuer_are_checked_only_when_configured(keys: KeyFiles) -> None:
    open_auth = Authenticator(load_keys(SECRET, ""))
    other = mint("bob", 60, secret=SECRET, audience="another-app", issuer="elsewhere")
    assert open_auth.user_of(f"Bearer {other}") == "bob"
    strict = _auth(keys)
    assert _reason(strict, f"Bearer {other}") in ("audience", "issuer")
    other_app = mint("bob", 60, secret=SECRET, audience="another-app", issuer=ISSUER)
    assert _reason(strict, f"Bearer {other_app}") == "audience"
    listed = es_token(keys, claims(aud=["x", AUDIENCE], iss=ISSUER))
    assert strict.user_of(f"Bearer {listed}") == "alice"


def test_nbf_and_iat_get_the_leeway_and_exp_none(keys: KeyFiles) -> None:
    now = int(time.time())
    base: dict[str, Any] = {"aud": AUDIENCE, "iss": ISSUER}
    soon = es_token(keys, claims(nbf=now + 10, iat=now + 10, **base))
    assert _auth(keys).user_of(f"Bearer {soon}") == "alice"
    assert _reason(_auth(keys, leeway_s=0), f"Bearer {soon}") == "not_yet_valid"
    just_expired = es_token(keys, {**claims(**base), "exp": now - 1})
    assert _reason(_auth(keys), f"Bearer {just_expired}") == "expired"


def test_a_verified_token_is_checked_once(keys: KeyFiles) -> None:
    auth = _auth(keys)
    header = f"Bearer {good_tokens(keys)['es256']}"
    for _ in range(5):
        assert auth.user_of(header) == "alice"
    assert auth.verified == 1
    uncached = _auth(keys, cache_size=0)
    for _ in range(5):
        uncached.user_of(header)
    assert uncached.verified == 5


def test_the_cache_is_bounded_and_drops_the_oldest(keys: KeyFiles) -> None:
    auth = _auth(keys, cache_size=2)
    headers = [f"Bearer {good_tokens(keys, user)['hs256']}" for user in ("a", "b", "c")]
    for header in headers:
        auth.user_of(header)
    assert auth.verified == 3
    auth.user_of(headers[2])
    auth.user_of(headers[1])
    assert auth.verified == 3  # b and c are kept
    auth.user_of(headers[0])
    assert auth.verified == 4  # a was dropped


def test_a_cached_token_fails_once_it_expires(keys: KeyFiles) -> None:
    auth = _auth(keys)
    exp = int(time.time()) + 2  # at least a second to verify it while valid
    token = es_token(keys, {**claims(aud=AUDIENCE, iss=ISSUER), "exp": exp})
    assert auth.user_of(f"Bearer {token}") == "alice"
    time.sleep(exp + 0.05 - time.time())
    assert _reason(auth, f"Bearer {token}") == "expired"
    assert auth.verified == 1  # refused from the cache, by its exp


def test_new_keys_forget_the_verified_tokens(tmp_path: Path) -> None:
    private, public = tmp_path / "idp.jwks", tmp_path / "gw.jwks"
    old = add_key(private, public)
    auth = Authenticator(load_keys("", str(public)))
    header = f"Bearer {mint('bob', 60, private_path=private, kid=old)}"
    assert auth.user_of(header) == "bob"
    retire_key(private, public, old)
    add_key(private, public)
    auth.set_keys(load_keys("", str(public)))
    assert _reason(auth, header) == "unknown_key"


def test_keys_hold_no_key_when_none_is_configured() -> None:
    assert load_keys("", "") == Keys(None, {})


def test_a_refusal_says_what_is_wrong_without_the_token(keys: KeyFiles) -> None:
    auth = _auth(keys)
    with pytest.raises(Unauthenticated) as refused:
        auth.user_of(None)
    assert refused.value.message == "an Authorization: Bearer <token> header is required"
    token = good_tokens(keys)["es256"]
    with pytest.raises(Unauthenticated) as refused:
        auth.user_of(f"Basic {token}")  # a valid token under another scheme
    assert refused.value.reason == "malformed"
    assert token not in refused.value.message


def test_the_scheme_and_the_token_may_be_apart_by_more_than_one_space(keys: KeyFiles) -> None:
    assert _auth(keys).user_of(f"Bearer   {good_tokens(keys)['hs256']}") == "alice"


def test_a_claim_of_the_wrong_type_is_a_claims_refusal(keys: KeyFiles) -> None:
    bad_iat = es_token(keys, claims(aud=AUDIENCE, iss=ISSUER, iat="yesterday"))
    assert _reason(_auth(keys), f"Bearer {bad_iat}") == "claims"
