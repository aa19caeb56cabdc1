"""What the code speaks and reads is written down: every frame type of the realtime protocol and
every error code is in docs/protocol.md, and every environment variable the node reads is in the
README's configuration table. A new frame or setting without its line fails here."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any

import pytest

from junto.config import ENV_PREFIX, Limits, load_settings
from junto.events.log import WITHHELD
from junto.room.protocol import CLIENT_TYPES, ErrorCode

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "junto"
# Where frames are built: the room's rules, the event log, the hub, the WebSocket endpoint, and
# the two domain modules that store room events of their own.
FRAME_SOURCES = [
    SRC / "room",
    SRC / "events",
    SRC / "realtime",
    SRC / "web" / "ws.py",
    SRC / "speech" / "live.py",
    SRC / "conversations.py",
]
# The call that builds a frame, and which positional argument is its type.
FRAME_BUILDERS = {"emit": 0, "control": 0, "broadcast_control": 0, "append": 2, "soft_delete": 3}
# `{"type": ...}` dicts that are not frames: the ASGI messages the connection sends.
NOT_FRAMES = {"websocket.send", "websocket.close", "websocket.accept"}
FRAME_NAME = re.compile(r"^[a-z]+(\.[a-z_]+)?$")


def table_keys(markdown: str) -> set[str]:
    """Every `code` in the first cell of a table row (`a` / `b` rows give both)."""
    keys: set[str] = set()
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first_cell = line.split("|")[1]
            keys.update(re.findall(r"`([^`]+)`", first_cell))
    return keys


def protocol_terms() -> set[str]:
    """Every `code` in docs/protocol.md: frames are in its tables, some (presence, lobby) and
    the error codes in its prose."""
    return set(re.findall(r"`([^`\n]+)`", (ROOT / "docs" / "protocol.md").read_text()))


def _python_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def _frame_type_nodes(tree: ast.AST) -> list[ast.expr]:
    nodes: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            index = FRAME_BUILDERS.get(name)
            if index is not None and len(node.args) > index:
                nodes.append(node.args[index])
        elif (
            isinstance(node, ast.Return)
            and isinstance(node.value, ast.Tuple)
            and len(node.value.elts) == 2
            and isinstance(node.value.elts[1], ast.Dict)
        ):
            # `return "chat.message", {...}`: an event announced as (type, data), stored with
            # others of its group (junto.room.group).
            nodes.append(node.value.elts[0])
        elif isinstance(node, ast.Dict):
            nodes += [
                value
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and key.value == "type"
            ]
    return nodes


def server_frame_types() -> set[str]:
    """The type of every frame the node sends, read from the code that builds them."""
    found = {WITHHELD}
    for source in FRAME_SOURCES:
        for path in _python_files(source):
            for node in _frame_type_nodes(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if FRAME_NAME.match(node.value) and node.value not in NOT_FRAMES:
                        found.add(node.value)
    return found


class RecordingEnviron(dict[str, str]):
    """os.environ that remembers which names were asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)


def settings_read(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every JUNTO_* variable load_settings() looks at (set or not)."""
    environ = RecordingEnviron({})
    monkeypatch.setattr(os, "environ", environ)
    load_settings()
    return {name for name in environ.asked if name.startswith(ENV_PREFIX)}


def readme_configuration() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Configuration", 1)[1].split("\n## ", 1)[0]


def test_the_scan_finds_the_frames_it_must() -> None:
    # A guard on the scan itself: if these went missing the test below would prove nothing.
    assert {"chat.message", "chat.deleted", "welcome", "snapshot", "ack", "error"} <= (
        server_frame_types()
    )


def test_every_frame_type_is_in_the_protocol_document() -> None:
    documented = protocol_terms()
    missing_client = sorted(set(CLIENT_TYPES) - documented)
    missing_server = sorted(server_frame_types() - documented)
    assert not missing_client, f"client frames not in docs/protocol.md: {missing_client}"
    assert not missing_server, f"server frames not in docs/protocol.md: {missing_server}"


def test_every_error_code_is_in_the_protocol_document() -> None:
    documented = protocol_terms()
    missing = sorted(code.value for code in ErrorCode if code.value not in documented)
    assert not missing, f"error codes not in docs/protocol.md: {missing}"


def test_every_setting_is_in_the_readme_configuration_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documented = table_keys(readme_configuration())
    read = settings_read(monkeypatch)
    limits = {f"{ENV_PREFIX}LIMIT_{name.upper()}" for name in Limits.__dataclass_fields__}
    assert limits <= read, "every limit is read from its own variable"
    # The limits are one row, JUNTO_LIMIT_<NAME>, pointing at `Limits` for the list.
    assert f"{ENV_PREFIX}LIMIT_<NAME>" in documented
    missing = sorted(read - limits - documented)
    assert not missing, f"settings not in the README's configuration table: {missing}"
