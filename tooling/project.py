"""What the project is: its root, name and version, and the paths that the tasks share."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _project() -> dict:
    """pyproject.toml's [project] table; empty where the file is broken (`inv lock` says how)."""
    try:
        return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return {}


PROJECT = _project()
NAME, VERSION = PROJECT.get("name", ROOT.name), PROJECT.get("version", "unknown")
VENV = Path(".venv")
POETRY = VENV / "poetry"  # poetry's own environment: `poetry sync` of .venv can never remove it
STAMPS = VENV / "stamps"  # what each step last did, to skip it when its inputs are unchanged
# Every container and image the tasks make carries this label; `clean` removes by it, nothing else.
ROLE = f"{NAME}.role"
# The two exported requirement files and the poetry group each holds.
EXPORTS = {"requirements.txt": "main", "requirements-test.txt": "test"}
