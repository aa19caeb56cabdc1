"""Which local addresses aioice offers as ICE host candidates.

aioice gathers every interface address except 127.0.0.1 (aioice.ice.get_host_addresses). A node
behind a known address, and every test on loopback, must choose them instead: the setting
`media_addresses` (JUNTO_MEDIA_ADDRESSES) lists them. The choice is process-wide because aioice
reads it through a module function; a node has one network identity, so that is what we want.
"""

from __future__ import annotations

from collections.abc import Sequence

import aioice.ice

_original = aioice.ice.get_host_addresses
_addresses: tuple[str, ...] = ()


def _chosen_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if not _addresses:
        return _original(use_ipv4, use_ipv6)
    return [a for a in _addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


def use_addresses(addresses: Sequence[str]) -> None:
    """Offer exactly these addresses as host candidates (empty: aioice's own choice)."""
    global _addresses
    _addresses = tuple(a.strip() for a in addresses if a.strip())
    aioice.ice.get_host_addresses = _chosen_host_addresses
