"""Key sets (im_common/jwks.py) and the im-token tool (im_common/token_cli.py): what a
usable key set is, and keys, tokens and rotation made by the tool as the gateway sees them."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from http_svc.auth import Authenticator, Unauthenticated
from http_svc.auth_keys import load_keys
from im_common.jwks import JwksError, parse_keys, read_keys
from im_common.token_cli import main, new_key


def _public(key: Any, **extra: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(extra)
    return jwk


@pytest.fixture(scope="module")
def es_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_a_public_key_set_is_read_with_each_key_fixed_to_its_algorithm() -> None:
    private, public = new_key("RS256", "r")
    _, es_public = new_key("ES256", "e")
    keys = parse_keys({"keys": [public, es_public]})
    assert {kid: key.algorithm_name for kid, key in keys.items()} == {"r": "RS256", "e": "ES256"}
    assert parse_keys({"keys": [private]}, private=True)["r"].algorithm_name == "RS256"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda jwk: jwk.pop("kid"), 'no "kid"'),
        (lambda jwk: jwk.update(alg="HS256"), "signs ES256 only"),
        (lambda jwk: jwk.update(alg="RS256"), "signs ES256 only"),
        (lambda jwk: jwk.update(kty="oct"), "kty must be"),
        (lambda jwk: jwk.update(d="AAAA"), "is a private key"),
    ],
)
def test_an_unusable_key_makes_the_set_unusable(
    es_key: ec.EllipticCurvePrivateKey, change: Any, complaint: str
) -> None:
    jwk = _public(es_key, kid="k")
    change(jwk)
    with pytest.raises(JwksError, match=complaint):
        parse_keys({"keys": [_public(es_key, kid="fine"), jwk]})


def test_weak_keys_and_repeated_kids_are_refused(es_key: ec.EllipticCurvePrivateKey) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(JwksError, match="2048 bits"):
        parse_keys({"keys": [_public(small, kid="s")]})
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(JwksError):
        parse_keys({"keys": [_public(p384, kid="p")]})
    twice = _public(es_key, kid="k")
    with pytest.raises(JwksError, match="used twice"):
        parse_keys({"keys": [twice, twice]})
    with pytest.raises(JwksError, match="is not a private key"):
        parse_keys({"keys": [twice]}, private=True)
    documents: list[object] = [[], {"keys": {}}, {"keys": ["x"]}]
    for document in documents:
        with pytest.raises(JwksError):
            parse_keys(document)


def test_an_unreadable_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(JwksError, match="cannot read"):
        read_keys(tmp_path / "absent.jwks")
    (tmp_path / "bad.jwks").write_text("{")
    with pytest.raises(JwksError, match=r"bad\.jwks: not JSON"):
        read_keys(tmp_path / "bad.jwks")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out.strip()


def test_the_tool_makes_keys_mints_tokens_and_rotates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = str(tmp_path / "idp.jwks"), str(tmp_path / "gw.jwks")
    files = ("--private", private, "--public", public)
    old = _run(capsys, "keys", *files, "--kid", "old")
    assert stat.S_IMODE((tmp_path / "idp.jwks").stat().st_mode) == 0o600
    auth = Authenticator(load_keys("", public))
    old_token = _run(capsys, "mint", "alice", "--private", private, "--ttl", "60")
    assert auth.user_of(f"Bearer {old_token}") == "alice"
    new = _run(capsys, "keys", *files, "--alg", "RS256")
    assert new != old
    assert json.loads((tmp_path / "gw.jwks").read_text())["keys"][1]["alg"] == "RS256"
    new_token = _run(capsys, "mint", "bob", "--private", private)  # the newest key
    auth.set_keys(load_keys("", public))
    assert auth.user_of(f"Bearer {new_token}") == "bob"
    assert auth.user_of(f"Bearer {old_token}") == "alice"
    assert _run(capsys, "retire", *files, old) == f"retired {old}"
    auth.set_keys(load_keys("", public))
    with pytest.raises(Unauthenticated):
        auth.user_of(f"Bearer {old_token}")
    assert auth.user_of(f"Bearer {new_token}") == "bob"


def test_the_tool_mints_with_the_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = _run(capsys, "secret")
    assert len(secret) >= 43
    monkeypatch.setenv("IM_AUTH_JWT_SECRET", secret)
    token = _run(capsys, "mint", "carol", "--audience", "im", "--ttl", "5")
    auth = Authenticator(load_keys(secret, ""), audience="im")
    assert auth.user_of(f"Bearer {token}") == "carol"


@pytest.mark.parametrize(
    "argv",
    [
        ["mint", "al ice", "--secret-env", "IM_TEST_SECRET"],
        ["mint", "alice", "--secret-env", "IM_TEST_NO_SUCH_VARIABLE"],
        ["mint", "alice", "--ttl", "0", "--secret-env", "IM_TEST_SECRET"],
        ["retire", "--private", "{dir}/p", "--public", "{dir}/q", "nobody"],
    ],
)
def test_the_tool_says_what_is_wrong(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("IM_TEST_SECRET", "s" * 40)
    assert main([a.format(dir=tmp_path) for a in argv]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("im-token: ")
