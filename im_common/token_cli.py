"""im-token: key sets and tokens for operators, tests, the perf harness and the docs.

    im-token keys   --private idp.jwks --public gateway.jwks [--alg ES256|RS256] [--kid ID]
    im-token retire --private idp.jwks --public gateway.jwks KID
    im-token mint   USER [--ttl 3600] (--private idp.jwks [--kid ID] | --secret-env VAR)
                    [--audience AUD] [--issuer ISS]
    im-token secret

`keys` adds a new key pair: the private half to the identity provider's key set (written
owner-only), the public half to the gateways' (IM_AUTH_JWKS_FILE); both files are made
when absent. `retire` removes a key from both. `mint` prints a token for USER signed with
the newest key of the private set (or --kid), or with the HS256 secret held in the
environment variable --secret-env names (default IM_AUTH_JWT_SECRET: never a flag, so the
secret stays out of the process list). `secret` prints a new HS256 secret. Rotating a key:
`keys` (gateways pick up the new public key within IM_AUTH_RELOAD_S), mint with it, then
`retire` the old kid once its last tokens have expired.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from im_common.jwks import ALGORITHMS, JwksError, document, parse_keys
from im_common.names import member_fault


class ToolError(Exception):
    """What the tool prints before exiting 1."""


def _read_set(path: Path, *, private: bool) -> dict[str, dict[str, Any]]:
    """The JWKs of the set at `path` by kid ({} when the file does not exist), checked."""
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_bytes())
        parse_keys(raw, private=private)
    except (ValueError, JwksError) as exc:
        raise ToolError(f"{path}: {exc}") from None
    return {jwk["kid"]: jwk for jwk in raw["keys"]}


def _write_set(path: Path, jwks: dict[str, dict[str, Any]], *, private: bool) -> None:
    """Write the set atomically (a gateway never reads half a file); private: mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as out:
        json.dump(document(jwks), out, indent=2)
        out.write("\n")
    os.replace(tmp, path)


def new_key(alg: str, kid: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new key pair as (private JWK, public JWK), both naming `kid` and `alg`."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private, public = (
            RSAAlgorithm.to_jwk(key, as_dict=True),
            RSAAlgorithm.to_jwk(key.public_key(), as_dict=True),
        )
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        private, public = (
            ECAlgorithm.to_jwk(key, as_dict=True),
            ECAlgorithm.to_jwk(key.public_key(), as_dict=True),
        )
    for jwk in (private, public):
        jwk.update(kid=kid, alg=alg, use="sig")
    return private, public


def add_key(private_path: Path, public_path: Path, alg: str = "ES256", kid: str = "") -> str:
    """Add a new key pair to both sets; its kid (default: the date and a random tag)."""
    private_set = _read_set(private_path, private=True)
    public_set = _read_set(public_path, private=False)
    kid = kid or f"{time.strftime('%Y%m%d')}-{secrets.token_hex(4)}"
    if kid in private_set or kid in public_set:
        raise ToolError(f"kid {kid!r} is already in use")
    private, public = new_key(alg, kid)
    private_set[kid] = private
    public_set[kid] = public
    _write_set(private_path, private_set, private=True)
    _write_set(public_path, public_set, private=False)
    return kid


def retire_key(private_path: Path, public_path: Path, kid: str) -> None:
    """Remove the key `kid` from both sets (its tokens stop working)."""
    private_set = _read_set(private_path, private=True)
    public_set = _read_set(public_path, private=False)
    if kid not in private_set and kid not in public_set:
        raise ToolError(f"kid {kid!r} is in neither key set")
    private_set.pop(kid, None)
    public_set.pop(kid, None)
    _write_set(private_path, private_set, private=True)
    _write_set(public_path, public_set, private=False)


def mint(
    user: str,
    ttl_s: int,
    *,
    private_path: Path | None = None,
    kid: str = "",
    secret: str = "",
    audience: str = "",
    issuer: str = "",
) -> str:
    """A token for `user`, valid from now for `ttl_s` seconds."""
    if member_fault(user) is not None:
        raise ToolError(f"{user!r} is not a valid member name")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user, "iat": now, "exp": now + ttl_s}
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    if private_path is None:
        if not secret:
            raise ToolError("no key: give --private, or set the --secret-env variable")
        return jwt.encode(claims, secret.encode(), algorithm="HS256")
    jwks = _read_set(private_path, private=True)
    if not jwks:
        raise ToolError(f"{private_path}: no key (make one: im-token keys)")
    kid = kid or list(jwks)[-1]
    if kid not in jwks:
        raise ToolError(f"{private_path}: no key {kid!r}")
    key = parse_keys({"keys": [jwks[kid]]}, private=True)[kid]
    return jwt.encode(claims, key.key, algorithm=key.algorithm_name, headers={"kid": kid})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="im-token", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    for verb, what in (("keys", "add a key pair"), ("retire", "remove a key")):
        sub = verbs.add_parser(verb, help=what)
        sub.add_argument("--private", type=Path, required=True, help="the signing key set")
        sub.add_argument("--public", type=Path, required=True, help="the gateways' key set")
        if verb == "keys":
            sub.add_argument("--alg", choices=sorted(ALGORITHMS.values()), default="ES256")
            sub.add_argument("--kid", default="", help="default: the date and a random tag")
        else:
            sub.add_argument("kid")
    sub = verbs.add_parser("mint", help="print a token for a user")
    sub.add_argument("user")
    sub.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (3600)")
    sub.add_argument("--private", type=Path, help="sign with this key set's newest key")
    sub.add_argument("--kid", default="", help="sign with this key of --private")
    sub.add_argument("--secret-env", default="IM_AUTH_JWT_SECRET", help="HS256 secret's variable")
    sub.add_argument("--audience", default="")
    sub.add_argument("--issuer", default="")
    verbs.add_parser("secret", help="print a new HS256 secret")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; 1 with a message on stderr when it cannot."""
    args = _parser().parse_args(argv)
    try:
        if args.verb == "keys":
            out = add_key(args.private, args.public, args.alg, args.kid)
        elif args.verb == "retire":
            retire_key(args.private, args.public, args.kid)
            out = f"retired {args.kid}"
        elif args.verb == "mint":
            if args.ttl < 1:
                raise ToolError("--ttl must be at least 1 second")
            out = mint(
                args.user,
                args.ttl,
                private_path=args.private,
                kid=args.kid,
                secret=os.environ.get(args.secret_env, ""),
                audience=args.audience,
                issuer=args.issuer,
            )
        else:
            out = secrets.token_urlsafe(48)
    except ToolError as exc:
        sys.stderr.write(f"im-token: {exc}\n")
        return 1
    sys.stdout.write(out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
