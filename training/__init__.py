"""Offline side of the platform: Home Credit data layer, features, training."""
