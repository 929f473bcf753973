"""Typed settings from `IM_*` environment variables and CLI flags.

Each service declares one frozen dataclass whose fields are made with
:func:`setting`; :func:`load_settings` is the only reader of the environment.
A field's CLI flag is derived from its variable: ``IM_HTTP_PORT`` -> ``--http-port``.
A flag wins over the variable, the variable over the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


def setting(
    env: str,
    default: Any,
    help: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    secret: bool = False,
) -> Any:
    """Declare a settings field read from `env`, with bounds for numbers; a `secret` one is
    left out of the settings' repr (and so of any log line that prints them)."""
    return dataclasses.field(
        default=default, repr=not secret, metadata={"env": env, "help": help, "lo": lo, "hi": hi}
    )


def flag_name(env: str) -> str:
    """The CLI flag of an environment variable: IM_HTTP_PORT -> --http-port."""
    return "--" + env.removeprefix("IM_").lower().replace("_", "-")


def parse_bool(raw: str) -> bool:
    """Parse true/false/1/0/yes/no/on/off, any case."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _parse(kind: Any, raw: str) -> Any:
    if kind is bool:
        return parse_bool(raw)
    if kind is int:
        return int(raw.strip())
    if kind is float:
        return float(raw.strip())
    if kind == tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def _check_bounds(env: str, value: Any, meta: Mapping[str, Any]) -> None:
    lo, hi = meta["lo"], meta["hi"]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise SettingsError(f"{env}: {value!r} is outside {lo}..{hi}")


def load_settings(
    cls: type[T],
    environ: Mapping[str, str],
    argv: Sequence[str] | None = None,
    prog: str | None = None,
) -> T:
    """Build `cls` from flags in `argv`, then `environ`, then defaults."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    parser = argparse.ArgumentParser(prog=prog, description=cls.__doc__)
    for f in fields:
        env = f.metadata["env"]
        parser.add_argument(
            flag_name(env), dest=f.name, default=None, help=f"{f.metadata['help']} [{env}]"
        )
    flags = vars(parser.parse_args(list(argv or [])))
    values: dict[str, Any] = {}
    for f in fields:
        env = f.metadata["env"]
        raw = flags[f.name] if flags[f.name] is not None else environ.get(env)
        if raw is None:
            continue
        try:
            values[f.name] = _parse(hints[f.name], raw)
        except ValueError as exc:
            raise SettingsError(f"{env}: cannot use {raw!r}: {exc}") from None
        _check_bounds(env, values[f.name], f.metadata)
    return cls(**values)


def describe(cls: type[Any]) -> list[tuple[str, str, Any, str]]:
    """(variable, flag, default, help) of every field, for docs and --help."""
    return [
        (f.metadata["env"], flag_name(f.metadata["env"]), f.default, f.metadata["help"])
        for f in dataclasses.fields(cls)
    ]


def load_or_exit(
    from_env: Callable[[Sequence[str]], T], prog: str, argv: Sequence[str] | None
) -> T:
    """Settings from `from_env(argv or sys.argv[1:])`; a bad one is printed, then exit 2."""
    try:
        return from_env(sys.argv[1:] if argv is None else argv)
    except SettingsError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        raise SystemExit(2) from None
