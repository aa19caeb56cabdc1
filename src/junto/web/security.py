"""Placeholder: sessions, CSRF and the current user (filled in by its owner)."""

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    pass
