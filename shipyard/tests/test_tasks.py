"""tasks.py: the exact commands each task composes, pinned with invoke's MockContext.

What the commands then do is tested for real elsewhere (test_image.py and its siblings);
here the point is what runs, with which arguments, and what does not run at all.
"""

import functools
import hashlib
import io
import itertools
import json
import os
import re
import shlex
import shutil
import sys
import tarfile
from pathlib import Path
from unittest.mock import Mock

import pytest
from invoke import Config, Exit, MockContext, Result
from support import ROOT

import tasks as repository
from shipyard import tasks
from shipyard.tooling import (
    archive,
    bootstrap,
    cross,
    engine,
    images,
    imports,
    opened,
    platforms,
    podman,
    provenance,
    registry,
    reproducible,
    sbom,
    secrets,
    verification,
)
from shipyard.tooling.project import DOCKERFILE

PIP_CONFIG = f"{sys.executable} -m pip config list"
PYPI = f"{sys.executable} -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)'"
ENGINE = f"docker version --format '{engine.VERSIONS}'"  # the engine, the CLI, the platform
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """Tasks read and write in a small project of the tests' own (fixtures/), never the real
    tree: its exports are current for its lock, whatever state the real ones are in."""
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    for name in tasks.EXPORTED:  # the fixtures hold their bodies; the header names this lock
        (tmp_path / name).write_text(tasks.poetry.export_header() + (FIXTURES / name).read_text())
    for variable in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_INDEX_URL"):
        monkeypatch.delenv(variable, raising=False)
    # What pip, the engine and registries say is asked anew each test.
    for module, answers in ((secrets, "_pip_settings"), (platforms, "_engine_platform"),
                            (registry, "_answers")):  # fmt: skip
        monkeypatch.setattr(module, answers, {})
    monkeypatch.setattr(bootstrap, "_said", set())
    monkeypatch.setattr(engine, "_answered", {})
    engine.forget()
    # A docker CLI is on PATH, as far as the tasks can tell; the engine answers as each test says.
    which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name: "/usr/bin/docker" if name == "docker" else which(name)
    )
    return tmp_path


def context(run: dict, **config) -> MockContext:
    """A MockContext with the project's defaults (plus CONFIG) that answers RUN's commands.

    pip has no index or CA bundle of its own configured, and names PyPI's simple index.
    """
    overrides = tasks.ns.configuration()
    for key, value in config.items():
        area, _, name = key.partition("_")
        overrides[area] = {**overrides.get(area, {}), name: value}
    pip = {
        PIP_CONFIG: Result(stdout=""),
        PYPI: Result(stdout="https://pypi.invalid/simple/\n"),
    }
    return MockContext(config=Config(overrides=overrides), run={**pip, **run})


def commands(c: MockContext) -> list[str]:
    """The commands C ran, but for the questions asked of pip (its index, its CA bundle) and
    of the engine (its platform)."""
    questions = {PIP_CONFIG, PYPI, ENGINE}
    return [call.args[0] for call in c.run.call_args_list if call.args[0] not in questions]


def failed(code: int = 1, stdout: str = "", stderr: str = "") -> Result:
    return Result(exited=code, stdout=stdout, stderr=stderr)


# --- The local flow --------------------------------------------------------------------------


FIND_PYTHON = "python3.13 -c 'import sys; print(sys.executable)'"
VENV_COMMANDS = {
    FIND_PYTHON: Result(stdout="/opt/python/bin/python3.13\n"),
    "rm -rf .venv": Result(),
    "/opt/python/bin/python3.13 -m venv .venv": Result(),
    "/opt/python/bin/python3.13 -m venv .venv/poetry": Result(),
    ".venv/poetry/bin/pip install --quiet "
    "poetry==2.5.1 poetry-plugin-export==1.10.1 poetry-plugin-pypi-mirror==0.6.5": Result(),
}


def test_venv_makes_both_environments_and_pins_poetry():
    """.venv from python.version's interpreter, then poetry, pinned, in its own environment."""
    c = context(VENV_COMMANDS)
    tasks.venv(c, force=True)
    assert commands(c) == list(VENV_COMMANDS)


def test_venv_finds_a_python_that_pyenv_has_but_does_not_select(monkeypatch, tmp_path):
    """pyenv's shim for python3.13 fails unless 3.13 is selected: pyenv's own copy is used."""
    (tmp_path / "3.13.0" / "bin").mkdir(parents=True)
    (tmp_path / "3.13.0" / "bin" / "python3.13").touch()
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    python = str(tmp_path / "3.13.0" / "bin" / "python3.13")
    c = context(
        {
            FIND_PYTHON: failed(127, stderr="pyenv: python3.13: command not found"),
            "pyenv prefix 3.13": Result(stdout=f"{tmp_path / '3.13.0'}\n"),
            re.compile(r"^(rm|.*pip install)"): Result(),
            f"{python} -m venv .venv": Result(),
            f"{python} -m venv .venv/poetry": Result(),
        }
    )
    tasks.venv(c, force=True)
    assert f"{python} -m venv .venv" in commands(c)


def test_venv_keeps_the_mirror_url_off_the_command_line():
    """A mirror URL may hold credentials: it reaches pip through the environment only."""
    mirror = "https://user:secret@mirror.invalid/simple"
    c = context(VENV_COMMANDS, pypi_mirror=mirror)
    tasks.venv(c, force=True)
    assert not any(mirror in command for command in commands(c))
    assert c.run.call_args_list[-1].kwargs["env"] == {"PIP_INDEX_URL": mirror}


def test_venv_is_a_no_op_when_done(capsys, workdir):
    """Made before with the same Python and pins: nothing runs."""
    (workdir / ".venv" / "bin").mkdir(parents=True)
    (workdir / ".venv" / "bin" / "python").touch()
    c = context({})
    tasks.stamps.record(c, "venv", f"python3.13 {c.poetry.requirements}")
    tasks.venv(c)
    assert commands(c) == []
    assert "nothing to do" in capsys.readouterr().out


def test_venv_names_a_missing_python(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    missing = "python3.9 -c 'import sys; print(sys.executable)'"
    c = context({missing: failed(127)}, python_version="3.9")
    with pytest.raises(
        Exit, match=r"no Python 3\.9 here \(python3\.9 is not on PATH, nor in pyenv"
    ):
        tasks.venv(c, force=True)


def test_a_python_version_that_is_not_one_is_one_clear_line():
    with pytest.raises(Exit, match=r"python\.version is '3', not a Python 3 version such as 3\.13"):
        tasks.venv(context({}, python_version="3"), force=True)


POETRY = ".venv/poetry/bin/poetry"


def test_lock_runs_poetry_lock_only_when_the_check_fails():
    c = context({f"{POETRY} check --lock": failed(), f"{POETRY} lock": Result()})
    tasks.lock(c)
    assert commands(c) == [f"{POETRY} check --lock", f"{POETRY} lock"]
    # Done: the same inputs again run nothing, not even the check.
    tasks.lock(c)
    assert len(commands(c)) == 2


def test_lock_goes_through_the_mirror_when_one_is_set():
    c = context({f"{POETRY} check --lock": Result()}, pypi_mirror="https://mirror.invalid/simple")
    tasks.lock(c)
    env = c.run.call_args.kwargs["env"]
    assert env["POETRY_PYPI_MIRROR_URL"] == "https://mirror.invalid/simple"
    assert env["VIRTUAL_ENV"] == str(ROOT / ".venv")


def test_poetry_reads_pip_s_own_index_where_no_mirror_is_set(monkeypatch):
    """PIP_INDEX_URL, else pip's index-url, else PyPI's simple index as pip names it."""
    c = context({f"{POETRY} check --lock": Result()})
    tasks.lock(c)
    assert c.run.call_args.kwargs["env"]["POETRY_PYPI_MIRROR_URL"] == "https://pypi.invalid/simple/"
    monkeypatch.setenv("PIP_INDEX_URL", "https://index.invalid/simple")
    (Path(".venv") / "stamps" / "lock").unlink()
    tasks.lock(c)
    assert c.run.call_args.kwargs["env"]["POETRY_PYPI_MIRROR_URL"] == "https://index.invalid/simple"


def test_poetry_trusts_the_ca_that_only_pip_s_config_names(tmp_path):
    """One CA for every client: where pip's config file names the CA (in a file that `pip
    config get` misses, beside another), and nothing in the environment does, poetry is
    handed it, as builds are."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    listed = f"global.constraint='/etc/xdg/pip/constraints.txt'\nglobal.cert='{bundle}'\n"
    c = context({f"{POETRY} check --lock": Result(), PIP_CONFIG: Result(stdout=listed)})
    tasks.lock(c)
    env = c.run.call_args.kwargs["env"]
    assert env["REQUESTS_CA_BUNDLE"] == env["SSL_CERT_FILE"] == str(bundle)
    assert secrets.ca_bundle(c) == str(bundle)


def test_lock_moves_requires_python_with_python_version(workdir):
    """python.version 3.11: requires-python becomes >=3.11,<3.12, and poetry locks for it."""
    runs = {f"{POETRY} check --lock": failed(), f"{POETRY} lock": Result()}
    c = context(runs, python_version="3.11")
    tasks.lock(c)
    assert 'requires-python = ">=3.11,<3.12"' in (workdir / "pyproject.toml").read_text()
    assert commands(c)[-1] == f"{POETRY} lock"


def test_no_installation_candidates_is_one_line_naming_the_index_and_the_fix():
    """poetry's hundreds of lines end in one: which index, and which setting to change."""
    output = "Unable to find installation candidates for polars (2.1.0)\n" * 3
    c = context(
        {f"{POETRY} sync --compile": failed(1, stdout=output)},
        pypi_mirror="https://user:secret@mirror.invalid/simple",
    )
    with pytest.raises(Exit) as exit_:
        tasks.install(c)
    assert exit_.value.message == (
        "error: poetry sync failed: poetry found no installation candidates for polars at "
        "https://mirror.invalid/simple. That index may not serve it, or not be reachable: "
        "set pypi.mirror (INVOKE_PYPI_MIRROR) to one that does."
    )


def test_an_sdist_that_cannot_build_here_is_one_line_naming_the_headers():
    """A dependency built from source on this machine, for want of its headers: one line."""
    output = (
        "Modules/common.h:15:10: fatal error: lber.h: No such file or directory\n"
        "Note: This error originates from the build backend, and is likely not a problem with "
        "poetry but one of the following issues with python-ldap (3.4.8)\n"
    )
    c = context({f"{POETRY} sync --compile": failed(1, stdout=output)})
    with pytest.raises(Exit) as exit_:
        tasks.install(c)
    assert exit_.value.message == (
        "error: poetry sync failed: python-ldap 3.4.8 has no wheel for this machine, and "
        "building it from source failed (see above). Install the Debian packages its build "
        "needs here (its headers, such as libpq-dev), as docker.build_packages names them for "
        "the image, then run it again."
    )


@pytest.mark.parametrize("task", [tasks.test, tasks.poetry_])
def test_unbalanced_quotes_after_the_double_dash_are_one_line(task):
    c = context({})
    c._set(remainder="-k 'cli")
    with pytest.raises(Exit, match=r"^error: cannot split the arguments after -- \"-k 'cli\": No "):
        task(c)
    assert commands(c) == []


def test_a_failing_lock_ends_in_one_line():
    c = context({f"{POETRY} check --lock": failed(), f"{POETRY} lock": failed(1)})
    with pytest.raises(Exit, match=r"^error: poetry lock failed \(exit 1\)\. Fix what poetry"):
        tasks.lock(c)


def test_install_syncs_poetry_s_groups_and_the_optional_ones_named():
    """poetry's own default (every group but the optional ones), and poetry.groups too."""
    c = context({f"{POETRY} sync --compile": Result()})
    tasks.install(c)
    tasks.install(c)  # in sync already: runs nothing
    assert commands(c) == [f"{POETRY} sync --compile"]
    c = context({f"{POETRY} sync --compile --with docs": Result()}, poetry_groups="docs")
    tasks.install(c)
    assert commands(c) == [f"{POETRY} sync --compile --with docs"]


def test_poetry_passes_its_arguments_to_poetry_through_the_tasks_index():
    """`inv poetry -- add numpy` runs poetry on .venv, reading the index that the tasks use."""
    c = context({f"{POETRY} add 'numpy>=2'": Result()}, pypi_mirror="https://mirror.invalid/simple")
    c._set(remainder="add 'numpy>=2'")
    tasks.poetry_(c)
    assert commands(c) == [f"{POETRY} add 'numpy>=2'"]
    env = c.run.call_args.kwargs["env"]
    assert env["POETRY_PYPI_MIRROR_URL"] == "https://mirror.invalid/simple"
    assert env["VIRTUAL_ENV"].endswith(".venv")


def test_poetry_without_a_command_is_one_line():
    c = context({})
    with pytest.raises(Exit, match=r"^error: no poetry command: give one after --, as in"):
        tasks.poetry_(c)
    assert commands(c) == []


PYTEST = ".venv/bin/python shipyard/docker/run-tests"


def test_test_runs_the_project_s_paths_without_what_test_slow_leaves_to_all(workdir):
    """The paths are the project's (tests/, where its configuration names none); what
    test.slow selects runs with --all alone; the rest is the project's own configuration."""
    (workdir / "tests").mkdir()
    quick = f"{PYTEST} tests -m 'not (docker or slow)'"
    c = context({quick: Result(), f"{PYTEST} tests": Result()}, test_slow="docker or slow")
    tasks.test(c)
    tasks.test(c, all=True)
    assert commands(c) == [quick, f"{PYTEST} tests"]


def test_test_markers_narrow_every_run_and_extra_arguments_come_last(workdir):
    (workdir / "tests").mkdir()
    expected = f"{PYTEST} tests -m '(not network) and not (slow)' -k 'cli and not slow' -x"
    c = context({expected: Result()}, test_markers="not network", test_slow="slow")
    c._set(remainder="-k 'cli and not slow' -x")
    tasks.test(c)
    assert commands(c) == [expected]


def test_a_selection_shows_coverage_but_does_not_enforce_it(workdir):
    """Where the project's addopts measure coverage, a selection covers part of the code."""
    pyproject = workdir / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.pytest.ini_options]\n'
                         'addopts = ["--cov"]\ntestpaths = ["checks"]\n')  # fmt: skip
    expected = f"{PYTEST} checks --cov-fail-under=0 -k cli"
    c = context({expected: Result()})
    c._set(remainder="-k cli")
    tasks.test(c)
    assert commands(c) == [expected]


