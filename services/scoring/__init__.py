"""gRPC scoring service: probability of default and decision for the champion model."""
