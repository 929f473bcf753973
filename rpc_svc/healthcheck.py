"""`python -m rpc_svc.healthcheck [host:port]`: exit 0 when im-rpc reports IMService serving.

For container healthchecks: asks the standard gRPC health service of the im-rpc at
host:port (default 127.0.0.1:IM_RPC_PORT), which reports NOT_SERVING while Redis is
unreachable. Exit 1 when not serving or not answering within 2 s.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from grpclib.client import Channel
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from im_common.rpc_names import SERVICE


async def serving(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """True when the im-rpc at host:port reports IMService as SERVING."""
    channel = Channel(host, port)
    try:
        reply = await HealthStub(channel).Check(
            HealthCheckRequest(service=SERVICE), timeout=timeout_s
        )
        return bool(reply.status == HealthCheckResponse.SERVING)
    except Exception:  # refused, reset, deadline, bad reply: all mean unhealthy
        return False
    finally:
        channel.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Check the address in argv[0] (or the local default); 0 healthy, 1 not."""
    args = list(sys.argv[1:] if argv is None else argv)
    target = args[0] if args else f"127.0.0.1:{os.environ.get('IM_RPC_PORT', '8888')}"
    host, _, port = target.rpartition(":")
    ok = asyncio.run(serving(host, int(port)))
    sys.stdout.write("serving\n" if ok else "not serving\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
