"""The deployment files: compose files valid (docker-compose config), the published ports
as documented, the nginx template accepted by nginx, the image holding every package."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.binaries import system_exe
from devtools.nginx import TEMPLATES, nginx_argv, write_config

ROOT = Path(__file__).resolve().parent.parent
# --env-file: a developer's own .env must not change what the tests see
NO_ENV_FILE = ["--env-file", str(ROOT / "tests" / "empty.env")]
BASE = [*NO_ENV_FILE, "-f", "docker-compose.yml", "-f", "docker-compose.override.yml"]
SCALED = [*NO_ENV_FILE, "-f", "docker-compose.yml", "-f", "docker-compose.scale.yml"]
CLUSTER = [*NO_ENV_FILE, "-f", "docker-compose.cluster.yml"]


def compose_config(files: list[str]) -> dict[str, Any]:
    """The merged, validated config of compose `files`, as docker-compose prints it."""
    exe = system_exe("docker-compose", "docker-compose")
    env = {  # what .env provides
        **os.environ,
        "IM_REDIS_PASSWORD": "from-the-env-file",
        "IM_REDIS_ADMIN_PASSWORD": "admin-from-the-env-file",
        "IM_AUTH_JWT_SECRET": "jwt-secret-from-the-env-file",
    }
    done = subprocess.run(
        [exe, *files, "config"], cwd=ROOT, capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def published(config: dict[str, Any]) -> dict[str, list[Any]]:
    return {name: s["ports"] for name, s in config["services"].items() if s.get("ports")}


def test_the_default_topology_publishes_only_the_gateway() -> None:
    config = compose_config(BASE)
    assert set(config["services"]) == {"redis", "etcd", "rpc", "http"}
    assert list(published(config)) == ["http"]
    assert config["services"]["redis"]["volumes"]
    for name in ("rpc", "http"):
        service = config["services"][name]
        assert service["healthcheck"]["test"]
        assert service["environment"]["IM_ETCD_URL"] == "http://etcd:2379"
        assert all(d["condition"] == "service_healthy" for d in service["depends_on"].values())


def test_the_scaled_topology_publishes_only_nginx() -> None:
    config = compose_config(SCALED)
    assert set(config["services"]) == {"redis", "etcd", "rpc", "http", "nginx"}
    assert list(published(config)) == ["nginx"]
    nginx = config["services"]["nginx"]
    assert "resolve" in nginx["environment"]["IM_NGINX_UPSTREAM"]  # replicas added later
    template = (TEMPLATES / "im.conf.template").read_text()
    needed = set(re.findall(r"\$\{(IM_NGINX_\w+)\}", template))
    assert needed == {k for k in nginx["environment"] if k.startswith("IM_NGINX_")}


def test_only_the_edge_is_reachable_and_redis_needs_its_user() -> None:
    config = compose_config(SCALED)
    services = config["services"]
    assert config["networks"]["backend"].get("internal") is True
    for name in ("redis", "etcd", "rpc"):
        assert list(services[name]["networks"]) == ["backend"]
    assert set(services["http"]["networks"]) == {"backend", "edge"}
    assert list(services["nginx"]["networks"]) == ["edge"]
    for name in ("redis", "etcd", "rpc", "http", "nginx"):
        assert services[name].get("read_only") is True, name
    assert "unprivileged" in services["nginx"]["image"]
    command = " ".join(services["redis"]["command"])
    # the default user is the admin, with a password of its own (an AOF replays as it)
    assert '--user default on ">$$IM_REDIS_ADMIN_PASSWORD"' in command
    assert "/etc/redis/im-user.acl" in command
    assert "--hash-max-listpack-value 4224" in command  # short chats stay compact
    assert "--zset-max-listpack-value 4224" in command  # edited texts too
    assert "im:from-the-env-file@redis" in services["rpc"]["environment"]["IM_REDIS_URL"]
    assert "IM_REDIS_PASSWORD=" in (ROOT / ".env.example").read_text()
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_cluster_topology_runs_six_redis_nodes_behind_the_gateway() -> None:
    config = compose_config(CLUSTER)
    services = config["services"]
    nodes = {f"redis-{i}" for i in range(1, 7)}
    assert set(services) == {*nodes, "redis-cluster-init", "etcd", "rpc", "http"}
    assert list(published(config)) == ["http"]
    assert config["networks"]["backend"].get("internal") is True
    addresses = {services[n]["networks"]["backend"]["ipv4_address"] for n in nodes}
    init = " ".join(services["redis-cluster-init"]["command"])
    assert all(f"{a}:6379" in init for a in addresses)
    assert "--cluster-replicas 1" in init
    for name in nodes:
        command = " ".join(services[name]["command"])
        assert "--cluster-enabled yes" in command
        assert "/etc/redis/im-user-cluster.acl" in command
        assert "--hash-max-listpack-value 4224" in command
        assert services[name]["read_only"] is True
    rpc = services["rpc"]
    assert rpc["environment"]["IM_REDIS_CLUSTER"] == "true"
    assert rpc["depends_on"]["redis-cluster-init"]["condition"] == "service_completed_successfully"
    assert "IM_REDIS_ADMIN_PASSWORD=" in (ROOT / ".env.example").read_text()


@pytest.mark.parametrize(
    ("files", "variable"),
    [
        (BASE, "IM_REDIS_PASSWORD"),
        (BASE, "IM_AUTH_JWT_SECRET"),
        (SCALED, "IM_AUTH_JWT_SECRET"),
        (CLUSTER, "IM_REDIS_PASSWORD"),
        (CLUSTER, "IM_REDIS_ADMIN_PASSWORD"),
        (CLUSTER, "IM_AUTH_JWT_SECRET"),
    ],
)
def test_compose_refuses_to_start_without_its_secrets(files: list[str], variable: str) -> None:
    exe = system_exe("docker-compose", "docker-compose")
    env = {
        "IM_REDIS_PASSWORD": "x",
        "IM_REDIS_ADMIN_PASSWORD": "y",
        "IM_AUTH_JWT_SECRET": "z",
        **{k: v for k, v in os.environ.items() if not k.startswith(("IM_REDIS", "IM_AUTH"))},
    }
    del env[variable]
    done = subprocess.run(
        [exe, *files, "config"], cwd=ROOT, capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode != 0
    assert variable in done.stderr


def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    write_config(tmp_path, 18080, ["127.0.0.1:18081", "127.0.0.1:18082"], 65536)
    conf = (tmp_path / "im.conf").read_text()
    assert "${" not in conf
    read_timeout = int(conf.split("proxy_read_timeout ")[1].split("s;")[0])
    assert read_timeout > 30  # the longest long poll (wait_ms 30,000) fits
    assert "$remote_addr" in conf  # nginx's own variables are left alone
    done = subprocess.run(nginx_argv(tmp_path, "-t"), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_image_holds_every_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dockerfile = (ROOT / "Dockerfile").read_text()
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.removesuffix("*")  # a package and its sub-packages
        assert f"COPY {package}/ {package}/" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("docker-compose.yml", "--scale http=3 --scale rpc=3"),
        ("docker-compose.scale.yml", "--scale http=3 --scale rpc=3"),
        ("docker-compose.cluster.yml", "docker compose -f docker-compose.cluster.yml up --build"),
    ],
)
def test_compose_files_name_the_commands_they_document(name: str, command: str) -> None:
    assert command in (ROOT / name).read_text()


@pytest.mark.parametrize("files", [BASE, SCALED, CLUSTER])
def test_every_topology_authenticates_and_im_rpc_requires_the_user(files: list[str]) -> None:
    services = compose_config(files)["services"]
    http, rpc = services["http"]["environment"], services["rpc"]["environment"]
    assert http["IM_AUTH_JWT_SECRET"] == "jwt-secret-from-the-env-file"
    assert rpc["IM_RPC_REQUIRE_USER"] == "true"
    assert "IM_AUTH_JWT_SECRET" not in rpc  # only gateways verify tokens
    assert "IM_AUTH_JWT_SECRET=" in (ROOT / ".env.example").read_text()


@pytest.mark.parametrize("files", [BASE, SCALED, CLUSTER])
def test_every_topology_gives_the_services_room_for_their_connections(files: list[str]) -> None:
    # a gateway's defaults need 12,560 descriptors (docs/operations.md "Open files")
    services = compose_config(files)["services"]
    for name in ("http", "rpc"):
        nofile = services[name]["ulimits"]["nofile"]
        limit = nofile["hard"] if isinstance(nofile, dict) else nofile
        assert int(limit) >= 12_560, (name, nofile)
