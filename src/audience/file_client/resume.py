"""The resume state of a run, kept beside its errors file: how far it got, what it counted."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import msgspec

STATE_VERSION = 1


def state_path_for(errors_path: Path) -> Path:
    """The resume state lives beside the errors file: `contacts.errors.state.json`."""
    return errors_path.with_name(f"{errors_path.stem}.state.json")


class State(msgspec.Struct):
    """How far a run got: the rows of its first `rows_done` records are in."""

    sha256: str
    options: str
    rows_done: int = 0
    errors_bytes: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    version: int = STATE_VERSION


def load_state(path: Path) -> State | None:
    """The saved state, or None when there is none (or it is unreadable)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=State)
    except (OSError, msgspec.DecodeError):
        return None


def save_state(path: Path, state: State) -> None:
    """Write the state atomically: a crash leaves the old one or the new one."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(msgspec.json.encode(state))
    os.replace(temporary, path)


def remove_state(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
