"""Chooses the media backend named by the settings (the composition root calls this)."""

from __future__ import annotations

from junto.config import Settings
from junto.media import ice_servers
from junto.media.base import MediaBackend


def build_media_backend(settings: Settings) -> MediaBackend | None:
    """The configured backend, not yet started; None when live media is turned off."""
    name = settings.media_backend
    if name == "none":
        return None
    if name == "embedded":
        from junto.media.embedded.ice import use_addresses
        from junto.media.embedded.sfu import EmbeddedSfu

        if settings.media_addresses:
            use_addresses(settings.media_addresses)
        return EmbeddedSfu(lambda: ice_servers.for_node(settings))
    raise ValueError(f"JUNTO_MEDIA_BACKEND: expected embedded or none, got {name!r}")
