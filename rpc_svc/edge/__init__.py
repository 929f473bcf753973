"""im-rpc's edge: the BatchStream RPC (servicer) and what travels on it (wire)."""