def test_test_says_when_no_test_ran(workdir):
    (workdir / "tests").mkdir()
    c = context({f"{PYTEST} tests -k nothing_matches": failed(5)})
    c._set(remainder="-k nothing_matches")
    with pytest.raises(Exit, match=r"^error: no test ran: nothing matched the selection after --"):
        tasks.test(c)


def test_a_test_command_that_collects_nothing_says_what_to_set(workdir):
    (workdir / "tests").mkdir()
    c = context({f"{PYTEST} tests -m '(not network)'": failed(5)}, test_markers="not network")
    said = "error: pytest collected no test from `tests -m (not network)`. Set test.paths"
    c.set_result_for("run", f"{PYTEST} tests -m '(not network)'", failed(5, stdout=said))
    with pytest.raises(Exit, match=r"^error: pytest collected no test from .* Set test.paths"):
        tasks.test(c)


def test_test_changed_skips_a_green_run_with_the_same_inputs(workdir):
    (workdir / "tests").mkdir()
    (workdir / "tasks.py").write_text("")
    c = context({f"{PYTEST} tests": Result()})
    tasks.test(c, changed=True)
    tasks.test(c, changed=True)
    assert len(commands(c)) == 1
    (workdir / "my_project" / "hello.py").write_text("# changed\n")
    tasks.test(c, changed=True)
    assert len(commands(c)) == 2


def export_of(group: str) -> str:
    return f"{POETRY} export --only {group}"


def test_export_rewrites_only_what_changed(workdir, capsys):
    body = "fire==0.7.1 \\\n    --hash=sha256:00\n"
    (workdir / "requirements-test.txt").write_text(tasks.poetry.export_header() + body)
    c = context({export_of("main"): Result(stdout=body), export_of("test"): Result(stdout=body)})
    tasks.export(c)
    assert (workdir / "requirements.txt").read_text() == tasks.poetry.export_header() + body
    out = capsys.readouterr().out
    assert "wrote requirements.txt" in out
    assert "requirements-test.txt matches poetry.lock: unchanged" in out


def test_export_check_names_the_stale_file_and_writes_nothing(workdir):
    before = (workdir / "requirements.txt").read_text()
    stale = Result(stdout="new==1.0\n")
    current = Result(stdout=(workdir / "requirements-test.txt").read_text().split("\n", 1)[1])
    c = context({export_of("main"): stale, export_of("test"): current})
    with pytest.raises(Exit, match=r"^error: requirements\.txt out of date with poetry\.lock"):
        tasks.export(c, check=True)
    assert (workdir / "requirements.txt").read_text() == before


def test_lint_runs_ruff_hadolint_and_the_workflow_checks():
    """This repository's own task (tasks.py at its root), on the collection's code."""
    lint = [
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/hadolint --failure-threshold warning " + " ".join(repository.DOCKERFILES),
    ]
    c = context(dict.fromkeys(lint, True))
    repository.lint(c)  # the test's project has no workflow to check
    assert commands(c) == lint


# --- The container flow ----------------------------------------------------------------------


def docker_context(run: dict, **config) -> MockContext:
    """A MockContext whose engine answers and whose CLI has BuildKit."""
    return context(
        {
            ENGINE: Result(stdout="20.10.24 20.10.24+dfsg1 linux/amd64\n"),
            "docker buildx version": failed(),
            "docker system df --format '{{.Type}}\t{{.Size}}'": Result(
                stdout="Images\t7.8GB\nBuild Cache\t1.2GB\n"
            ),
            **run,
        },
        **config,
    )


def test_no_engine_ends_in_one_line_that_says_what_to_do():
    daemon_down = "Cannot connect to the Docker daemon at unix:///x.sock. Is it running?"
    c = context({ENGINE: failed(stderr=daemon_down)})
    with pytest.raises(
        Exit, match=r"^error: no Docker Engine answers \(Cannot connect.*DOCKER_HOST"
    ):
        tasks.run(c)


def test_a_cli_without_buildkit_is_told_the_fix():
    c = docker_context({ENGINE: Result(stdout="28.2.2 28.2.2 linux/amd64")})
    with pytest.raises(Exit, match=r"client 28\.2\.2.*buildx.*INVOKE_DOCKER_COMMAND"):
        tasks.build(c)


def test_buildx_is_enough():
    c = docker_context({"docker buildx version": Result(stdout="v0.29")})
    engine.require_buildkit(c)


@pytest.fixture
def build_context(monkeypatch):
    """A context for `build`, with the base, git and the SBOM answered without commands."""
    monkeypatch.setattr(bootstrap, "base", lambda c, platform: "my-project-base:trixie-amd64")
    answers = {"status": "", "--format=%H %cI %ct": "abc123 2025-11-30T00:00:00Z 1764460800"}
    monkeypatch.setattr(
        images, "git", lambda c, *args: answers.get(args[0], answers.get(args[-1], "abc123"))
    )
    monkeypatch.setattr(reproducible, "written", lambda c, image, *_: image.ref)  # below
    monkeypatch.setattr(sbom, "write", lambda *args, **kwargs: None)
    monkeypatch.setattr(provenance, "write", lambda *args: None)  # tested on its own
    monkeypatch.setattr(provenance, "build_packages", lambda *args: [])  # and so is this
    monkeypatch.setattr(imports, "check", lambda c, ref, platform: imports.Checked([]))  # below
    monkeypatch.setattr(bootstrap, "fresh", lambda c, platform, always: None)  # and so is this
    inspect = "docker image inspect --format"
    c = docker_context(
        {
            f"{inspect} '{{{{.Id}}}}' my-project:0.1.0": [
                Result(stdout="sha256:old"),
                Result(stdout="sha256:new"),
            ],
            f"{inspect} '{{{{.Size}}}}' my-project:0.1.0": Result(stdout="178600000"),
            re.compile(r"^docker build "): Result(),
        }
    )
    seen = {}
    mock = c.run

    def run(command, **kwargs):
        # The secrets' files exist only while the build runs: read them then.
        for flag in shlex.split(command):
            if flag.startswith("id=pip_index_url,src="):
                seen["index_url"] = Path(flag.split("src=")[1]).read_text()
        return mock(command, **kwargs)

    c._set(run=Mock(wraps=run))
    return c, seen


def parsed(command: str) -> tuple[list[str], dict[str, str]]:
    """A `docker build` COMMAND's flags and words, but its build arguments, by name."""
    words, args = shlex.split(command), {}
    for flag, value in itertools.pairwise(words):
        if flag == "--build-arg":
            name, _, given = value.partition("=")
            args[name] = given
    pairs = {index for index, word in enumerate(words) if word == "--build-arg"}
    rest = [word for index, word in enumerate(words) if index not in pairs | {i + 1 for i in pairs}]
    return rest, args


