"""Stamps: what each step last did, so that a step whose inputs did not change can skip."""

import hashlib
import os
from pathlib import Path

from invoke import Context

from shipyard.tooling.project import STAMPS


def digest(*paths: str) -> str:
    """A fingerprint of the contents of PATHS (files, or folders walked in order)."""
    fingerprint = hashlib.sha256()
    for top in paths:
        files = sorted(Path(top).rglob("*")) if Path(top).is_dir() else [Path(top)]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                fingerprint.update(f"{path}\0".encode() + path.read_bytes())
    return fingerprint.hexdigest()


def done(step: str, fingerprint: str) -> bool:
    """Whether STEP last succeeded on exactly these inputs."""
    stamp = STAMPS / step
    return stamp.is_file() and stamp.read_text() == fingerprint


def read(step: str) -> str | None:
    """What STEP last recorded, if it ever did."""
    stamp = STAMPS / step
    return stamp.read_text() if stamp.is_file() else None


def record(c: Context, step: str, fingerprint: str) -> None:
    """Remember that STEP succeeded on FINGERPRINT; nothing is written under --dry."""
    if not c.config.run.dry:
        STAMPS.mkdir(parents=True, exist_ok=True)
        replace(STAMPS / step, fingerprint)


def replace(path: Path, text: str) -> None:
    """Write TEXT to PATH whole: into a file beside it, renamed over PATH, so that a build
    running at the same time (two `inv build` at once) reads the old file or the new one,
    never the half of one."""
    written = path.with_name(f".{path.name}.{os.getpid()}")
    written.write_text(text)
    written.replace(path)
