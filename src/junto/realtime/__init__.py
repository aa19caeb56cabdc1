"""The realtime hub: WebSocket connections, the room and presence streams, fan-out."""
