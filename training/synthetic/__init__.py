"""Synthetic Home Credit tables in the Kaggle format, sampled from shipped statistics."""

from training.synthetic.generate import generate

__all__ = ["generate"]
