"""What the app is, read off its own pyproject.toml as poetry reads it; and the shared paths.

Nothing of the app is written in the collection: its name (which names the image, its labels
and the project's images), its version, its packages, its scripts and its tests are detected
here, and each detection that can be wrong has a setting that overrides it (README, "Adopt
it for your app"). The module's constants are read when it is imported, and never fail: a
pyproject.toml that cannot be read gives the folder's name, and `inv lock` says what is wrong.
What the image needs of the app (`app()`) is checked when it is asked for, in one line.
"""

import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from invoke import Context, Exit

COLLECTION = Path(__file__).resolve().parents[1]  # shipyard/: the collection, as users take it
ROOT = COLLECTION.parent  # the project: its pyproject.toml, its tasks.py
DOCKERFILE = COLLECTION / "Dockerfile"
IN_IMAGE = COLLECTION / "docker"  # the scripts that run inside the image
POETRY_BACKEND = "poetry.core.masonry.api"


def pyproject(root: Path = ROOT) -> dict:
    """ROOT's pyproject.toml; empty where it is missing or broken (`inv lock` says how)."""
    try:
        return tomllib.loads((root / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _metadata(document: dict) -> dict:
    """The project's core metadata, from PEP 621's [project] or else poetry's [tool.poetry]."""
    poetry = document.get("tool", {}).get("poetry", {})
    project = document.get("project", {})
    urls = project.get("urls") or {
        "Source": poetry.get("repository") or poetry.get("homepage") or "unknown"
    }
    return {
        "name": project.get("name") or poetry.get("name"),
        "version": project.get("version") or poetry.get("version"),
        "urls": urls,
    }


PROJECT = _metadata(pyproject())
NAME = PROJECT["name"] or ROOT.name
VERSION = PROJECT["version"] or "unknown"
VENV = Path(".venv")
POETRY = VENV / "poetry"  # poetry's own environment: `poetry sync` of .venv can never remove it
STAMPS = VENV / "stamps"  # what each step last did, to skip it when its inputs are unchanged
# Every container and image the tasks make carries this label; `clean` removes by it, nothing else.
ROLE = f"{NAME}.role"
# The requirement files that `inv export` writes from the lock: the app's dependencies (poetry's
# main group), and its tests' (the groups that hold pytest). The image installs from them.
EXPORTED = ("requirements.txt", "requirements-test.txt")


@dataclass(frozen=True)
class App:
    """What the image needs of the app, as its pyproject.toml says it."""

    name: str
    version: str
    packages: dict[str, str]  # each top-level import name: its folder or file, from the root
    scripts: dict[str, str]  # each console script: its entry point, MODULE:FUNCTION
    build_script: str | None  # poetry's [tool.poetry.build] script: the wheel is the target's
    test_paths: list[str]  # what pytest collects
    test_groups: list[str]  # the poetry groups that hold pytest: the test stage installs them
    source: str = "unknown"  # the repository's URL, for the image's labels
    addopts: list[str] = field(default_factory=list)  # pytest's, as the project sets them
    requires: list[str] = field(default_factory=list)  # what its build backend needs

    def script(self, chosen: str | None) -> str | None:
        """The console script that the image runs: CHOSEN (app.script), else the only one,
        else the one named as the app; None for an app with none (the image runs python)."""
        if chosen:
            if chosen not in self.scripts:
                raise Exit(
                    f"error: app.script is {chosen}, which pyproject.toml does not name. Set it "
                    f"to one of: {', '.join(self.scripts) or 'none: the app has no script'}."
                )
            return chosen
        if len(self.scripts) <= 1:
            return next(iter(self.scripts), None)
        if self.name in self.scripts:
            return self.name
        raise Exit(
            f"error: pyproject.toml names {len(self.scripts)} scripts ({', '.join(self.scripts)}) "
            "and none is named as the app: set app.script (INVOKE_APP_SCRIPT) to the one the "
            "image runs. Every one of them is on its PATH."
        )

    def describe(self, script: str | None) -> str:
        """One line: what was detected, SCRIPT being the one that the image runs."""
        shown = ", ".join(f"{name} ({path})" for name, path in self.packages.items())
        built = f", built by its script {self.build_script}" if self.build_script else ""
        if script:
            entry = f"script {script} ({self.scripts[script]})"
        elif self.scripts:
            entry = f"scripts {', '.join(self.scripts)} (app.script names the image's)"
        else:
            entry = "no script: the image runs python"
        tests = " ".join(self.test_paths) or "none found"
        return f"{self.name} {self.version}: {shown}{built}; {entry}; tests {tests}"


def app(root: Path = Path()) -> App:
    """The app of the project at ROOT (where the tasks run: the project's root), as poetry
    builds it; one line where something that the image needs cannot be found, saying what to
    set."""
    return _detected(root.resolve())


@functools.cache
def _detected(root: Path) -> App:
    document = pyproject(root)
    where = root / "pyproject.toml"
    if not document:
        raise Exit(f"error: {where} is missing or cannot be read. Run `poetry check` there.")
    poetry = document.get("tool", {}).get("poetry", {})
    backend = document.get("build-system", {}).get("build-backend")
    if backend != POETRY_BACKEND and not poetry:
        raise Exit(
            f"error: {where} is not a poetry project (its build backend is {backend or 'unset'}): "
            "the tasks lock and export with poetry. Run `poetry init` there, or convert it."
        )
    metadata = _metadata(document)
    if not metadata["name"] or not metadata["version"]:
        raise Exit(f"error: {where} names no name or version in [project] or [tool.poetry].")
    packages = _packages(root, poetry, metadata["name"])
    scripts = _scripts(document)
    for script, entry in scripts.items():
        module = entry.partition(":")[0].strip()
        if not _module_file(root, packages, module):
            raise Exit(
                f"error: script {script} runs {entry}, and no file holds {module} in the "
                f"packages that poetry builds ({', '.join(packages)}). Fix the script, or "
                "poetry's packages, in pyproject.toml."
            )
    pytest = document.get("tool", {}).get("pytest", {}).get("ini_options", {}) or _ini(root)
    addopts = pytest.get("addopts", [])
    addopts = addopts.split() if isinstance(addopts, str) else list(addopts)
    paths = pytest.get("testpaths", [])
    paths = paths.split() if isinstance(paths, str) else list(paths)
    if not paths:  # pytest would collect the whole tree: the sources' doctests too, if asked
        paths = [name for name in ("tests", "test") if (root / name).is_dir()][:1]
    build = poetry.get("build")
    return App(
        name=metadata["name"],
        version=metadata["version"],
        packages=packages,
        scripts=scripts,
        build_script=build.get("script") if isinstance(build, dict) else build,
        test_paths=paths,
        test_groups=_groups_with(document, "pytest"),
        source=metadata["urls"].get("Source") or next(iter(metadata["urls"].values()), "unknown"),
        addopts=addopts,
        requires=document.get("build-system", {}).get("requires", ["poetry-core"]),
    )


def _packages(root: Path, poetry: dict, name: str) -> dict[str, str]:
    """The top-level import names that poetry puts in the wheel, each with its path: poetry's
    `packages` (a folder or module, `from` a folder such as src/), else the folder or module
    named as the project (my-project: my_project), at the root or in src/."""
    found = {}
    for entry in poetry.get("packages", []):
        if "wheel" not in _formats(entry):
            continue
        base = root / entry.get("from", ".")
        for path in sorted(base.glob(entry["include"])):
            if path.is_dir() or path.suffix == ".py":
                module = path.stem if path.is_file() else path.name
                top = entry.get("to", module).split("/")[0]
                found[top] = str(path.relative_to(root))
    if not poetry.get("packages"):
        module = re.sub(r"[-_.]+", "_", name).lower()
        for candidate in (root / module, root / f"{module}.py", root / "src" / module,
                          root / "src" / f"{module}.py"):  # fmt: skip
            if candidate.exists():
                found[module] = str(candidate.relative_to(root))
                break
    if not found:
        raise Exit(
            f"error: poetry finds no package to build in {root}: no {re.sub(r'[-_.]+', '_', name)}"
            "/ (or src/...) and no `packages` in [tool.poetry] that exist. Add "
            '`packages = [{ include = "NAME", from = "src" }]` to [tool.poetry].'
        )
    return found


def _formats(entry: dict) -> list[str]:
    formats = entry.get("format", ["sdist", "wheel"])
    return [formats] if isinstance(formats, str) else list(formats)


def _scripts(document: dict) -> dict[str, str]:
    """The console scripts: [project.scripts], and poetry's own [tool.poetry.scripts]."""
    scripts = dict(document.get("project", {}).get("scripts", {}))
    for name, entry in document.get("tool", {}).get("poetry", {}).get("scripts", {}).items():
        if isinstance(entry, dict):  # { reference = "mod:func", type = "console" }
            if entry.get("type", "console") != "console":
                continue
            entry = entry["reference"]
        scripts.setdefault(name, entry)
    return scripts


def _module_file(root: Path, packages: dict[str, str], module: str) -> Path | None:
    """The file that holds MODULE (a.b.c) in PACKAGES, where one does."""
    top, _, rest = module.partition(".")
    if top not in packages:
        return None
    path = root / packages[top]
    for part in filter(None, rest.split(".")):
        path = path / part
    for candidate in (path / "__init__.py", path.with_suffix(".py"), path):
        if candidate.is_file():
            return candidate
    return None


def _ini(root: Path) -> dict:
    """pytest's settings from pytest.ini, tox.ini or setup.cfg, where pyproject.toml has none."""
    import configparser

    for name, section in (("pytest.ini", "pytest"), ("tox.ini", "pytest"),
                          ("setup.cfg", "tool:pytest")):  # fmt: skip
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(root / name)
        except configparser.Error:
            continue
        if parser.has_section(section):
            return dict(parser[section])
    return {}


def _groups_with(document: dict, distribution: str) -> list[str]:
    """The poetry groups that depend on DISTRIBUTION (the old dev-dependencies are `dev`)."""
    poetry = document.get("tool", {}).get("poetry", {})
    declared = poetry.get("group", {}).items()
    groups = {name: group.get("dependencies", {}) for name, group in declared}
    if "dev-dependencies" in poetry:
        groups.setdefault("dev", poetry["dev-dependencies"])
    wanted = re.compile(rf"^{distribution}(\W|$)", re.IGNORECASE)
    return [name for name, dependencies in groups.items()
            if any(wanted.match(dependency) for dependency in dependencies)]  # fmt: skip


def test_groups(c: Context) -> list[str]:
    """test.groups, else the groups that hold pytest; one line where none does."""
    setting = c.test.groups
    if setting:
        return setting.split(",") if isinstance(setting, str) else list(setting)
    found = app().test_groups
    if not found:
        raise Exit(
            "error: no poetry group of pyproject.toml holds pytest, so the image's test stage "
            "would have nothing to test with. Add one (`inv poetry -- add --group test pytest`), "
            "or name the groups in test.groups (INVOKE_TEST_GROUPS)."
        )
    return found


def exports(c: Context) -> dict[str, str]:
    """The two exported requirement files, and the poetry groups that each one holds."""
    return dict(zip(EXPORTED, ["main", ",".join(test_groups(c))], strict=True))
