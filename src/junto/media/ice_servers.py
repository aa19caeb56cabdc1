"""STUN and TURN servers: what browsers and the node's own peer connections are told to use.

TURN credentials follow coturn's `use-auth-secret` scheme (the "TURN REST API" draft,
draft-uberti-behave-turn-rest-00): the username is "<expiry unix time>:<id>" and the password is
base64(HMAC-SHA1(secret, username)). The node and coturn share only the secret; each socket gets
its own credentials that expire, so nothing long-lived reaches a browser.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from aiortc import RTCIceServer

from junto.config import Settings


def turn_credentials(
    secret: str, who: str, ttl_seconds: int, now: float | None = None
) -> tuple[str, str]:
    expiry = int((time.time() if now is None else now) + ttl_seconds)
    username = f"{expiry}:{who}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def for_browser(settings: Settings, who: str) -> list[dict[str, Any]]:
    """`welcome.media.ice_servers` (RTCIceServer dictionaries for the browser)."""
    servers: list[dict[str, Any]] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls and settings.turn_secret:
        username, credential = turn_credentials(
            settings.turn_secret, who, settings.turn_ttl_seconds
        )
        servers.append(
            {"urls": list(settings.turn_urls), "username": username, "credential": credential}
        )
    return servers


def for_node(settings: Settings) -> list[RTCIceServer]:
    """The same servers for the node's peer connections (aiortc)."""
    servers = [RTCIceServer(urls=list(settings.stun_urls))] if settings.stun_urls else []
    if settings.turn_urls and settings.turn_secret:
        username, credential = turn_credentials(
            settings.turn_secret, f"node-{settings.node_id}", settings.turn_ttl_seconds
        )
        servers.append(
            RTCIceServer(urls=list(settings.turn_urls), username=username, credential=credential)
        )
    return servers
