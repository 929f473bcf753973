"""im-rpc: the gRPC service that owns the chat rules and the message store."""
