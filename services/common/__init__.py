"""What the gRPC services share: typed errors, the server bootstrap, metrics, settings."""
