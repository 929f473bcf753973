"""Settings: variables, flags, defaults and the errors of bad values."""

from __future__ import annotations

import os
import subprocess

import pytest

from devtools.procs import BIN
from http_svc.config import Settings as HttpSettings
from http_svc.config import split_addr
from im_common.settings import SettingsError, describe, flag_name, load_settings
from rpc_svc.config import Settings as RpcSettings


def test_defaults_are_the_assignments_ports() -> None:
    http = load_settings(HttpSettings, {})
    rpc = load_settings(RpcSettings, {})
    assert (http.port, http.rpc_addrs, rpc.port) == (8080, ("127.0.0.1:8888",), 8888)
    assert rpc.redis_url == "redis://127.0.0.1:6379/0"


def test_variables_are_read_and_typed() -> None:
    env = {"IM_HTTP_PORT": "9000", "IM_RPC_ADDRS": "a:1, b:2,", "IM_UVLOOP": "False"}
    s = load_settings(HttpSettings, env)
    assert (s.port, s.rpc_addrs, s.uvloop) == (9000, ("a:1", "b:2"), False)


def test_a_flag_wins_over_its_variable() -> None:
    s = load_settings(RpcSettings, {"IM_RPC_PORT": "1"}, ["--rpc-port", "2", "--redis-url", "x"])
    assert (s.port, s.redis_url) == (2, "x")


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"IM_HTTP_PORT": "http"}, "IM_HTTP_PORT"),
        ({"IM_HTTP_PORT": "70000"}, "IM_HTTP_PORT"),
        ({"IM_UVLOOP": "maybe"}, "IM_UVLOOP"),
        ({"IM_RPC_ADDRS": "nohost"}, "IM_RPC_ADDRS"),
        ({"IM_RPC_ADDRS": ","}, "IM_RPC_ADDRS"),
        ({"IM_ETCD_URL": "127.0.0.1:2379"}, "IM_ETCD_URL"),
        ({"IM_ETCD_URL": "http://:2379"}, "IM_ETCD_URL"),
        ({"IM_ETCD_URL": "http://h:99999"}, "IM_ETCD_URL"),
    ],
)
def test_bad_values_fail_naming_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        load_settings(HttpSettings, env)


@pytest.mark.parametrize("bad", ["0", "3", "two"])
def test_a_sync_token_version_is_1_or_2(bad: str) -> None:
    assert load_settings(RpcSettings, {"IM_SYNC_TOKEN_VERSION": "1"}).sync_token_version == 1
    with pytest.raises(SettingsError, match="IM_SYNC_TOKEN_VERSION"):
        load_settings(RpcSettings, {"IM_SYNC_TOKEN_VERSION": bad})


def test_the_gateway_waits_longer_than_the_longest_long_poll() -> None:
    assert load_settings(HttpSettings, {}).response_timeout_s > 30


def test_with_etcd_no_static_address_is_needed() -> None:
    s = load_settings(HttpSettings, {"IM_RPC_ADDRS": "", "IM_ETCD_URL": "http://127.0.0.1:2379"})
    assert (s.rpc_addrs, s.etcd_prefix) == ((), "/im/rpc/")
    with pytest.raises(SettingsError, match="IM_RPC_ADDRS"):
        load_settings(HttpSettings, {"IM_RPC_ADDRS": ""})


def test_the_advertised_address_of_an_rpc_instance() -> None:
    assert load_settings(RpcSettings, {"IM_RPC_PORT": "9"}).advertised_addr == "127.0.0.1:9"
    given = load_settings(RpcSettings, {"IM_RPC_ADVERTISE": "rpc-3:8888"})
    assert given.advertised_addr == "rpc-3:8888"
    everywhere = load_settings(RpcSettings, {"IM_RPC_HOST": "0.0.0.0"}).advertised_addr
    host, _, port = everywhere.rpartition(":")
    assert port == "8888"
    assert host not in ("", "0.0.0.0")


def test_ipv6_addresses_split() -> None:
    assert split_addr("[::1]:8888") == ("::1", 8888)


def test_every_setting_has_a_flag_and_help() -> None:
    for cls in (HttpSettings, RpcSettings):
        for env, flag, _default, help_ in describe(cls):
            assert env.startswith("IM_")
            assert flag == flag_name(env)
            assert help_


@pytest.mark.parametrize(
    ("program", "env", "message"),
    [
        ("im-http", {"IM_HTTP_PORT": "x"}, "im-http: IM_HTTP_PORT: cannot use 'x'"),
        ("im-rpc", {"IM_RPC_PORT": "0"}, "im-rpc: IM_RPC_PORT: 0 is outside 1..65535"),
    ],
)
def test_a_service_with_a_bad_setting_exits_2_naming_it(
    program: str, env: dict[str, str], message: str
) -> None:
    done = subprocess.run(
        [str(BIN / program)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stderr.strip()[: len(message)]) == (2, message)
