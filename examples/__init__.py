"""Runnable examples of integrating with the centre (docs/intake.md)."""
