"""Placeholder router: WebSocket endpoints (filled in by its owner)."""

from fastapi import APIRouter

router = APIRouter()
