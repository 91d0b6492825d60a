"""gRPC explainer service: exact TreeSHAP contributions, reasons and counterfactual hints."""
