"""Audience: a self-hosted contacts service with a Notifuse-compatible HTTP API."""

__version__ = "0.1.0"