def test_build_composes_one_buildkit_command_from_the_app_and_the_settings(build_context, capsys):
    """The flags that matter, whatever their order: the collection's Dockerfile, the platform,
    the target and its names; and, as build arguments, what the app's pyproject.toml says
    (the test's own project: my_project, no script) and what the settings add."""
    c, _ = build_context
    tasks.build(c)
    [build] = [command for command in commands(c) if command.startswith("docker build ")]
    words, args = parsed(build)
    assert words[:2] == ["docker", "build"] and words[-1] == "."
    flags = dict(itertools.pairwise(words))
    assert flags["--file"] == "shipyard/Dockerfile"
    assert flags["--platform"] == "linux/amd64" and flags["--target"] == "runtime"
    assert flags["--label"] == "my-project.role=runtime"
    assert [words[i + 1] for i, word in enumerate(words) if word == "--tag"] == [
        "my-project:0.1.0", "my-project:latest"
    ]  # fmt: skip
    assert args == {
        "BASE_IMAGE": "my-project-base:trixie-amd64",
        "BUILDER_PLATFORM": "linux/amd64",
        "BUILD_IMAGE": "my-project-base:trixie-amd64",
        "STRIP_PACKAGE": "binutils",
        "STRIP_PROGRAM": "strip",
        "SDISTS": "",
        "PYTHON_VERSION": "3.13",
        "RUNTIME": "distroless",
        "BUILD_PACKAGES": "",
        "RUNTIME_PACKAGES": "",
        "FOUND_PACKAGES": "",
        "TEST_PACKAGES": "",
        "HOST_LIBRARIES": "",
        "STRIP": "1",
        "WHEEL_STAGE": "builder",
        "ROOTFS_VENV": "builder",
        "BUILD_REQUIRES": '["poetry-core"]',
        "SCRIPT": "",
        "IMPORTS": "my_project",
        "TEST_ARGS": '["-p", "no:cacheprovider"]',
        "TITLE": "my-project",
        "VERSION": "0.1.0",
        "REVISION": "abc123",
        "CREATED": "2025-11-30T00:00:00Z",
        "SOURCE": "unknown",
    }
    call = next(call for call in c.run.call_args_list if call.args[0] == build)
    assert call.kwargs["env"] == {"DOCKER_BUILDKIT": "1"}
    out = capsys.readouterr().out
    assert "app: my-project 0.1.0: my_project (my_project); no script" in out
    assert "my-project:0.1.0 and my-project:latest (linux/amd64): built, 179 MB" in out


def test_an_app_with_a_build_script_builds_its_wheel_on_the_target(build_context, workdir):
    """poetry's build script may compile: the wheel is then the target's, and the distroless
    tree serves what it links. Its script is the image's, its tests are the image's too."""
    c, _ = build_context
    pyproject = workdir / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + (
        '\n[project.scripts]\nmy-project = "my_project:main"\n'
        '\n[tool.poetry.build]\nscript = "build.py"\n'
        '\n[tool.pytest.ini_options]\ntestpaths = ["tests", "shipyard/tests"]\n'
    ))  # fmt: skip
    c.config.test.markers = "not network"
    tasks.build(c)
    [build] = [command for command in commands(c) if command.startswith("docker build ")]
    _, args = parsed(build)
    assert args["WHEEL_STAGE"] == "sdists" and args["ROOTFS_VENV"] == "app"
    assert args["SCRIPT"] == "my-project"
    # the collection's own tests stay on the host
    expected = ["-p", "no:cacheprovider", "tests", "-m", "(not network)"]
    assert json.loads(args["TEST_ARGS"]) == expected


def test_build_hands_the_ca_bundle_and_mirror_over_as_secrets(build_context, monkeypatch):
    """The command names the secrets' files, not the mirror URL, which may hold a token."""
    c, seen = build_context
    mirror = "https://user:token@mirror.invalid/simple"
    c.config.pypi.mirror = mirror
    monkeypatch.setenv("PIP_CERT", "/etc/hostname")  # any file will do
    tasks.build(c)
    build = next(command for command in commands(c) if command.startswith("docker build "))
    assert "--secret id=pip_cert,src=/etc/hostname" in build
    assert "--secret id=pip_index_url,src=" in build
    assert mirror not in build
    assert seen["index_url"] == mirror


def test_build_refuses_a_missing_ca_bundle(build_context, monkeypatch):
    c, _ = build_context
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    c.set_result_for("run", PIP_CONFIG, Result(stdout="global.timeout='60'\n"))
    with pytest.raises(Exit, match=r"CA bundle /nonexistent/ca\.pem \(from SSL_CERT_FILE\)"):
        tasks.build(c)


def test_build_refuses_exports_older_than_the_lock(build_context, workdir):
    c, _ = build_context
    (workdir / "poetry.lock").write_text("# changed\n")
    with pytest.raises(Exit, match=r"requirements\.txt and requirements-test\.txt not exported"):
        tasks.build(c)
    assert not any(command.startswith("docker build ") for command in commands(c))


def gate_context(*runs: Result, **config) -> MockContext:
    """A context in which the import check's containers answer RUNS, in turn."""
    inspect = "docker image inspect --format '{{.Id}}' my-project:0.1.0"
    return docker_context(
        {inspect: Result(stdout="sha256:new"), re.compile(r"^docker run "): list(runs)}, **config
    )


def said(*lines: dict) -> str:
    """What docker/imports.py prints for LINES: each module's start, then its result."""
    printed = []
    for line in lines:
        printed.append({"start": line["module"], "distribution": line["distribution"]})
        if "error" in line:
            printed.append(line)
    return "".join(f"imports.py: {json.dumps(line)}\n" for line in printed)


POLARS = {"distribution": "polars", "module": "polars", "error": None}
MAGIC = {"distribution": "python-magic", "module": "magic",
         "error": "ImportError: failed to find libmagic.  Check your installation"}  # fmt: skip


def test_the_import_check_runs_hardened_and_returns_each_module_that_fails(capsys):
    c = gate_context(Result(stdout=said(POLARS, MAGIC, VIPS)))
    checked = imports.check(c, "my-project:0.1.0", "linux/amd64")
    assert [result["module"] for result in checked.failed] == ["magic", "pyvips"]
    assert checked.fontless is None
    assert "1 of 3 modules import, hardened" in capsys.readouterr().out
    [run] = [command for command in commands(c) if command.startswith("docker run ")]
    hardened = ["--read-only", "--cap-drop ALL", "--security-opt no-new-privileges",
                "--network none", "--pull=never", "--entrypoint /opt/venv/bin/python"]  # fmt: skip
    assert all(flag in run for flag in hardened)


def test_a_module_allowed_with_its_reason_passes_and_one_without_a_reason_is_refused(capsys):
    c = gate_context(Result(stdout=said(POLARS, MAGIC)), docker_import_allowed="magic: no lib")
    imports.check(c, "my-project:0.1.0", "linux/amd64")
    out = capsys.readouterr().out
    assert "1 of 2 modules import, hardened" in out and "allowed to fail: magic" in out
    c = gate_context(docker_import_allowed={"magic": ""})
    with pytest.raises(Exit, match=r"names magic without a reason"):
        imports.check(c, "my-project:0.1.0", "linux/amd64")


def test_a_module_that_kills_the_interpreter_is_named_and_the_rest_still_checked():
    crash = {"distribution": "crashy", "module": "crashy"}
    c = gate_context(Result(stdout=said(POLARS, crash), exited=139), Result(stdout=said(MAGIC)))
    [crashed, magic] = imports.check(c, "my-project:0.1.0", "linux/amd64").failed
    assert crashed["module"] == "crashy" and magic["module"] == "magic"
    assert crashed["error"] == "the interpreter died (exit 139) while importing it"
    second = [command for command in commands(c) if command.startswith("docker run ")][-1]
    assert second.endswith(" polars crashy")  # tried already: skipped the second time


# --- Libraries opened by name (tooling/opened.py) ------------------------------------------

CFFI = ("OSError: cannot load library '{0}': {0}: cannot open shared object file: No such "
        "file or directory.  Additionally, ctypes.util.find_library() did not manage to "
        "locate a library called '{0}'")  # fmt: skip
VIPS = {"distribution": "pyvips", "module": "pyvips", "error": CFFI.format("libvips.so.42")}
WHICH = re.compile(r"^docker run .* /opt/build/libraries.py --which ")
MISSING = "libbar.so.2: cannot open shared object file"  # what the library itself needs


def weasyprint(library: str | None) -> dict:
    """weasyprint's result where it cannot open LIBRARY, as cffi says it (None: it imports)."""
    error = CFFI.format(library) if library else None
    return {"distribution": "weasyprint", "module": "weasyprint", "error": error}


def which(packages: dict[str, str], unasked: str | None = None) -> Result:
    """What libraries.py --which prints: the package that ships each library it found."""
    answer = {"release": "trixie", "packages": packages, "unasked": unasked}
    return Result(stdout=json.dumps(answer) + "\n")


def gate(*runs: Result) -> tuple[MockContext, list[str], functools.partial]:
    """A context whose `docker run`s answer RUNS in turn (each import check, and each
    libraries.py --which), the names of the images that the gate built again, and the gate."""
    c = gate_context(*runs)
    rebuilt: list[str] = []

    def rebuild() -> str:
        rebuilt.append("my-project:0.1.0")
        return "my-project:0.1.0"

    run = functools.partial(opened.gate, c, "my-project:0.1.0", "linux/amd64", rebuild=rebuild)
    return c, rebuilt, run


@pytest.fixture
def trixie(monkeypatch):
    """The base of every build: trixie's, bootstrapped."""
    monkeypatch.setattr(bootstrap, "base", lambda c, platform=None: "my-project-base:trixie-amd64")


@pytest.mark.parametrize(
    ("error", "libraries"),
    [
        (CFFI.format("libgobject-2.0-0"), ["libgobject-2.0-0"]),
        ("ImportError: failed to find libmagic.  Check your installation", ["libmagic"]),
        ("OSError: libfoo.so.1: cannot open shared object file: No such file", ["libfoo.so.1"]),
        (f"OSError: cannot load library 'libfoo.so.1': {MISSING}", ["libfoo.so.1", "libbar.so.2"]),
        ('OSError: no library called "cairo-2" was found', ["cairo-2"]),
        ("OSError: /opt/x/libz.so.9: cannot open shared object file", ["libz.so.9"]),
        ("RuntimeError: no display", []),
    ],
)
def test_the_libraries_that_an_error_could_not_open_are_read_off_it(error, libraries):
    """cffi's, the loader's (and ctypes'), python-magic's and cairocffi's words, each name once."""
    assert opened.names(error) == libraries


