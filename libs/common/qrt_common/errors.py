"""Errors that more than one layer raises or handles."""

from __future__ import annotations


class Unavailable(Exception):
    """A backing service (the store, the broker) cannot be reached right now: try again later."""


class ConfigurationError(Exception):
    """The configuration cannot work (an unknown store URL, a missing setting); says why."""
