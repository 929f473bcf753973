"""A local nginx in front of local gateways, from the templates in deploy/nginx/.

`write_config` renders deploy/nginx/nginx.conf.template (a main config keeping
everything under one directory) and im.conf.template (the same http{} part the
compose scale file uses) for a list of gateway addresses; `reload` rewrites the
upstream and signals nginx (kept-alive upstream connections survive, unlike a
DNS-resolved proxy_pass on nginx 1.22).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from string import Template

from devtools.binaries import system_exe

TEMPLATES = Path(__file__).resolve().parent.parent / "deploy" / "nginx"


def render(template: str, values: dict[str, str]) -> str:
    """`template` with the given ${IM_*} values; other $names (nginx's own) untouched."""
    return Template(template).safe_substitute(values)


def upstream_lines(gateways: Sequence[str]) -> str:
    """The upstream's server lines for gateway "host:port" addresses."""
    return "\n    ".join(f"server {addr} max_fails=1 fail_timeout=2s;" for addr in gateways)


def write_config(
    directory: Path,
    port: int,
    gateways: Sequence[str],
    max_body: int,
    client_timeout: str = "10s",
    rate_limit: str = "",
    read_timeout: str = "40s",
) -> Path:
    """Write nginx.conf and im.conf into `directory`; the path of nginx.conf. `rate_limit`
    ("50r/s", bursts of twice that) limits requests per client address ("": none);
    `read_timeout` is how long a gateway may take to answer (504 beyond)."""
    directory.mkdir(parents=True, exist_ok=True)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    values = {
        "IM_NGINX_DIR": str(directory),
        "IM_NGINX_PORT": f"127.0.0.1:{port}",
        "IM_NGINX_UPSTREAM": upstream_lines(gateways),
        "IM_NGINX_RESOLVER": "",
        "IM_NGINX_BACKEND": "im_http",
        "IM_NGINX_MAX_BODY": str(max_body),
        "IM_NGINX_CLIENT_TIMEOUT": client_timeout,
        "IM_NGINX_READ_TIMEOUT": read_timeout,
        "IM_NGINX_LIMIT_ZONE": "",
        "IM_NGINX_LIMIT": "",
    }
    if rate_limit:
        burst = 2 * int(rate_limit.split("r/")[0])
        values["IM_NGINX_LIMIT_ZONE"] = (
            f"limit_req_zone $binary_remote_addr zone=im_per_ip:10m rate={rate_limit};"
        )
        values["IM_NGINX_LIMIT"] = f"limit_req zone=im_per_ip burst={burst} nodelay;"
    for name in ("im.conf", "nginx.conf"):
        text = (TEMPLATES / f"{name}.template").read_text()
        (directory / name).write_text(render(text, values))
    return directory / "nginx.conf"


def nginx_argv(directory: Path, *extra: str) -> list[str]:
    """The command line of an nginx in the foreground with the config in `directory`."""
    conf = directory / "nginx.conf"
    log = directory / "error.log"
    return [
        system_exe("nginx", "nginx"),
        "-p",
        str(directory),
        "-c",
        str(conf),
        "-e",
        str(log),
        *extra,
    ]


def reload(directory: Path, port: int, gateways: Sequence[str], max_body: int) -> None:
    """Point the nginx running with `directory`'s config at `gateways` (config + reload)."""
    write_config(directory, port, gateways, max_body)
    subprocess.run(nginx_argv(directory, "-s", "reload"), check=True, capture_output=True)
