"""`inv adopt PATH`: a poetry project takes the collection, in one step; and later, its updates.

What a project takes is shipyard/ whole (the tasks, tooling/, docker/, the Dockerfile), but for
the collection's own tests, which test the tooling here. What a project keeps is its own: its
pyproject.toml and lock (to which poetry adds the group `shipyard`, what the tasks need),
its tasks.py (written only where there is none: it imports the collection's tasks, and holds
the project's own), its invoke.yaml (its settings), its Dockerfile and CI. So an update
replaces shipyard/ whole, as copier brings a later template into a project: ADOPTED records
each file that it wrote, by its digest, so that a file edited since is never replaced
unasked (the edit belongs in a setting, or in a task of the project's own).
"""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from invoke import Context, Exit

from shipyard import __version__
from shipyard.tooling import poetry, project
from shipyard.tooling.project import COLLECTION, ROOT

PYTHON = "3.11"  # the oldest Python that the collection's own code runs on (tomllib)
ADOPTED = "adopted.json"  # in the project's shipyard/: the collection's version, and its files
LEFT_HERE = ("tests",)  # the collection's own tests: they test the tooling, here
TASKS = '''\
"""This project's tasks: the shipyard collection's workflow (shipyard/tasks.py), and its own.

`inv --list` names them; `inv release` runs the flow, from a fresh clone to a tested image.
Settings go in invoke.yaml (or INVOKE_* variables); a task of the project's own is written
here with @task and added to ns with ns.add_task. `inv adopt` updates shipyard/ and never
touches this file.
"""

from shipyard.tasks import ns

__all__ = ["ns"]
'''


def files() -> dict[str, str]:
    """The collection's files that a project takes (as git tracks them here), by their path
    from the project's root, with their SHA-256."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", COLLECTION],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    taken = {}
    for name in filter(None, listed):
        path = ROOT / name
        inside = path.relative_to(COLLECTION).parts
        if path.is_file() and inside[0] not in LEFT_HERE and inside[0] != ADOPTED:
            taken[name] = _digest(path)
    return taken


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edited(target: Path) -> list[str]:
    """The files of TARGET's shipyard/ that differ from what `adopt` wrote there (or all of
    them, where `adopt` did not write it)."""
    record = target / COLLECTION.name / ADOPTED
    if not record.is_file():
        found = (target / COLLECTION.name).rglob("*")
        return sorted(str(path.relative_to(target)) for path in found if path.is_file())
    written = json.loads(record.read_text())["files"]
    changed = [name for name, digest in written.items()
               if not (target / name).is_file() or _digest(target / name) != digest]  # fmt: skip
    return sorted(changed)


def copy(target: Path) -> tuple[str | None, int]:
    """Write the collection into TARGET's shipyard/, replacing what an earlier `adopt` wrote;
    the version that it replaced (None where there was none), and how many files it wrote."""
    folder = target / COLLECTION.name
    record = folder / ADOPTED
    before = json.loads(record.read_text()) if record.is_file() else {}
    taken = files()
    for name in set(before.get("files", {})) - set(taken):  # gone from the collection since
        (target / name).unlink(missing_ok=True)
    for name in taken:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    record.write_text(json.dumps({"collection": __version__, "files": taken}, indent=1) + "\n")
    return before.get("collection"), len(taken)


def tasks_file(target: Path) -> str:
    """Write TARGET's tasks.py where it has none; what became of it, in a few words."""
    tasks = target / "tasks.py"
    if not tasks.exists():
        tasks.write_text(TASKS)
        return "tasks.py: written; it imports the collection's tasks (add your own there)"
    if "shipyard.tasks" in tasks.read_text():
        return "tasks.py: kept; it imports the collection's tasks already"
    return (
        "tasks.py: yours, left as it is. To run the collection's tasks beside yours, add "
        "`from shipyard.tasks import ns` to it, and `ns.add_task(TASK)` for each of yours"
    )


def group(c: Context, target: Path) -> str:
    """Add the group `shipyard` (what the tasks need: invoke, syft) to TARGET's pyproject.toml
    and lock, through poetry, with the constraints that this project's own group has."""
    wanted = (
        project.pyproject().get("tool", {}).get("poetry", {}).get("group", {})
        .get("shipyard", {}).get("dependencies", {})
    )  # fmt: skip
    theirs = project.pyproject(target).get("tool", {}).get("poetry", {}).get("group", {})
    have = theirs.get("shipyard", {}).get("dependencies", {})
    versions = {name: given.get("version") if isinstance(given, dict) else given
                for name, given in have.items()}  # fmt: skip
    if versions == wanted:
        return "the group shipyard: in pyproject.toml and poetry.lock already"
    specifiers = [f"{name}@{constraint}" for name, constraint in wanted.items()]
    # For the Pythons that the tasks run on alone: the app may support older ones (>=3.5).
    add = ["add", "--lock", "--group", "shipyard", "--python", f">={PYTHON}", *specifiers]
    added = poetry.run(c, "--directory", str(target), *add, echo=True, warn=True)
    poetry.ok(c, added, what="poetry add", fix="Fix what poetry names above, then adopt again.")
    return f"the group shipyard ({', '.join(wanted)}): added to pyproject.toml and poetry.lock"


def neighbours(target: Path) -> list[str]:
    """What TARGET has of its own where the collection has a thing of the same kind: left
    alone, each with how the collection's own is used beside it."""
    said = []
    if (target / "Dockerfile").exists() or (target / "Containerfile").exists():
        said.append("your Dockerfile: left as it is; the tasks build shipyard/Dockerfile")
    if (target / ".dockerignore").exists():
        said.append(
            "your .dockerignore: left as it is; the tasks' builds read "
            "shipyard/Dockerfile.dockerignore in its place"
        )
    if list((target / ".github" / "workflows").glob("*.y*ml")):
        said.append(
            "your CI workflows: left as they are; a job that runs `inv release` (and "
            "`inv release --push` on a tag) is all the collection needs"
        )
    return said


def check_target(target: Path) -> None:
    """End in one line where TARGET is not a project that can take the collection."""
    if not (target / "pyproject.toml").is_file():
        raise Exit(f"error: {target} has no pyproject.toml: give the folder of a poetry project.")
    if target.resolve() == ROOT.resolve():
        raise Exit(f"error: {target} is the collection's own project. Give another one.")
    project.app(target)  # a project that is not poetry's, or lacks a package, says so here