def test_libraries_opened_by_name_are_found_carried_and_kept_until_all_import(trixie, capsys):
    """weasyprint and python-magic fail at once: both libraries are looked up in one call, and
    the image built again with both packages. weasyprint then opens Pango: once more. Each
    package is said in one line, and kept, for this lock, base and platform alone."""
    c, rebuilt, run = gate(
        Result(stdout=said(POLARS, MAGIC, weasyprint("libgobject-2.0-0"))),
        which({"libmagic": "libmagic1t64", "libgobject-2.0-0": "libglib2.0-0t64"}),
        Result(stdout=said(POLARS, weasyprint("libpango-1.0-0"))),
        which({"libpango-1.0-0": "libpango-1.0-0"}),
        Result(stdout=said(POLARS, weasyprint(None))),
    )
    assert run() == []
    assert len(rebuilt) == 2
    asked = [command for command in commands(c) if WHICH.match(command)]
    assert asked[0].endswith(" --which libgobject-2.0-0 libmagic")
    assert f"--volume {tasks.IN_IMAGE}:/opt/build:ro my-project-base:trixie-amd64" in asked[0]
    out = capsys.readouterr().out
    assert (
        "weasyprint opens libgobject-2.0-0 by name: Debian's libglib2.0-0t64 ships it; "
        "building again with it"
    ) in out
    assert "magic opens libmagic by name: Debian's libmagic1t64 ships it" in out
    assert "weasyprint opens libpango-1.0-0 by name: Debian's libpango-1.0-0 ships it" in out
    found = opened.kept("linux/amd64", "my-project-base:trixie-amd64")
    assert found[0] == {
        "package": "libmagic1t64",
        "library": "libmagic",
        "module": "magic",
        "distribution": "python-magic",
        "why": "magic opens libmagic by name",
    }
    # The build argument: those found that the setting does not name, whatever their order.
    assert opened.packages("libpq5 libmagic1t64", found) == "libglib2.0-0t64 libpango-1.0-0"
    assert opened.packages("", []) == ""
    assert opened.kept("linux/arm64", "my-project-base:trixie-amd64") == []
    assert opened.kept("linux/amd64", "python:3.13-slim") == []
    Path("requirements.txt").write_text("numpy==2.5.5\n")
    assert opened.kept("linux/amd64", "my-project-base:trixie-amd64") == []


def test_what_each_base_needs_is_kept_apart_so_that_a_switch_and_back_finds_it(monkeypatch):
    """Python 3.11's base is bookworm's, whose libmagic is libmagic1: both stay kept."""
    for base, package in (("base:bookworm", "libmagic1"), ("base:trixie", "libmagic1t64")):
        monkeypatch.setattr(bootstrap, "base", lambda c, platform=None, base=base: base)
        c, _, run = gate(Result(stdout=said(MAGIC)), which({"libmagic": package}),
                         Result(stdout=said({**MAGIC, "error": None})))  # fmt: skip
        inspect = "docker image inspect --format '{{.Id}}' my-project:0.1.0"
        c.set_result_for("run", inspect, Result(stdout=f"sha256:{package}"))  # another image
        assert run() == []
    assert opened.kept("linux/amd64", "base:bookworm")[0]["package"] == "libmagic1"
    assert opened.kept("linux/amd64", "base:trixie")[0]["package"] == "libmagic1t64"


def test_once_nothing_more_is_found_every_module_that_fails_has_its_own_line(trixie):
    """pyvips opens a library that no package ships; magic one that Debian has; another module
    fails for no library at all. magic's is carried, and then each of the two others gets its
    own line: the library and what to do, or the generic advice."""
    display = {"distribution": "gui", "module": "gui", "error": "RuntimeError: no display"}
    c, rebuilt, run = gate(
        Result(stdout=said(MAGIC, VIPS, display)),
        which({"libmagic": "libmagic1t64"}),
        Result(stdout=said({**MAGIC, "error": None}, VIPS, display)),
        which({}),
    )
    [vips, gui] = run()
    assert len(rebuilt) == 1
    assert vips.startswith("error: pyvips (of pyvips) does not import in my-project:0.1.0 (linux")
    assert vips.endswith(
        "It opens by name libvips.so.42, which no Debian package of trixie ships. Name a package "
        "that has it in docker.runtime_packages (INVOKE_DOCKER_RUNTIME_PACKAGES), or a base "
        "image that has it in docker.base (INVOKE_DOCKER_BASE); where it cannot import in a "
        "container, allow it in docker.import_allowed, with the reason."
    )
    assert gui.startswith("error: gui (of gui) does not import") and gui.endswith(imports.FIX)
    assert [command for command in commands(c) if WHICH.match(command)][-1].endswith(
        " --which libvips.so.42"
    )


def test_a_package_found_and_carried_whose_module_still_fails_is_not_built_again(trixie):
    """A package found and carried, whose module fails all the same: said, and no endless loop."""
    _, rebuilt, run = gate(
        Result(stdout=said(MAGIC)),
        which({"libmagic": "libmagic1t64"}),
        Result(stdout=said(MAGIC)),
        which({"libmagic": "libmagic1t64"}),
    )
    [line] = run()
    assert len(rebuilt) == 1
    carried = "It opens by name libmagic, which Debian's libmagic1t64 ships and the image carries"
    assert carried in line


def test_an_archive_that_cannot_be_reached_is_said_on_the_module_s_line(trixie):
    unreachable = "the archive of trixie cannot be reached"
    _, rebuilt, run = gate(Result(stdout=said(MAGIC)), which({}, unasked=unreachable))
    [line] = run()
    assert rebuilt == []
    assert f"libmagic, which could not be looked for ({unreachable})" in line
    assert line.endswith(imports.FIX)


def test_a_fontconfig_with_no_font_gets_debian_s_font(trixie, capsys):
    """Every module imports, yet the image carries fontconfig with no font: fonts-dejavu-core
    is carried, and kept, with the library that wanted it."""
    fontless = "imports.py: " + json.dumps({"fontless": "/usr/lib/x86_64/libfontconfig.so.1"})
    c, rebuilt, run = gate(Result(stdout=said(POLARS) + fontless), Result(stdout=said(POLARS)))
    assert run() == []
    assert len(rebuilt) == 1
    assert (
        "my-project:0.1.0 carries fontconfig (libfontconfig.so.1) and no font: Debian's "
        "fonts-dejavu-core is one; building again with it"
    ) in capsys.readouterr().out
    [font] = opened.kept("linux/amd64", "my-project-base:trixie-amd64")
    assert font["package"] == "fonts-dejavu-core" and font["library"] == "libfontconfig.so.1"
    assert not [command for command in commands(c) if WHICH.match(command)]


def test_a_build_builds_again_with_what_it_found_and_the_next_starts_with_it(
    build_context, monkeypatch
):
    """The composed commands: the runtime is built, found failing, built again with the package
    in FOUND_PACKAGES (installed after the venv: nothing of the dependencies is built again),
    and its provenance records why (RUNTIME_PACKAGES, the setting, stays as it was); the next
    build starts with it, and looks nothing up."""
    c, _ = build_context
    checks = iter([imports.Checked([MAGIC])] + [imports.Checked([])] * 3)
    monkeypatch.setattr(imports, "check", lambda c, ref, platform: next(checks))
    written = []
    monkeypatch.setattr(provenance, "write", lambda *args: written.append(args))
    c.set_result_for("run", "docker image inspect --format '{{.Id}}' my-project:0.1.0",
                     Result(stdout="sha256:new"))  # fmt: skip
    c.set_result_for("run", WHICH, which({"libmagic": "libmagic1t64"}))
    tasks.build(c)
    builds = [parsed(command)[1] for command in commands(c) if command.startswith("docker build ")]
    assert [args["FOUND_PACKAGES"] for args in builds] == ["", "libmagic1t64"]
    assert {args["RUNTIME_PACKAGES"] for args in builds} == {""}
    *_, last = written
    assert last[3]["RUNTIME_PACKAGES"] == ""  # what a person chose: docker.runtime_packages
    assert [entry["package"] for entry in last[5]] == ["libmagic1t64"]
    c.run.reset_mock()
    tasks.build(c)
    builds = [parsed(command)[1] for command in commands(c) if command.startswith("docker build ")]
    assert [args["FOUND_PACKAGES"] for args in builds] == ["libmagic1t64"]
    assert not [command for command in commands(c) if WHICH.match(command)]


def test_the_modules_that_fail_on_every_platform_are_named_together(build_context, monkeypatch):
    """One platform's failures do not hide another's: each is built and checked, then all fail."""
    c, _ = build_context
    monkeypatch.setattr(bootstrap, "base", lambda c, platform: f"base-{platform.split('/')[1]}")
    monkeypatch.setattr(platforms, "require_emulation", lambda c, platform: None)
    monkeypatch.setattr(opened, "gate", lambda c, ref, platform, **given: [f"error: {platform}"])
    c.config.docker.platforms = "linux/amd64,linux/arm64"
    inspect = "docker image inspect --format"
    c.set_result_for(
        "run", f"{inspect} '{{{{.Id}}}}' my-project:0.1.0-arm64", Result(stdout="sha256:a")
    )
    c.set_result_for("run", f"{inspect} '{{{{.Size}}}}' my-project:0.1.0-arm64", Result(stdout="1"))
    with pytest.raises(Exit) as exit_:
        tasks.build(c)
    assert str(exit_.value.message).splitlines() == ["error: linux/amd64", "error: linux/arm64"]
    assert len([command for command in commands(c) if command.startswith("docker build ")]) == 2


RUN = (
    "docker run --rm --pull=never --platform linux/amd64 --label my-project.role=run"
    " my-project:0.1.0"
)
HAVE_IMAGE = "docker image inspect --format '{{.Id}}' my-project:0.1.0"


def test_run_passes_cmd_as_arguments_never_to_a_shell():
    """Shell syntax in --cmd is quoted on the way, so that it reaches the app as text."""
    hostile = "say-hello --name '$(touch /tmp/x); `id` | cat'"
    expected = f"{RUN} say-hello --name '$(touch /tmp/x); `id` | cat'"
    c = docker_context({HAVE_IMAGE: Result(stdout="sha256:1"), expected: Result()})
    tasks.run(c, cmd=hostile)
    assert commands(c)[-1] == expected


def test_run_exits_with_the_container_code():
    c = docker_context({HAVE_IMAGE: Result(stdout="sha256:1"), f"{RUN} say-hello": failed(2)})
    with pytest.raises(Exit) as exit_:
        tasks.run(c, cmd="say-hello")
    assert exit_.value.code == 2


