"""tooling/project.py: what the image needs of an app, read off its pyproject.toml as poetry
reads it; and each way that a project cannot give it, in one line that says what to set."""

import re
import textwrap
from pathlib import Path

import pytest
from invoke import Exit
from support import ROOT, inv, last_line

from shipyard.tooling import project


def made(folder: Path, pyproject: str, *files: str) -> Path:
    """A project in FOLDER: its pyproject.toml, and empty FILES."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(textwrap.dedent(pyproject))
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("")
    return folder


POETRY_CORE = """
[build-system]
requires = ["poetry-core>=2"]
build-backend = "poetry.core.masonry.api"
"""


def test_this_app_is_read_as_poetry_builds_it():
    found = project.app(ROOT)
    assert found.name == "my-project" and found.packages == {"my_project": "my_project"}
    assert found.scripts == {"my-project": "my_project.cli:main"}
    assert found.script(None) == "my-project"
    assert found.test_paths == ["tests", "shipyard/tests"] and found.test_groups == ["test"]
    assert found.build_script is None


def test_a_src_layout_with_another_import_name_poetry_s_scripts_and_a_build_script(tmp_path):
    """reuse's shape: [tool.poetry] alone, packages from src/, a script in poetry's table, a
    build script (its wheel is then the target's), tests in the old dev-dependencies."""
    folder = made(tmp_path / "app", """
        [tool.poetry]
        name = "Fancy-Tool"
        version = "2.0"
        packages = [{ include = "fancy", from = "src" }, { include = "extra.py" },
                    { include = "docs", format = "sdist" }]
        [tool.poetry.scripts]
        fancy = { reference = "fancy.cli.main:run", type = "console" }
        helper = "extra:main"
        [tool.poetry.build]
        script = "build.py"
        [tool.poetry.dev-dependencies]
        pytest = "^8"
    """ + POETRY_CORE, "src/fancy/__init__.py", "src/fancy/cli/main.py", "extra.py",
        "docs/x")  # fmt: skip
    found = project.app(folder)
    assert found.packages == {"fancy": "src/fancy", "extra": "extra.py"}
    assert found.scripts == {"fancy": "fancy.cli.main:run", "helper": "extra:main"}
    assert found.build_script == "build.py" and found.test_groups == ["dev"]
    assert found.test_paths == []  # neither testpaths nor a tests/ folder
    assert found.script("helper") == "helper"
    with pytest.raises(Exit, match=r"names 2 scripts \(fancy, helper\) and none is named as"):
        found.script(None)
    with pytest.raises(Exit, match=r"app.script is nope, which pyproject.toml does not name"):
        found.script("nope")


def test_pep_621_discovery_finds_the_package_named_as_the_project_in_src(tmp_path):
    folder = made(tmp_path / "app", """
        [project]
        name = "my.tool"
        version = "1.0"
        [tool.pytest.ini_options]
        testpaths = "checks"
        addopts = "--cov -q"
    """ + POETRY_CORE, "src/my_tool/__init__.py", "tests/test_x.py")  # fmt: skip
    found = project.app(folder)
    assert found.packages == {"my_tool": "src/my_tool"} and found.scripts == {}
    assert found.test_paths == ["checks"] and found.addopts == ["--cov", "-q"]
    assert found.script(None) is None
    assert "no script: the image runs python" in found.describe(None)


@pytest.mark.parametrize(
    ("pyproject", "files", "said"),
    [
        (
            '[project]\nname = "x"\nversion = "1"\n[build-system]\n'
            'build-backend = "setuptools.build_meta"\n',
            ["x/__init__.py"],
            r"is not a poetry project \(its build backend is setuptools.build_meta\)",
        ),
        (
            '[project]\nname = "x"\nversion = "1"\n' + POETRY_CORE,
            ["y/__init__.py"],
            r"poetry finds no package to build in .*: no x/ .* Add `packages = ",
        ),
        (
            '[project]\nname = "x"\nversion = "1"\n[project.scripts]\nx = "x.cli:main"\n'
            + POETRY_CORE,
            ["x/__init__.py"],
            r"script x runs x.cli:main, and no file holds x.cli in the packages that poetry "
            r"builds \(x\)",
        ),
    ],
    ids=["not poetry's", "no package", "a script's module missing"],
)
def test_what_cannot_be_built_is_one_line(tmp_path, pyproject, files, said):
    folder = made(tmp_path / "app", pyproject, *files)
    with pytest.raises(Exit, match=said) as exit_:
        project.app(folder)
    assert str(exit_.value.message).startswith("error: ")
    assert "\n" not in str(exit_.value.message)


def test_adopt_refuses_what_it_cannot_adopt_in_one_line_and_writes_nothing(tmp_path):
    setuptools = made(tmp_path / "setuptools", """
        [project]
        name = "x"
        version = "1"
        [build-system]
        build-backend = "setuptools.build_meta"
    """, "x/__init__.py")  # fmt: skip
    for folder, said in (
        (tmp_path / "nothing", r"has no pyproject.toml: give the folder of a poetry project"),
        (setuptools, r"is not a poetry project"),
        (ROOT, r"is the collection's own project"),
    ):
        folder.mkdir(exist_ok=True)
        refused = inv("adopt", str(folder))
        assert refused.returncode == 1
        assert "Traceback" not in refused.stderr
        assert last_line(refused).startswith("error: ")
        assert re.search(said, last_line(refused))
    assert sorted(path.name for path in setuptools.iterdir()) == ["pyproject.toml", "x"]
