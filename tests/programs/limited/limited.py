"""The intruder's attacks, from a program that declares its own sandbox limits (limited.json)."""

from intruder.intruder import main

__all__ = ["main"]