def test_run_rejects_unbalanced_quotes_before_any_command():
    c = docker_context({})
    with pytest.raises(Exit, match=r"cannot split --cmd .*No closing quotation"):
        tasks.run(c, cmd="say-hello --name 'alice")
    assert commands(c) == []


def test_run_without_an_image_says_to_build_and_pulls_nothing():
    c = docker_context({HAVE_IMAGE: failed()})
    with pytest.raises(Exit, match=r"no image my-project:0\.1\.0 here yet\. Build it first"):
        tasks.run(c)
    assert not any("pull" in command or "docker run" in command for command in commands(c))


DEV = "docker container inspect --format '{{index .Config.Labels \"my-project.role\"}} {{.State.Running}}' my-project-dev"  # noqa: E501


def test_explore_starts_runs_and_removes_its_container(monkeypatch):
    monkeypatch.setattr(bootstrap, "base", lambda c: "my-project-base:trixie")
    start = (
        "docker run --detach --name my-project-dev --label my-project.role=dev"
        f" --volume {ROOT}:/project:ro --workdir /project my-project-base:trixie sleep infinity"
    )
    c = docker_context(
        {
            DEV: failed(stderr="No such container"),
            start: Result(),
            "docker exec my-project-dev python3 -V": Result(stdout="Python 3.13.5"),
            "docker container rm --force --volumes my-project-dev": Result(),
        }
    )
    tasks.explore(c, cmd="python3 -V")
    assert commands(c)[-3:] == [
        start,
        "docker exec my-project-dev python3 -V",
        "docker container rm --force --volumes my-project-dev",
    ]


def test_explore_removes_its_container_when_interrupted(monkeypatch):
    monkeypatch.setattr(bootstrap, "base", lambda c: "my-project-base:trixie")
    c = docker_context(
        {
            DEV: failed(),
            re.compile(r"^docker run --detach"): Result(),
            "docker container rm --force --volumes my-project-dev": Result(),
        }
    )
    mock = c.run

    def interrupted(command, **kwargs):
        if command.startswith("docker exec"):
            raise KeyboardInterrupt
        return mock(command, **kwargs)

    c._set(run=Mock(wraps=interrupted))
    with pytest.raises(KeyboardInterrupt):
        tasks.explore(c)
    assert commands(c)[-1] == "docker container rm --force --volumes my-project-dev"


def test_explore_joins_a_running_dev_container_and_leaves_it():
    c = docker_context(
        {DEV: Result(stdout="dev true"), "docker exec my-project-dev true": Result()}
    )
    tasks.explore(c, cmd="true")
    assert not any(" rm " in command for command in commands(c))


def test_explore_leaves_a_stranger_of_the_same_name_alone():
    """A container the project did not make is never touched: no rm, no exec."""
    c = docker_context({DEV: Result(stdout=" true")})
    with pytest.raises(Exit, match=r"my-project-dev exists, and my-project did not make it"):
        tasks.explore(c)
    assert commands(c)[-1] == DEV


IMAGES = (
    "docker image ls --no-trunc --filter label=my-project.role{}"
    " --format '{{{{.ID}}}} {{{{.Repository}}}}:{{{{.Tag}}}}'"
)


def test_clean_removes_what_the_project_named_or_recorded_and_spares_images_built_on_it():
    """Labels are inherited, so they are no proof: the project's images are those in its
    repositories, and the untagged ones whose IDs it recorded when it built them."""
    ledger = Path(".venv/stamps/images")
    ledger.parent.mkdir(parents=True)
    ledger.write_text("sha256:old my-project:0.1.0\n")
    labelled = "\n".join([
        "sha256:new my-project:0.1.0",  # ours: the repository the tasks tag
        "sha256:new my-project:latest",
        "sha256:child someone/tool:1",  # built FROM my-project:latest: it inherits the label
        "sha256:old <none>:<none>",  # a rebuild's leftover: its ID was recorded
        "sha256:theirs <none>:<none>",  # someone's untagged build on ours
        "sha256:base my-project-base:trixie-amd64",
        "sha256:derived someone/base-tool:1",  # built FROM the base
    ])  # fmt: skip
    ls = "docker container ls --all"
    stopped = " ".join(f"--filter status={state}" for state in ("created", "exited", "dead"))
    c = docker_context(
        {
            f"{ls} --filter 'name=^my-project-dev$' --filter label=my-project.role=dev --quiet":
                Result(stdout="c1\n"),
            f"{ls} --filter label=my-project.role=run {stopped} --quiet": Result(stdout="c2\n"),
            # a killed base upgrade's: it goes with the base
            f"{ls} --filter label=my-project.role=upgrade --filter 'name=^my-project-base-upgrade-'"
            f" {stopped} --quiet": Result(stdout="c3\n"),
            "docker container rm --force --volumes c1 c2": Result(),
            "docker container rm --force --volumes c1 c2 c3": Result(),
            IMAGES.format(""): Result(stdout=labelled),
            IMAGES.format("=base"): Result(stdout="\n".join(labelled.splitlines()[-2:])),
            re.compile(r"^docker image rm "): Result(),
            re.compile(r"^docker image ls --all "): Result(stdout="sha256:new\n"),
        }
    )  # fmt: skip
    tasks.clean(c)
    assert "docker image rm --force my-project:0.1.0 my-project:latest sha256:old" in commands(c)
    assert "docker container rm --force --volumes c1 c2" in commands(c)
    tasks.clean(c, base=True)
    assert "docker container rm --force --volumes c1 c2 c3" in commands(c)
    removed = [command for command in commands(c) if command.startswith("docker image rm")]
    assert removed[-1].endswith(" my-project:0.1.0 my-project:latest my-project-base:trixie-amd64")
    assert ledger.read_text() == ""  # the recorded image is gone: so is its record


def test_clean_on_podman_never_forces_and_takes_a_name_off_an_image_in_use(capsys):
    """Podman's rmi --force would remove the containers that use the image, anyone's; and it
    lists no dead containers (it refuses the filter). A name that a container holds is
    untagged, as Docker's --force does. Of its build cache, only the images that the
    project's builds made go (its ledger names them), and only unforced."""
    ls = "podman container ls --all"
    stopped = " ".join(f"--filter status={state}" for state in ("created", "exited", "stopped"))
    labelled = "sha256:new localhost/my-project:0.1.0\nsha256:old <none>:<none>"
    ours, theirs = "75f0b8b397a9" + "0" * 52, "8a1b2c3d4e5f" + "0" * 52
    cache = json.dumps([{"Id": ours, "Names": None, "Size": 5_000_000},
                        {"Id": theirs, "Names": None, "Size": 7_000_000}])  # fmt: skip
    c = context(
        {
            f"podman info --format '{engine.PODMAN_VERSIONS}'": Result(
                stdout="4.3.1 4.3.1 linux/amd64\n"
            ),
            f"{ls} --filter 'name=^my-project-dev$' --filter label=my-project.role=dev --quiet":
                Result(),
            f"{ls} --filter label=my-project.role=run {stopped} --quiet": Result(stdout="c2\n"),
            f"{ls} --filter label=my-project.role=upgrade --filter 'name=^my-project-base-upgrade-'"
            f" {stopped} --quiet": Result(),
            "podman container rm --force --time 0 --volumes c2": Result(),
            IMAGES.replace("docker", "podman").format(""): Result(stdout=labelled),
            IMAGES.replace("docker", "podman").format("=base"): Result(),
            "podman image rm localhost/my-project:0.1.0": failed(stderr="in use by a container"),
            "podman untag localhost/my-project:0.1.0": Result(),
            "podman image rm sha256:old": Result(),
            "podman image ls --all --format json": [Result(stdout=cache), Result(stdout="[]"),
                                                    Result(stdout="[]")],
            f"podman image rm sha256:{ours}": Result(),
            re.compile(r"^podman image ls --all "): Result(),
        },
        docker_command="podman",
    )  # fmt: skip
    Path(".venv/stamps").mkdir(parents=True)
    Path(".venv/stamps/images").write_text(
        "sha256:old my-project:0.1.0\n75f0b8b397a <build-cache>\n"
    )
    tasks.clean(c, build_cache=True, yes=True)
    removed = [command for command in commands(c) if " rm " in command or "untag" in command]
    assert removed == [
        "podman container rm --force --time 0 --volumes c2",
        "podman image rm localhost/my-project:0.1.0",
        "podman untag localhost/my-project:0.1.0",
        "podman image rm sha256:old",
        f"podman image rm sha256:{ours}",  # ours; another project's stays
    ]
    assert not any("prune" in command for command in commands(c))
    out = capsys.readouterr().out
    assert "removed 1 images of Podman's build cache that my-project's builds made (5 MB)" in out


BASE = "my-project-base:trixie-amd64"
LIBZSTD = {"package": "libzstd1", "version": "1.5.7+dfsg-1", "fixed": "1.5.7+dfsg-1+deb13u1"}


def base_context(*checks: Result, made: str = "s1", **config) -> MockContext:
    """A context whose bootstrapped base is BASE, current with Debian's archive as it was in
    state MADE, and whose archive answers CHECKS in turn."""
    inspect = f"docker image inspect --format '{{{{.Id}}}}' {BASE}"
    label = '{{index .Config.Labels "my-project.debian-state"}}'
    state = f"docker image inspect --format '{label}' {BASE}"
    return docker_context(
        {
            "docker image inspect python:3.13-slim": failed(),
            inspect: Result(stdout="sha256:base\n"),
            state: Result(stdout=f"{made}\n"),
            re.compile(r"^docker run --rm --pull=never .* python3 -c "): list(checks),
            # The upgrade: it says the state of the archive it upgraded from.
            re.compile(r"^docker run --name "): Result(stdout='{"state": "s2"}\n'),
            re.compile(r"^docker (export|build|container rm) "): Result(),
        },
        **config,
    )


def test_a_base_behind_debian_s_archive_is_upgraded_and_the_moved_packages_named(capsys):
    said = json.dumps(LIBZSTD) + "\n" + json.dumps({"state": "s1"}) + "\n"
    c = base_context(Result(stdout=said))
    bootstrap.fresh(c, "linux/amd64")
    out = capsys.readouterr().out
    assert (
        f"{BASE} is behind Debian's archive: libzstd1 1.5.7+dfsg-1 -> 1.5.7+dfsg-1+deb13u1" in out
    )
    upgrade = next(command for command in commands(c) if command.startswith("docker run --name"))
    assert upgrade.endswith(" --upgrade")
    assert any(command.startswith("docker export --output ") for command in commands(c))
    assert any(
        command.startswith(
            "docker build --platform linux/amd64 --label my-project.role=base "
            f"--label my-project.debian-state=s2 --tag {BASE} "
        )
        for command in commands(c)
    )


