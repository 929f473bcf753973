"""im-rpc refuses to start against a Redis whose store layout it does not know: exit code 2
and a log line that says what to do; against an empty Redis it starts and marks it."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from devtools.procs import redis_server, rpc_service
from rpc_svc.store.keys import LAYOUT, LAYOUT_KEY

pytestmark = pytest.mark.e2e


def test_im_rpc_marks_an_empty_redis_and_refuses_one_of_another_layout(workdir: Path) -> None:
    server = redis_server(workdir).start()
    try:
        url = f"redis://127.0.0.1:{server.port}/0"
        first = rpc_service(workdir, url).start()
        first.stop()
        with redis.Redis(port=server.port) as admin:
            assert admin.get(LAYOUT_KEY) == LAYOUT.encode()
            admin.set(LAYOUT_KEY, "0")
        refused = rpc_service(workdir, url)
        with pytest.raises(RuntimeError, match="did not start"):
            refused.start()
        assert refused.proc is not None
        assert refused.proc.wait(10) == 2
        log = refused.log.read_text()
        assert "Redis holds data of store layout '0'" in log
        assert "start on an empty Redis" in log
    finally:
        server.stop()
