"""Public REST gateway: a thin, authenticated FastAPI adapter over the gRPC backends."""