def test_a_current_base_is_made_again_only_when_debian_has_published_since(capsys):
    """Nothing of the base is behind, but a package that the build installs on it may be: when
    the archive's state moved, the base is made again, so that the build installs anew."""
    current = Result(stdout=json.dumps({"state": "s1"}) + "\n")
    c = base_context(current)
    bootstrap.fresh(c, "linux/amd64")
    assert f"{BASE} holds every fix in Debian's archive" in capsys.readouterr().out
    assert not any(command.startswith("docker run --name") for command in commands(c))
    c = base_context(Result(stdout=json.dumps({"state": "s2"}) + "\n"), made="s1")
    bootstrap.fresh(c, "linux/amd64")
    assert "Debian has published since it was made: making it again" in capsys.readouterr().out
    assert any(command.startswith("docker run --name") for command in commands(c))


def test_an_archive_that_cannot_be_reached_is_one_warning_and_the_base_is_kept(capsys):
    c = base_context(Result(stdout='{"error": "W: Failed to fetch"}\n', exited=2))
    bootstrap.fresh(c, "linux/amd64")
    out = capsys.readouterr().out.strip().splitlines()
    assert [line for line in out if "warning" in line] == [
        f"warning: Debian's archive cannot be reached (W: Failed to fetch): {BASE} is kept, "
        "unchecked"
    ]
    assert not any(
        command.startswith(("docker run --name", "docker build")) for command in commands(c)
    )


def test_a_container_that_cannot_start_says_the_engine_s_words_not_a_guess(capsys):
    """Podman, rootless, where /dev/net/tun is root's alone: the container never ran. Its own
    last lines come first, and the warning names the last one; no archive is blamed."""
    said = ("time=x level=warning msg=\"...\"\nError: slirp4netns failed: "
            '"open(\\"/dev/net/tun\\"): Permission denied"\n')  # fmt: skip
    c = base_context(Result(stderr=said, exited=126, hide=("stdout", "stderr")))
    bootstrap.fresh(c, "linux/amd64")
    out, err = capsys.readouterr()
    [warning] = [line for line in out.splitlines() if "warning" in line]
    assert warning.startswith("warning: the container that asks Debian's archive failed (exit 126)"
                              ": Error: slirp4netns failed")  # fmt: skip
    assert "archive cannot be reached" not in warning
    assert "Error: slirp4netns failed" in err  # the engine's own lines, before ours


def test_refresh_base_false_keeps_the_base_as_it_is():
    c = base_context(docker_refresh_base=False)
    bootstrap.fresh(c, "linux/amd64")
    assert commands(c) == []


def test_the_release_gate_refuses_a_runtime_behind_the_archive_in_one_line(monkeypatch):
    monkeypatch.setattr(bootstrap, "base", lambda c, platform=None: BASE)
    monkeypatch.setattr(bootstrap, "native", lambda c, platform, used: None)
    report = tasks.security.Report(behind=[LIBZSTD], checked=26)
    monkeypatch.setattr(tasks.security, "audit", lambda c, ref, platform, base, native: report)
    c = docker_context({})
    with pytest.raises(Exit) as exit_:
        tasks._security_gate(c, allow_outdated=False)
    [line] = str(exit_.value.message).splitlines()
    assert line.startswith(
        "error: my-project:0.1.0 holds libzstd1 1.5.7+dfsg-1, and Debian's archive has "
        "1.5.7+dfsg-1+deb13u1, with its fixes. Run `inv base`, then release again"
    )
    tasks._security_gate(c, allow_outdated=True)  # overridden: said, not refused


def test_clean_build_cache_asks_and_needs_yes_without_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    c = docker_context({re.compile(r"^docker (container|image) ls"): Result()})
    with pytest.raises(Exit, match=r"needs an answer, and there is no terminal\. Add --yes"):
        tasks.clean(c, build_cache=True)
    assert not any("prune" in command for command in commands(c))
    c.set_result_for("run", "docker builder prune --force", Result())
    tasks.clean(c, build_cache=True, yes=True)
    assert "docker builder prune --force" in commands(c)


def test_build_without_strip_keeps_the_symbols(build_context):
    c, _ = build_context
    c.config.docker.strip = False
    tasks.build(c)
    build = next(command for command in commands(c) if command.startswith("docker build "))
    assert "--build-arg STRIP=0" in build


def test_push_tags_pushes_pulls_back_by_digest_and_smoke_tests(monkeypatch):
    monkeypatch.setattr(images, "git", lambda c, *args: "" if args[0] == "status" else "abc1234")
    repository = "127.0.0.1:5000/team/my-project"
    digest = "sha256:" + "ab" * 32
    pushed = Result(stdout=f"latest: digest: {digest} size: 1234\n")
    throwaway = f"my-project-verify:{os.getpid()}-amd64"
    smoke_run = re.compile(rf"^docker run .* --network none {throwaway} -c 'import my_project'$")
    c = docker_context(
        {
            HAVE_IMAGE: Result(stdout="sha256:1"),
            re.compile(r"^docker image inspect --format '\{\{\.Id\}\}' "): Result(
                stdout="sha256:1"
            ),
            re.compile(r"^docker (tag|push) "): pushed,
            f"docker pull --platform linux/amd64 {repository}@{digest}": Result(),
            f"docker image inspect --format '{{{{.Id}}}}' {throwaway}": Result(stdout="sha256:1"),
            smoke_run: Result(),
            re.compile(r"^docker image rm "): Result(),
        },
        registry_url="127.0.0.1:5000/team",
    )
    assert tasks._push(c) == f"{repository}@{digest}"
    published = [
        command for command in commands(c) if command.split()[1] in {"tag", "push", "pull"}
    ]
    assert published == [
        f"docker tag my-project:0.1.0 {repository}:0.1.0",
        f"docker push {repository}:0.1.0",
        f"docker tag my-project:0.1.0 {repository}:abc1234",
        f"docker push {repository}:abc1234",
        f"docker tag my-project:0.1.0 {repository}:latest",
        f"docker push {repository}:latest",
        f"docker pull --platform linux/amd64 {repository}@{digest}",
        f"docker tag {repository}@{digest} {throwaway}",
    ]
    assert commands(c)[-1] == f"docker image rm {throwaway}"


def test_push_of_two_platforms_pushes_each_then_a_manifest_list_and_checks_each(monkeypatch):
    """Each platform's image under VERSION-ARCH; the list under the three tags (plain HTTP
    for a loopback registry); then each platform pulled from the list and smoke-tested."""
    monkeypatch.setattr(images, "git", lambda c, *args: "" if args[0] == "status" else "abc1234")
    repository = "127.0.0.1:5000/team/my-project"
    amd64, arm64, listed = ("sha256:" + digit * 64 for digit in "123")
    info = {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}}
    c = docker_context(
        {
            re.compile(r"^docker image inspect --format '\{\{\.Id\}\}' "): Result(
                stdout="sha256:1"
            ),
            "docker info --format '{{json .RegistryConfig}}'": Result(stdout=json.dumps(info)),
            re.compile(r"^docker tag "): Result(),
            f"docker push {repository}:0.1.0-amd64": Result(stdout=f"digest: {amd64} size: 1"),
            f"docker push {repository}:0.1.0-arm64": Result(stdout=f"digest: {arm64} size: 1"),
            re.compile(r"^docker manifest create "): Result(),
            re.compile(r"^docker manifest push "): Result(stdout=f"{listed}\n"),
            re.compile(r"^docker pull --platform "): Result(),
            re.compile(r"^docker run .* -c 'import my_project'$"): Result(),
            re.compile(r"^docker image rm "): Result(),
        },
        registry_url="127.0.0.1:5000/team",
        docker_platforms="linux/amd64,linux/arm64",
    )
    assert tasks._push(c) == f"{repository}@{listed}"
    manifests = [command for command in commands(c) if command.startswith("docker manifest")]
    pushed_images = f"{repository}@{amd64} {repository}@{arm64}"
    assert manifests == [
        command
        for tag in ("0.1.0", "abc1234", "latest")
        for command in (
            f"docker manifest create --insecure --amend {repository}:{tag} {pushed_images}",
            f"docker manifest push --insecure --purge {repository}:{tag}",
        )
    ]
    pulls = [command for command in commands(c) if command.startswith("docker pull")]
    assert pulls == [
        f"docker pull --platform linux/{arch} {repository}@{listed}" for arch in ("amd64", "arm64")
    ]
    runs = [command for command in commands(c) if command.startswith("docker run")]
    assert any("--platform linux/arm64" in run and run.endswith("my_project'") for run in runs)


def test_clean_local_with_no_engine_cleans_the_tree_and_leaves_the_engine(capsys):
    c = context({re.compile(r"^(rm|find) "): Result(), ENGINE: failed(stderr="Cannot connect")})
    tasks.clean(c, local=True)
    assert ENGINE in [call.args[0] for call in c.run.call_args_list]
    assert commands(c)[0].startswith("rm -rf .venv htmlcov dist")  # the engine was only asked
    assert "the work tree is clean, the engine was left alone" in capsys.readouterr().out


