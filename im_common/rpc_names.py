"""The gRPC names both sides of the hop use outside the generated stubs."""

from __future__ import annotations

SERVICE = "improto.IMService"  # as the health service reports it
BATCH_STREAM = f"/{SERVICE}/BatchStream"  # served and called on grpclib's stream itself
