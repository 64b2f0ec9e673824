"""The local flow for real: lock, export, bad input, and --dry, in a copy of the project."""

import hashlib
import subprocess

import pytest
from support import ROLE, ROOT, context, docker, inv, last_line

from shipyard.tooling import poetry
from shipyard.tooling.project import EXPORTED, exports


def test_the_committed_exports_match_the_committed_lock(tmp_path, monkeypatch):
    """What HEAD holds, which is what ships: requirements*.txt exported from its poetry.lock.
    The work tree is left out: a release relocks and exports it before this runs, and a user
    may be in the middle of a change."""
    for name in ("pyproject.toml", "poetry.lock", *EXPORTED):
        committed = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=ROOT, capture_output=True,
                                   check=True).stdout  # fmt: skip
        (tmp_path / name).write_bytes(committed)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")  # poetry, as the tasks run it
    groups = exports(context())  # as the project's pyproject.toml names them
    monkeypatch.chdir(tmp_path)
    for name, group in groups.items():
        exported = poetry.run(context(), "export", "--only", group, hide=True, warn=True,
                              in_stream=False)  # fmt: skip
        assert exported.ok, exported.stderr
        assert (tmp_path / name).read_text() == poetry.export_header() + exported.stdout, (
            f"{name} is not what poetry.lock exports: run `inv export` and commit the result."
        )


@pytest.mark.slow
def test_a_new_dependency_makes_export_check_fail_until_exported(project):
    """After a dependency is added and locked, --check names the stale file; export mends it."""
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '"fire (>=0.7,<0.8)",', '"fire (>=0.7,<0.8)",\n    "six (>=1.16)",'
        )
    )
    assert inv("lock", cwd=project).returncode == 0
    stale = inv("export", "--check", cwd=project)
    assert stale.returncode == 1
    assert last_line(stale) == (
        "error: requirements.txt and requirements-test.txt out of date with poetry.lock. "
        "Run `inv export` and commit the result."
    )
    assert inv("export", cwd=project).returncode == 0
    assert "six==" in (project / "requirements.txt").read_text()
    assert inv("export", "--check", cwd=project).returncode == 0


def test_a_broken_pyproject_fails_lock_with_poetry_s_message(project):
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.1.0'))
    failed = inv("lock", cwd=project)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stdout + failed.stderr
    assert "pyproject.toml" in failed.stdout + failed.stderr  # poetry names what it cannot read
    assert last_line(failed).startswith("error: poetry lock failed (exit 1). Fix what poetry names")


def test_an_unknown_option_gets_invoke_s_own_error():
    failed = inv("build", "--no-such-option")
    assert failed.returncode == 1
    assert "No idea what '--no-such-option' is!" in failed.stderr


def test_no_test_ran_is_a_failure_that_says_so():
    failed = inv("test", "--", "-k", "nothing_matches_this")
    assert failed.returncode == 5
    assert last_line(failed) == "error: no test ran: nothing matched the selection after --."


def _tree(folder) -> dict:
    """Every file under FOLDER (links not followed) with a digest of its content."""
    listed = subprocess.run(["find", ".", "-path", "./.git", "-prune", "-o", "-print"], cwd=folder,
                            capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        if (folder / name).is_file() and not (folder / name).is_symlink()
        else "link-or-folder"
        for name in listed
    }


@pytest.mark.parametrize(
    "task", [["venv", "--force"], ["lock"], ["install"], ["export"], ["test"], ["clean", "--local"]]
)
def test_dry_prints_the_commands_and_changes_nothing(project, task):
    stamps = _tree(ROOT / ".venv" / "stamps")
    before = _tree(project)
    dry = inv("--dry", *task, cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert _tree(project) == before
    assert _tree(ROOT / ".venv" / "stamps") == stamps


@pytest.mark.docker
@pytest.mark.parametrize(
    "task",
    [
        ["build"],
        ["build", "--test"],
        ["run", "--cmd", "say-hello --name alice"],
        ["smoke"],
        ["explore", "--cmd", "true"],
        ["clean", "--local", "--base", "--build-cache", "--yes"],
        ["release"],
    ],
)
def test_dry_changes_nothing_on_the_engine_either(distroless, project, task):
    def engine_state():
        """Every container and image, but what makes a base: .ci/run makes two beside the
        suite (its images, labelled base, and its upgrade's container)."""
        state = []
        for kind, role in (("container", "upgrade"), ("image", "base")):
            listed = docker(kind, "ls", "--all", "--quiet").stdout.split()
            bases = docker(kind, "ls", "--all", "--quiet", "--filter", f"label={ROLE}={role}")
            state.append(sorted(set(listed) - set(bases.stdout.split())))
        return state

    before, tree = engine_state(), _tree(project)
    dry = inv("--dry", *task, cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert engine_state() == before
    assert _tree(project) == tree