def test_no_docker_cli_is_one_line_that_says_what_to_do(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(
        Exit, match=r"^error: there is no docker CLI `docker` here\..*INVOKE_DOCKER"
    ):
        tasks.run(context({}))


def test_build_of_two_platforms_builds_each_with_its_own_base_and_tags(build_context, monkeypatch):
    """The engine's own platform gets VERSION and latest; another, VERSION-ARCH; each its base."""
    c, _ = build_context
    monkeypatch.setattr(bootstrap, "base", lambda c, platform: f"base-{platform.split('/')[1]}")
    monkeypatch.setattr(platforms, "require_emulation", lambda c, platform: None)
    c.config.docker.platforms = "linux/amd64,linux/arm64"
    inspect = "docker image inspect --format"
    c.set_result_for(
        "run", f"{inspect} '{{{{.Id}}}}' my-project:0.1.0-arm64", Result(stdout="sha256:a")
    )
    c.set_result_for("run", f"{inspect} '{{{{.Size}}}}' my-project:0.1.0-arm64", Result(stdout="1"))
    tasks.build(c)
    builds = [shlex.split(line) for line in commands(c) if line.startswith("docker build ")]
    assert [build[build.index("--platform") + 1] for build in builds] == [
        "linux/amd64",
        "linux/arm64",
    ]
    assert "BASE_IMAGE=base-arm64" in builds[1]
    assert [flag for flag in builds[1] if flag.startswith("my-project:")] == [
        "my-project:0.1.0-arm64"
    ]
    # arm64's builder runs on the engine's CPU, on amd64's base, with binutils for arm64.
    crossed = [
        "BUILDER_PLATFORM=linux/amd64",
        "BUILD_IMAGE=base-amd64",
        "STRIP_PACKAGE=binutils-aarch64-linux-gnu",
        "STRIP_PROGRAM=aarch64-linux-gnu-strip",
    ]
    assert all(arg in builds[1] for arg in crossed)  # fmt: skip


@pytest.mark.parametrize(
    ("own", "target", "config", "builder", "strip"),
    [
        ("linux/amd64", "linux/arm64", {}, "linux/amd64", "aarch64-linux-gnu-strip"),
        # The other way round, as on an Apple silicon Mac or an arm64 runner.
        ("linux/arm64", "linux/amd64", {}, "linux/arm64", "x86_64-linux-gnu-strip"),
        ("linux/amd64", "linux/amd64", {}, "linux/amd64", "strip"),
        # A 32-bit target: a venv is laid out by the word size of the Python that makes it.
        ("linux/arm64", "linux/arm/v7", {}, "linux/arm/v7", "strip"),
        ("linux/amd64", "linux/arm64", {"docker_cross": False}, "linux/arm64", "strip"),
    ],
)
def test_the_builder_runs_on_the_engine_s_cpu_where_it_can(
    monkeypatch, own, target, config, builder, strip
):
    c = context({ENGINE: Result(stdout=f"20.10.24 20.10.24 {own}\n")}, **config)
    monkeypatch.setattr(bootstrap, "base", lambda c, platform: "python:3.13-slim")
    args = cross.build_args(c, target, "3.13")
    assert (args["BUILDER_PLATFORM"], args["STRIP_PROGRAM"]) == (builder, strip)
    binutils = f"binutils-{strip.removesuffix('-strip').replace('_', '-')}"
    assert args["STRIP_PACKAGE"] == ("binutils" if strip == "strip" else binutils)


def test_bases_of_two_kinds_emulate_the_builder_and_say_so(monkeypatch, capsys):
    """A pulled base runs /usr/local/bin/python3, a bootstrapped one /usr/bin/python3: a venv
    made on one would name an interpreter that the other lacks."""
    c = context({ENGINE: Result(stdout="20.10.24 20.10.24 linux/amd64\n")})
    bases = {"linux/amd64": "python:3.13-slim", "linux/arm64": "my-project-base:trixie-arm64"}
    monkeypatch.setattr(bootstrap, "base", lambda c, platform: bases[platform])
    args = cross.build_args(c, "linux/arm64", "3.13")
    assert args["BUILDER_PLATFORM"] == "linux/arm64"
    assert args["BUILD_IMAGE"] == "my-project-base:trixie-arm64"
    assert "linux/arm64: emulating its builder" in capsys.readouterr().out


def test_the_sdists_are_the_requirements_that_the_lock_has_no_wheel_of_for_the_target():
    def package(name: str, *files: str) -> str:
        listed = ", ".join(f'{{file = "{file}", hash = "sha256:00"}}' for file in files)
        return f'[[package]]\nname = "{name}"\nversion = "1.0"\nfiles = [{listed}]\n'

    Path("poetry.lock").write_text("\n".join([
        package("Fire", "fire-1.0-py3-none-any.whl", "fire-1.0.tar.gz"),
        package("polars", "polars-1.0-cp39-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
                "polars-1.0-cp39-abi3-manylinux_2_17_x86_64.whl"),
        package("psycopg2", "psycopg2-1.0.tar.gz"),
        package("nvidia-x", "nvidia_x-1.0-py3-none-manylinux_2_27_x86_64.whl"),
        package("numpy", "numpy-1.0-cp313-cp313-manylinux_2_28_aarch64.whl",
                "numpy-1.0-cp313-cp313t-manylinux_2_28_x86_64.whl",
                "numpy-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"),
        package("unlocked-dev-tool", "tool-1.0.tar.gz"),
    ]))  # fmt: skip
    pinned = ["fire", "polars", "psycopg2", "nvidia-x", "numpy"]
    Path("requirements.txt").write_text("".join(f"{name}==1.0 \\\n    --hash=sha256:00\n"
                                                for name in pinned))  # fmt: skip
    lock, requirements = Path("poetry.lock"), Path("requirements.txt")
    assert cross.sdists(lock, requirements, "arm64", "3.13") == ["nvidia-x", "psycopg2"]
    # No free-threaded wheel (cp313t) or another CPython's (cp312) fits 3.13.
    assert cross.sdists(lock, requirements, "amd64", "3.13") == ["numpy", "psycopg2"]


def test_a_platform_that_is_not_one_is_one_clear_line(build_context):
    c, _ = build_context
    c.config.docker.platforms = "linux/amd64,arm64"
    with pytest.raises(
        Exit, match=r"docker.platforms names 'arm64', not a platform such as linux/arm64"
    ):
        tasks.build(c)


def saved_image(created: str) -> tuple[dict, dict]:
    """An image's config and manifest entry as `docker save` writes them, made at CREATED."""
    # BuildKit's inline cache lists its links in no fixed order: it goes too.
    config = {"architecture": "amd64", "created": created,
              "history": [{"created": created, "created_by": "COPY x /"}],
              "rootfs": {"type": "layers", "diff_ids": ["sha256:00"]},
              "moby.buildkit.cache.v0": created}  # fmt: skip
    name = f"{hashlib.sha256(json.dumps(config).encode()).hexdigest()}.json"
    return config, {"Config": name, "RepoTags": ["x:1"], "Layers": ["l/layer.tar"]}


def test_an_image_built_at_two_times_is_written_as_one_with_the_commit_s_time(tmp_path):
    """Only the config's times differ between two builds: rewritten, they are the same image."""
    written = []
    for created in ("2026-11-29T10:00:00.1Z", "2026-12-01T08:30:00.2Z"):
        target = tmp_path / f"written-{created}.tar"
        reproducible.rewrite(*saved_image(created), target, ["my-project:0.1.0"], 0)
        with tarfile.open(target) as archive:
            [entry] = json.load(archive.extractfile("manifest.json"))
            config = json.load(archive.extractfile(entry["Config"]))
            assert archive.getnames() == [entry["Config"], "manifest.json"]  # the engine has l
        written.append(entry["Config"])
        assert entry["RepoTags"] == ["my-project:0.1.0"]
        assert config["created"] == config["history"][0]["created"] == "1970-01-01T00:00:00Z"
        assert "moby.buildkit.cache.v0" not in config
    assert written[0] == written[1]  # the image's ID: the digest of its config


def layer_tar(names: list[str]) -> bytes:
    """A layer that holds NAMES in that order: a folder's with a slash, each file its name."""
    written = io.BytesIO()
    with tarfile.open(fileobj=written, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for name in names:
            info = tarfile.TarInfo(name.rstrip("/"))
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                layer.addfile(info)
            else:
                info.size = len(name)
                layer.addfile(info, io.BytesIO(name.encode()))
    return written.getvalue()


def test_a_layer_out_of_walk_order_is_written_again_in_it_byte_for_byte(tmp_path):
    """A layer in the order of its whole paths (as Docker 20.10 may take one from BuildKit's
    cache), walked, is the very layer in walk order (as a fresh build makes it). One in walk
    order already is left as it is, and so is the base's, whatever its order."""
    site = "opt/venv/lib/python3.13/site-packages"
    names = [f"{site}/", f"{site}/my_project/", f"{site}/my_project/__init__.py",
             f"{site}/my_project/{'long_name_' * 12}.py",  # an extended header holds it
             f"{site}/my_project-0.1.0.dist-info/", f"{site}/my_project-0.1.0.dist-info/RECORD",
             f"{site}/my_project.pth"]  # fmt: skip
    walk = sorted(names, key=lambda name: name.rstrip("/").split("/"))
    whole_paths = sorted(names, key=lambda name: name.rstrip("/"))
    assert whole_paths != walk
    layers = {
        "base/layer.tar": layer_tar(whole_paths[1:]),
        "cached/layer.tar": layer_tar(whole_paths),
        "fresh/layer.tar": layer_tar(walk),
    }
    digests = [f"sha256:{hashlib.sha256(data).hexdigest()}" for data in layers.values()]
    saved = tmp_path / "image.tar"
    with tarfile.open(saved, "w") as image:
        entry = {"Config": "c.json", "RepoTags": None, "Layers": list(layers)}
        archive.add(image, "manifest.json", json.dumps([entry]).encode())
        archive.add(image, "c.json", json.dumps({"rootfs": {"diff_ids": digests}}).encode())
        for name, data in layers.items():
            archive.add(image, name, data)
    image = archive.Archive(MockContext(), "x:1", tmp_path)
    image.read_from(saved)
    walked = image.walked(base=digests[:1])
    assert list(walked) == [1]
    assert walked[1].read_bytes() == layers["fresh/layer.tar"]


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("127.0.0.1:5000/team/app:1.0", ("127.0.0.1:5000/team/app", "1.0")),
        ("127.0.0.1:5000/team/app", ("127.0.0.1:5000/team/app", "latest")),
        ("ghcr.io/team/app@sha256:ab", ("ghcr.io/team/app", "sha256:ab")),
    ],
)
def test_verify_reads_a_reference_by_tag_or_digest(ref, parts):
    assert verification.split(ref) == parts


def test_verify_needs_a_commit_and_a_public_key_and_says_which(monkeypatch):
    monkeypatch.setattr(images, "git", lambda c, *args: "")
    with pytest.raises(Exit, match=r"^error: v9 is not a commit of this repository\.$"):
        tasks.verify(context({}), ref="127.0.0.1:5000/team/app:1.0", commit="v9")
    monkeypatch.setattr(images, "git", lambda c, *args: "a" * 40)
    with pytest.raises(Exit, match=r"^error: there is no public key at cosign.pub \(signing"):
        tasks.verify(context({}), ref="127.0.0.1:5000/team/app:1.0")


def test_keygen_keeps_a_pair_that_is_there_and_git_ignores_the_private_key(capsys):
    """What keygen makes, with cosign, test_signing.py holds to; here, what it leaves alone."""
    Path("cosign.key").write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    c = context({})
    tasks.keygen(c)
    assert commands(c) == []
    assert "cosign.key is there already" in capsys.readouterr().out
    assert "cosign.key" in (ROOT / ".gitignore").read_text().split()


