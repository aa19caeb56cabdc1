"""The embedded SFU: forwards encoded VP8 and Opus between browsers, inside the node (aiortc)."""
