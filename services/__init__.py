"""Online side of the platform: gRPC scoring and explainer, REST gateway, advisor UI."""
