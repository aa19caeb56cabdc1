"""Junto: live public conversations that become collective knowledge."""

__version__ = "0.1.0"