def test_keygen_has_cosign_make_the_pair(monkeypatch):
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    made = re.compile(r"^/usr/bin/cosign generate-key-pair --output-key-prefix (\S+)/cosign$")

    def generate(command, **kwargs):  # what cosign writes, where it was told
        folder = Path(made.match(command)[1])
        for name in ("cosign.key", "cosign.pub"):
            (folder / name).write_text(name)
        return Result()

    c = context({})
    c.run = Mock(side_effect=generate)
    tasks.keygen(c, force=True)
    assert Path("cosign.key").read_text() == "cosign.key"
    assert Path("cosign.pub").read_text() == "cosign.pub"
    assert [path.name for path in Path().glob(".keygen-*")] == []


def test_push_with_a_key_that_cosign_did_not_make_pushes_nothing(monkeypatch):
    """An older keygen's key (openssl's): one line, before anything goes to the registry."""
    monkeypatch.setattr(images, "git", lambda c, *args: "" if args[0] == "status" else "abc1234")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    Path("cosign.key").write_text("-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n")
    c = docker_context({}, registry_url="127.0.0.1:5000/team")
    with pytest.raises(Exit, match=r"^error: cosign.key is not a key that cosign made .*`inv "
                       r"keygen --force`, commit the new cosign.pub, and push again"):  # fmt: skip
        tasks._push(c)
    assert [command for command in commands(c) if " push " in command] == []


def test_push_signs_the_list_and_each_image_and_attests_each_image_with_cosign(monkeypatch):
    """One cosign signs the list and both images (it opens the key once); each image gets its
    SBOM and its provenance attested, one after the other, never with a transparency log."""
    monkeypatch.setattr(images, "git", lambda c, *args: "" if args[0] == "status" else "abc1234")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setenv("COSIGN_PASSWORD", "secret")
    Path("cosign.key").write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    Path("dist").mkdir()
    described = {"metadata": {"component": {"properties": [
        {"name": "my-project:image:id", "value": "sha256:1"}]}}}  # fmt: skip
    for tag in ("0.1.0", "0.1.0-arm64"):
        Path(f"dist/my-project-{tag}.cdx.json").write_text(json.dumps(described))
    repository = "127.0.0.1:5000/team/my-project"
    amd64, arm64, listed = ("sha256:" + digit * 64 for digit in "123")
    info = {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}}
    c = docker_context(
        {
            re.compile(r"^docker image inspect --format '\{\{\.Id\}\}' "): Result(
                stdout="sha256:1"
            ),
            "docker info --format '{{json .RegistryConfig}}'": Result(stdout=json.dumps(info)),
            re.compile(r"^docker tag "): Result(),
            f"docker push {repository}:0.1.0-amd64": Result(stdout=f"digest: {amd64} size: 1"),
            f"docker push {repository}:0.1.0-arm64": Result(stdout=f"digest: {arm64} size: 1"),
            re.compile(r"^docker manifest (create|push) "): Result(stdout=f"{listed}\n"),
            re.compile(r"^docker (pull|run|image rm) "): Result(),
            re.compile(r"^/usr/bin/cosign "): Result(),
        },
        registry_url="127.0.0.1:5000/team",
        docker_platforms="linux/amd64,linux/arm64",
    )
    tasks._push(c)
    signed = [command for command in commands(c) if command.startswith("/usr/bin/cosign")]
    flags = "--key cosign.key --tlog-upload=false --allow-http-registry"
    images_ = [f"{repository}@{digest}" for digest in (listed, amd64, arm64)]
    assert signed.count(f"/usr/bin/cosign sign {' '.join(images_)} {flags}") == 1
    for image, tag in ((images_[1], "0.1.0"), (images_[2], "0.1.0-arm64")):
        sbom_file, made = (
            f"dist/my-project-{tag}.cdx.json",
            f"dist/my-project-{tag}.provenance.json",
        )
        attests = [command for command in signed if " attest " in command and image in command]
        assert attests == [
            f"/usr/bin/cosign attest --type cyclonedx --predicate {sbom_file} --replace {image} "
            f"{flags}",
            f"/usr/bin/cosign attest --type https://slsa.dev/provenance/v1 --predicate {made} "
            f"--replace {image} {flags}",
        ]
    assert len(signed) == 5
    for call in c.run.call_args_list:
        if call.args[0].startswith("/usr/bin/cosign"):
            assert call.kwargs["env"] == {"COSIGN_PASSWORD": "secret"}


def test_the_provenance_names_the_commit_the_inputs_and_nothing_of_the_machine(monkeypatch):
    """SLSA v1: the commit, the lock's and the export's hashes, each base by its ID, the Debian
    packages that the SBOM lists and those the build installed, the parameters, and, as the
    builder's own, each package found for a library opened by name, with the module and the
    library that asked for it; the same for two builds of one commit."""
    sbom_file = Path("dist/my-project-0.1.0.cdx.json")
    sbom_file.parent.mkdir()
    components = [
        {"purl": "pkg:deb/debian/libc6@2.41-12?arch=amd64"},
        {"purl": "pkg:pypi/fire@0.7.1"},
    ]
    sbom_file.write_text(json.dumps({"components": components}))
    monkeypatch.setattr(engine, "image_id", lambda c, ref: f"sha256:{ref[-1]}")
    args = {"BASE_IMAGE": "base-a", "BUILD_IMAGE": "base-b", "REVISION": "c" * 40,
            "RUNTIME": "distroless", "SDISTS": "", "VERSION": "0.1.0"}  # fmt: skip
    target = provenance.path(sbom_file)
    built = ["pkg:deb/debian/gcc-14@14.2.0-19?arch=arm64"]
    found = [{"package": "libmagic1t64", "library": "libmagic", "module": "magic",
              "distribution": "python-magic", "why": "magic opens libmagic by name"}]  # fmt: skip
    provenance.write(context({}), sbom_file, "linux/arm64", args, built, found)
    written = target.read_text()
    predicate = json.loads(written)
    assert target.name == "my-project-0.1.0.provenance.json"
    assert provenance.commit(predicate) == "c" * 40
    resolved = predicate["buildDefinition"]["resolvedDependencies"]
    names = {item.get("name") or item["uri"]: item.get("digest") for item in resolved}
    lock = hashlib.sha256(Path("poetry.lock").read_bytes()).hexdigest()
    assert names["poetry.lock"] == {"sha256": lock}
    assert names["docker-image://base-a"] == {"sha256": "a"}
    assert names["docker-image://base-b"] == {"sha256": "b"}
    assert "pkg:deb/debian/libc6@2.41-12?arch=amd64" in names
    assert "pkg:pypi/fire@0.7.1" not in names  # the lock's hash says it
    uses = {item["uri"]: item["annotations"]["use"] for item in resolved if "annotations" in item}
    assert uses == {"pkg:deb/debian/libc6@2.41-12?arch=amd64": "runtime", built[0]: "build"}
    parameters = predicate["buildDefinition"]["externalParameters"]
    assert parameters["platform"] == "linux/arm64" and parameters["RUNTIME"] == "distroless"
    internal = predicate["buildDefinition"]["internalParameters"]
    assert internal == {"runtimePackagesFound": found}
    provenance.write(context({}), sbom_file, "linux/arm64", args, built, found)
    assert target.read_text() == written
    # A build that ran no stage that installs packages keeps what the provenance lists.
    log = "#7 [app 2/3] COPY main.py /app/\n#8 [linux/arm64 sdists 4/4] RUN true\n#8 CACHED\n"
    assert provenance.build_packages(context({}), [], log, sbom_file) == built


@pytest.mark.parametrize(
    ("line", "purl"),
    [
        ("binutils:amd64=2.44-3", "pkg:deb/debian/binutils@2.44-3?arch=amd64"),
        ("libpq-dev:arm64=17.6-0+deb13u1", "pkg:deb/debian/libpq-dev@17.6-0%2Bdeb13u1?arch=arm64"),
        ("libc6-dev:amd64=1:2.41-12~x", "pkg:deb/debian/libc6-dev@1%3A2.41-12~x?arch=amd64"),
    ],
)
def test_a_build_package_s_url_is_written_as_syft_writes_a_debian_one(line, purl):
    assert provenance.purl(line) == purl


def test_the_stages_that_ran_are_read_off_buildkit_s_log():
    log = ("#5 [linux/arm64 sdists 2/4] RUN apt-install\n#6 [builder 3/9] COPY x /\n#6 CACHED\n"
           "#7 [app 1/2] COPY main.py /app/\n#8 [internal] load build context\n")  # fmt: skip
    assert engine.stages_ran(log) == {"sdists", "app"}


def test_the_steps_that_ran_are_read_off_buildah_s_log():
    """Podman's log: stages that interleave, each named by its first step alone."""
    log = (
        "[1/3] STEP 1/2: FROM base:1 AS system\n[1/3] STEP 2/2: RUN apt-install x\n"
        "--> Using cache 0123abcd\n--> 0123abcd\n"
        "[2/3] STEP 1/3: FROM 0123abcd AS sdists\n[2/3] STEP 2/3: COPY a /\n"
        "[3/3] STEP 1/2: FROM base:1 AS app\n[3/3] STEP 2/2: RUN make\nbuilt\n--> 4567\n"
        "[2/3] STEP 3/3: RUN pip-install\n--> Using cache 89ab\n"
    )
    # The COPY's answer never came before another stage's line: it counts as run.
    assert engine.stages_ran(log) == {"sdists", "app"}
    assert engine.ran(log) == ["RUN make"]


def test_podman_is_told_the_labels_that_read_a_build_argument():
    """Buildah caches a LABEL by its text: those that read an argument go on the command line."""
    dockerfile = DOCKERFILE.read_text()
    argv = ["build", "--build-arg", "REVISION=abc123", "--target", "runtime"]
    flags = podman.labels(dockerfile, argv)
    assert flags[flags.index("org.opencontainers.image.revision=abc123") - 1] == "--label"
    assert "org.opencontainers.image.version=unknown" in flags  # the ARG's default
    assert podman.labels(dockerfile, ["build", "--target", "test"]) == []


def test_podman_knows_the_stages_that_a_target_builds():
    """What a Podman build needs built afresh: the stages it starts from, copies from, mounts."""
    dockerfile = DOCKERFILE.read_text()
    runtime = podman.stages(
        dockerfile, ["build", "--build-arg", "RUNTIME=slim", "--target", "runtime"]
    )
    assert {"slim", "rootfs", "libs", "sdists", "builder", "app", "wheel"} <= runtime
    assert "distroless" not in runtime and "test" not in runtime
    assert podman.mounting(dockerfile) == {"builder", "rootfs", "ldcache", "slim"}
    assert podman.stages(dockerfile, ["build", "--target", "build-packages"]) == {
        "build-packages",
        "builder",
        "sdists",
        "system",
        "base",
    }
