"""The README's local cluster (`scripts/start --cluster`): it comes up with authentication
on, serves through nginx over every gateway with the token it prints, and Ctrl-C stops every
process it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devtools.procs import free_port

pytestmark = pytest.mark.e2e


def _wait_for(log: Path, pattern: str, seconds: float) -> re.Match[str] | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        time.sleep(0.2)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    )


def test_the_local_cluster_serves_through_nginx_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "cluster.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IM_")}
    argv = [sys.executable, "-m", "devtools.cluster", "--rpc", "2", "--http", "2"]
    argv += ["--port", str(port), "--dir", str(tmp_path / "run")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        ready = _wait_for(log, r"ready: (http://\S+)", 60)
        assert ready, log.read_text()[-3000:]
        url = ready.group(1)
        assert url == f"http://127.0.0.1:{port}"
        printed = _wait_for(log, r"TOKEN=(\S+)", 5)
        assert printed, log.read_text()[-3000:]
        alice = {"Authorization": f"Bearer {printed.group(1)}"}
        procfile = (tmp_path / "run" / "Procfile").read_text()
        gateways = re.findall(r"im-http --http-port (\d+)", procfile)
        assert len(gateways) == 2
        assert len(re.findall(r"im-rpc --rpc-port", procfile)) == 2
        with httpx.Client(base_url=url, timeout=10, headers=alice) as http:
            for i in range(20):
                r = http.post("/api/send", json={"chat": "alice:b", "text": f"{i}"})
                assert r.status_code == 200
            page = (http.get("/api/pull", params={"chat": "alice:b", "limit": 100})).json()
            assert [m["text"] for m in page["messages"]] == [str(i) for i in range(20)]
            # the original assignment's clients: GET with a JSON body
            body = {"chat": "alice:b", "limit": 3, "reverse": True}
            page = http.request("GET", "/api/pull", json=body).json()
            assert [m["text"] for m in page["messages"]] == ["19", "18", "17"]
            anonymous = http.get(
                "/api/pull", params={"chat": "alice:b"}, headers={"Authorization": ""}
            )
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"].startswith("Bearer")
            too_big = http.post("/api/send", content=b"x" * 70_000)
            assert (too_big.status_code, too_big.json()["error"]) == (413, "payload_too_large")
            for gw in gateways:  # nginx spread the requests over both gateways
                metrics = (http.get(f"http://127.0.0.1:{gw}/metrics")).text
                assert 'route="/api/send"' in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    pids = [int(p) for p in re.findall(r"started \(pid=(\d+)\)", log.read_text())]
    assert len(pids) == 8  # redis, etcd, 2 im-rpc, 2 im-http, nginx, the ready line
    assert code in (0, 130, -signal.SIGINT)
    assert not [pid for pid in pids if _alive(pid)]
