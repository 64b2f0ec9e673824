"""The workflow of my-project, one task per step, in the order a person runs them.

    inv venv lock install test export    # the app, proven on the laptop
    inv base explore build run clean     # the image, on a Docker Engine
    inv release                          # all of it: from a fresh clone to a tested image

`inv --list` names every task and `inv --help TASK` its options. The defaults are set once,
in `ns.configure` at the end of this file; invoke.yaml and INVOKE_* variables override them
(for example INVOKE_DOCKER_COMMAND=/usr/bin/docker). A task whose work is done says so and
returns; a failure ends in one line that says what happened and what to do.
"""

import hashlib
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from invoke import Collection, Context, Exit, Result, task
from invoke.exceptions import CommandTimedOut

# Every path below is relative to the project root, whichever folder `inv` was started in.
ROOT = Path(__file__).resolve().parent
os.chdir(ROOT)


def _project() -> dict:
    """pyproject.toml's [project] table; empty where the file is broken (`inv lock` says how)."""
    try:
        return tomllib.loads(Path("pyproject.toml").read_text())["project"]
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
# What the suite reads: `release` skips the suite when none of it changed since a green run.
TEST_INPUTS = ("my_project", "tests", "main.py", "tasks.py", "pyproject.toml", "poetry.lock")


# --- Shared mechanics -----------------------------------------------------------------------


def _probe(c: Context, command: str, timeout: int = 30) -> Result:
    """Run a read-only COMMAND quietly, even under --dry; failure is an answer, not an error."""
    try:
        return c.run(command, hide=True, warn=True, dry=False, in_stream=False, timeout=timeout)
    except CommandTimedOut as timed_out:
        return timed_out.result


def _docker_argv(c: Context, *args: str) -> str:
    return shlex.join([*shlex.split(c.docker.command), *args])


def _docker(c: Context, *args: str, **kwargs) -> Result:
    """Run the configured docker CLI with ARGS, each passed as one argument.

    Only an interactive command reads the terminal (in_stream=sys.stdin): any other would
    swallow what the user types ahead for the shell that comes next.
    """
    return c.run(_docker_argv(c, *args), **{"in_stream": False, **kwargs})


def _docker_probe(c: Context, *args: str) -> Result:
    return _probe(c, _docker_argv(c, *args))


def _engine(c: Context) -> None:
    """End with a clear line when no Docker Engine answers."""
    answer = _docker_probe(c, "version", "--format", "{{.Server.Version}}")
    if not answer.ok:
        reason = (answer.stderr.strip().splitlines() or ["no answer"])[-1]
        raise Exit(
            f"error: no Docker Engine answers ({reason}). Start one (`dockerd &`, or "
            "`systemctl start docker`) or point DOCKER_HOST at it, then try again."
        )


def _buildkit(c: Context) -> None:
    """End with a clear line when the docker CLI cannot build with BuildKit."""
    _engine(c)
    if _docker_probe(c, "buildx", "version").ok:
        return
    client = _docker_probe(c, "version", "--format", "{{.Client.Version}}").stdout.strip()
    major = client.partition(".")[0]
    # Before 23.0, `docker build` has BuildKit built in; from 23.0 on, only the buildx plugin.
    if major.isdigit() and int(major) < 23:
        return
    raise Exit(
        f"error: `{c.docker.command}` (client {client}) cannot build with BuildKit, which the "
        "Dockerfile needs. Install the buildx plugin, or point INVOKE_DOCKER_COMMAND at a CLI "
        "that has BuildKit (such as Debian's own, /usr/bin/docker)."
    )


def _image_id(c: Context, ref: str) -> str | None:
    return _docker_probe(c, "image", "inspect", "--format", "{{.Id}}", ref).stdout.strip() or None


def _image_size(c: Context, ref: str) -> str:
    size = _docker_probe(c, "image", "inspect", "--format", "{{.Size}}", ref).stdout.strip()
    return f"{int(size or 0) / 1e6:.0f} MB"


def _image_ref(c: Context, tag: str = VERSION) -> str:
    if not PROJECT:
        raise Exit("error: pyproject.toml cannot be read. Run `inv lock` to see why, and fix it.")
    return f"{c.docker.image}:{tag}"


def _split(cmd: str) -> list[str]:
    """Split user text into arguments like a shell would, without ever running one."""
    try:
        return shlex.split(cmd)
    except ValueError as error:
        raise Exit(f"error: cannot split --cmd {cmd!r}: {error}. Balance its quotes.") from None


def _ok(result: Result, what: str, fix: str) -> Result:
    """Pass RESULT on; when its command failed, end with one line: WHAT failed, how to FIX it."""
    if result.failed:
        raise Exit(f"error: {what} failed (exit {result.exited}). {fix}", code=result.exited)
    return result


def _digest(*paths: str) -> str:
    """A fingerprint of the contents of PATHS (files, or folders walked in order)."""
    digest = hashlib.sha256()
    for top in paths:
        files = sorted(Path(top).rglob("*")) if Path(top).is_dir() else [Path(top)]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(f"{path}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def _done(step: str, fingerprint: str) -> bool:
    """Whether STEP last succeeded on exactly these inputs."""
    stamp = STAMPS / step
    return stamp.is_file() and stamp.read_text() == fingerprint


def _record(c: Context, step: str, fingerprint: str) -> None:
    if not c.config.run.dry:
        STAMPS.mkdir(parents=True, exist_ok=True)
        (STAMPS / step).write_text(fingerprint)


def _poetry(c: Context, *args: str, **kwargs) -> Result:
    """Run poetry on .venv; through the configured PyPI mirror, when there is one."""
    env = {"VIRTUAL_ENV": str(ROOT / VENV), "POETRY_VIRTUALENVS_CREATE": "false"}
    if c.pypi.mirror:
        env["POETRY_PYPI_MIRROR_URL"] = c.pypi.mirror
    return c.run(shlex.join([str(POETRY / "bin" / "poetry"), *args]), env=env, **kwargs)


def _export_header() -> str:
    """The first line of an export: which lock it came from, so that `build` can tell."""
    lock = hashlib.sha256(Path("poetry.lock").read_bytes()).hexdigest()
    return f"# Exported from poetry.lock (sha256 {lock}) by `inv export`; do not edit.\n"


def _git(c: Context, *args: str) -> str:
    return _probe(c, shlex.join(["git", *args])).stdout.strip()


# --- The local flow: venv -> lock -> install -> test -> export -------------------------------


@task(help={"force": "Delete .venv and make it again."})
def venv(c, force=False):
    """Make .venv with the configured Python, and poetry beside it.

    Poetry gets an environment of its own inside .venv, so that syncing .venv never removes it.
    """
    python = f"python{c.python.version}"
    fingerprint = f"{python} {c.poetry.requirements}"
    if not force and (VENV / "bin" / "python").exists() and _done("venv", fingerprint):
        print(f"{VENV} has {python} and {c.poetry.requirements}: nothing to do")
        return
    if not shutil.which(python):
        raise Exit(
            f"error: {python} is not on PATH. Install Python {c.python.version}, "
            "or set python.version (INVOKE_PYTHON_VERSION) to one that is."
        )
    c.run(shlex.join(["rm", "-rf", str(VENV)]), echo=True)
    c.run(shlex.join([python, "-m", "venv", str(VENV)]), echo=True)
    c.run(shlex.join([python, "-m", "venv", str(POETRY)]), echo=True)
    pip = [str(POETRY / "bin" / "pip"), "install", "--quiet", *shlex.split(c.poetry.requirements)]
    # The mirror's URL may hold credentials: it goes in the environment, never on a shown line.
    env = {"PIP_INDEX_URL": c.pypi.mirror} if c.pypi.mirror else {}
    _ok(
        c.run(shlex.join(pip), env=env, echo=True, warn=True),
        what="installing poetry",
        fix="Check the network or the PyPI mirror (pypi.mirror), then run `inv venv --force`.",
    )
    _record(c, "venv", fingerprint)


@task(pre=[venv])
def lock(c):
    """Lock the dependencies; a no-op when poetry.lock is current."""
    fingerprint = _digest("pyproject.toml", "poetry.lock")
    if _done("lock", fingerprint):
        print("poetry.lock matches pyproject.toml: nothing to do")
        return
    if not _poetry(c, "check", "--lock", hide=True, warn=True).ok:
        _ok(
            _poetry(c, "lock", echo=True, warn=True),
            what="poetry lock",
            fix="Fix what poetry names above, then run `inv lock` again.",
        )
    _record(c, "lock", _digest("pyproject.toml", "poetry.lock"))


@task(pre=[venv, lock])
def install(c):
    """Install the app with its core, test and dev groups into .venv."""
    fingerprint = f"{_digest('pyproject.toml', 'poetry.lock')} {c.poetry.groups}"
    if _done("install", fingerprint):
        print(f"{VENV} is in sync with poetry.lock: nothing to do")
        return
    _ok(
        _poetry(c, "sync", "--with", c.poetry.groups, echo=True, warn=True),
        what="poetry sync",
        fix="Check the network or the PyPI mirror (pypi.mirror), then run `inv install` again.",
    )
    _record(c, "install", fingerprint)


@task(
    pre=[install],
    help={
        "all": "Also run the slow tests, those that build and run images on a Docker Engine too.",
        "changed": "Skip the run when nothing the suite reads changed since its last green run.",
    },
)
def test(c, all=False, changed=False):
    """Run the suite with coverage; pytest arguments go after --.

    For example `inv test -- -k cli -x`. Tests marked `docker` or `slow` run only with --all.
    """
    extra = shlex.split(c.remainder)
    fingerprint = f"{_digest(*TEST_INPUTS)} all={all}"
    if changed and not extra and _done("test", fingerprint):
        print("nothing the suite reads changed since its last green run: skipped")
        return
    argv = [str(VENV / "bin" / "python"), "-m", "pytest", "-s", "--tb=native", "--cov=my_project"]
    argv += ["--cov-report", "term-missing", "--cov-report", "html:htmlcov", "tests"]
    argv += [] if all else ["-m", "not docker and not slow"]
    # Coverage must be complete on a whole run; a selection (after --) covers only part.
    argv += extra or ["--cov-fail-under=100"]
    result = c.run(shlex.join(argv), warn=True)
    if result.exited == 5:
        raise Exit("error: no test ran: nothing matched the selection after --.", code=5)
    _ok(result, what="the test suite", fix="Fix what fails above, then run `inv test` again.")
    if not extra:
        _record(c, "test", fingerprint)


@task(
    pre=[lock],
    help={"check": "Change nothing; fail, naming the file, when an export differs from the lock."},
)
def export(c, check=False):
    """Export the lock to requirements*.txt, with hashes.

    requirements.txt holds the core group, requirements-test.txt the test group; a file is
    rewritten only when its content changes.
    """
    stale = []
    for path, group in EXPORTS.items():
        # A read-only command: it runs under --dry too, so that the plan shown is the real one.
        exported = _poetry(c, "export", "--only", group, hide=True, warn=True, dry=False)
        _ok(exported, what=f"poetry export of group {group}", fix="Run `inv lock`, then again.")
        wanted = _export_header() + exported.stdout
        if Path(path).is_file() and Path(path).read_text() == wanted:
            print(f"{path} matches poetry.lock: unchanged")
        elif check:
            stale.append(path)
        elif c.config.run.dry:
            print(f"would write {path}")
        else:
            Path(path).write_text(wanted)
            print(f"wrote {path}")
    if stale:
        raise Exit(
            f"error: {' and '.join(stale)} out of date with poetry.lock. "
            "Run `inv export` and commit the result."
        )


@task(pre=[install])
def lint(c):
    """Lint the Python code (ruff) and the Dockerfile (hadolint)."""
    tools = VENV / "bin"
    _ok(
        c.run(f"{tools}/ruff check .", echo=True, warn=True),
        what="ruff check",
        fix=f"Fix what ruff names above; `{tools}/ruff check --fix .` fixes many.",
    )
    _ok(
        c.run(f"{tools}/ruff format --check .", echo=True, warn=True),
        what="ruff format",
        fix=f"Run `{tools}/ruff format .`.",
    )
    _ok(
        c.run(f"{tools}/hadolint --failure-threshold warning Dockerfile", echo=True, warn=True),
        what="hadolint",
        fix="Fix the Dockerfile lines it names, or ignore a rule on its line, with the reason.",
    )


# --- The container flow: base -> explore -> build -> run -> clean ----------------------------


def _base(c: Context, force: bool = False) -> str:
    """The base image to build on: the configured one, or one bootstrapped from Debian."""
    wanted, local = c.docker.base, f"{NAME}-base:{c.docker.suite}"
    if not force and _image_id(c, wanted):
        return wanted
    if not force and _image_id(c, local):
        print(f"{wanted} is not here: using {local}, bootstrapped from Debian packages")
        return local
    if not force and _docker(c, "pull", wanted, echo=True, warn=True).ok:
        return wanted
    if not c.docker.bootstrap:
        raise Exit(
            f"error: cannot pull {wanted}, and bootstrapping is off. Make {wanted} available "
            "(docker pull, docker load), or set docker.bootstrap (INVOKE_DOCKER_BOOTSTRAP=1)."
        )
    if not shutil.which("debootstrap") or os.geteuid() != 0:
        raise Exit(
            f"error: cannot pull {wanted}, and bootstrapping {local} needs root and debootstrap "
            "(apt-get install debootstrap). Make the base available, or run as root."
        )
    print(f"cannot pull {wanted}: bootstrapping {local} from Debian packages (about a minute)")
    _bootstrap(c, local)
    return local


# A Python slim image, from Debian packages: the interpreter, venv, CA certificates.
DEBOOTSTRAP = ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates"]
# What a slim image leaves out: documentation, translations, apt's lists and caches.
NOT_IN_SLIM = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
               "var/lib/apt/lists", "var/cache/apt"]  # fmt: skip


def _bootstrap(c: Context, tag: str) -> None:
    """Make the image TAG from the configured Debian release, labelled as the project's own."""
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-base-") as root:
        _ok(
            c.run(
                shlex.join([*DEBOOTSTRAP, c.docker.suite, root]),
                echo=True,
                hide="stdout",
                warn=True,
            ),
            what="debootstrap",
            fix="Check that Debian's package archive can be reached, then run `inv base`.",
        )
        c.run(shlex.join(["rm", "-rf", *(f"{root}/{path}" for path in NOT_IN_SLIM)]), echo=True)
        changes = ["ENV LANG=C.UTF-8", f"LABEL {ROLE}=base", 'CMD ["python3"]']
        flags = " ".join(f"--change {shlex.quote(change)}" for change in changes)
        tar = f"tar -C {shlex.quote(root)} -c ."
        c.run(f"{tar} | {_docker_argv(c, 'import')} {flags} - {tag}", echo=True, hide="stdout")


@task(help={"force": "Bootstrap the base again, even when one is present."})
def base(c, force=False):
    """Make the base image available: pull it, or bootstrap it.

    Where no registry can be reached, an equivalent Python 3.11 slim image is bootstrapped
    from Debian packages under a local tag; later calls find it at once.
    """
    _engine(c)
    print(f"base image: {_base(c, force)}")


@contextmanager
def _removed_at_exit(c: Context, container: str) -> Iterator[None]:
    """Remove CONTAINER when the block ends: normally, on Ctrl-C, or when the terminal closes."""

    def remove() -> None:
        _docker(c, "container", "rm", "--force", "--volumes", container, hide=True, warn=True)

    def leave(signum, frame):
        remove()  # first: it ends the shell session that the block is waiting on
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        remove()


@task(help={"cmd": 'Run this command in the dev container instead of a shell: "python3 -V".'})
def explore(c, cmd=None):
    """Open a shell in a throwaway dev container of the base image.

    The container goes when the shell exits, on Ctrl-C too. A second `inv explore` joins a
    running one. The project is mounted read-only at /project.
    """
    argv = _split(cmd) if cmd else None
    _engine(c)
    container = f"{NAME}-dev"
    role_and_state = f'{{{{index .Config.Labels "{ROLE}"}}}} {{{{.State.Running}}}}'
    found = _docker_probe(c, "container", "inspect", "--format", role_and_state, container)
    role, _, running = found.stdout.strip().partition(" ")
    if role and role != "dev":
        raise Exit(
            f"error: a container named {container} exists, and {NAME} did not make it. It is left "
            f"as it is: rename or remove it yourself (docker rm {container}), then try again."
        )
    if running == "true":
        print(f"joining the running dev container {container}; it goes when its first session ends")
        return _explore_in(c, container, argv)
    with _removed_at_exit(c, container):
        if role:  # ours, but stopped: a leftover of a session that was killed
            _docker(c, "container", "rm", "--force", container, hide=True, warn=True)
        start = ["run", "--detach", "--name", container, "--label", f"{ROLE}=dev"]
        start += ["--volume", f"{ROOT}:/project:ro", "--workdir", "/project"]
        _docker(c, *start, _base(c), "sleep", "infinity", echo=True, hide="stdout")
        _explore_in(c, container, argv)


def _explore_in(c: Context, container: str, argv: list[str] | None) -> None:
    if argv is None:  # a shell, on the user's terminal
        shell = ["exec", "--interactive", "--tty", container, "bash"]
        _docker(c, *shell, pty=True, in_stream=sys.stdin, warn=True)
        return
    result = _docker(c, "exec", container, *argv, echo=True, warn=True)
    if result.failed:
        raise Exit(f"`{shlex.join(argv)}` exited with {result.exited}", code=result.exited)


def _exports_current() -> None:
    """End with a clear line when requirements*.txt were not exported from this poetry.lock."""
    header = _export_header()
    exported = {path: Path(path).is_file() and Path(path).read_text().startswith(header)
                for path in EXPORTS}  # fmt: skip
    stale = [path for path, current in exported.items() if not current]
    if stale:
        raise Exit(
            f"error: {' and '.join(stale)} not exported from the current poetry.lock. "
            "Run `inv export` first."
        )


@contextmanager
def _build_secrets(c: Context) -> Iterator[list[str]]:
    """Flags that hand pip's CA bundle and index URL to the build as secrets, never as a layer."""
    flags = []
    cert = _ca_bundle(c)
    if cert:
        flags += ["--secret", f"id=pip_cert,src={cert}"]
    index = c.pypi.mirror or os.environ.get("PIP_INDEX_URL")
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-secrets-") as folder:
        if index:  # a URL may carry credentials, so it travels in a file, not on a command line
            path = Path(folder) / "pip_index_url"
            path.write_text(index)
            flags += ["--secret", f"id=pip_index_url,src={path}"]
        yield flags


def _ca_bundle(c: Context) -> str | None:
    """The CA bundle pip uses here: config, PIP_CERT, pip's setting, or OpenSSL's variables."""
    candidates = (
        ("pypi.cert", lambda: c.pypi.cert),
        ("PIP_CERT", lambda: os.environ.get("PIP_CERT")),
        ("pip's cert setting", lambda: _pip_setting(c, "global.cert")),
        ("SSL_CERT_FILE", lambda: os.environ.get("SSL_CERT_FILE")),
        ("REQUESTS_CA_BUNDLE", lambda: os.environ.get("REQUESTS_CA_BUNDLE")),
    )
    for origin, find in candidates:
        path = find()
        if path and not Path(path).is_file():
            raise Exit(f"error: the CA bundle {path} (from {origin}) is not a file. Fix {origin}.")
        if path:
            return path
    return None


def _pip_setting(c: Context, key: str) -> str:
    return _probe(c, shlex.join([sys.executable, "-m", "pip", "config", "get", key])).stdout.strip()


def _sbom(c: Context) -> str:
    """Write the CycloneDX SBOM of the runtime's Python packages; return the label that names it."""
    path = Path("dist") / f"{NAME}-{VERSION}.cdx.json"
    fingerprint = _digest("requirements.txt")
    if not (path.is_file() and _done("sbom", fingerprint)):
        if not c.config.run.dry:
            path.parent.mkdir(exist_ok=True)
        argv = [str(VENV / "bin" / "cyclonedx-py"), "requirements", "--output-reproducible"]
        argv += ["--output-format", "JSON", "--output-file", str(path), "requirements.txt"]
        _ok(
            c.run(shlex.join(argv), echo=True, warn=True), what="the SBOM", fix="Run `inv install`."
        )
        _record(c, "sbom", fingerprint)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "unknown"
    print(f"SBOM: {path}")
    return f"{NAME}.sbom={path} sha256:{digest}"


@task(
    pre=[install],
    help={
        "test": "Build the test stage, which runs the suite inside the image, not the runtime.",
        "no_cache": "Build every layer again, ignoring the cache.",
    },
)
def build(c, test=False, no_cache=False):
    """Build the runtime image (or its test stage) and print its size.

    The runtime is tagged with the version from pyproject.toml and `latest`, the test stage
    with `test`. pip's CA bundle and PyPI mirror reach the build as BuildKit secrets.
    """
    _buildkit(c)
    _exports_current()
    target = "test" if test else "runtime"
    tags = [_image_ref(c, "test")] if test else [_image_ref(c), _image_ref(c, "latest")]
    before = _image_id(c, tags[0])
    dirty = "-dirty" if _git(c, "status", "--porcelain") else ""
    build_args = {
        "BASE_IMAGE": _base(c),
        "RUNTIME": c.docker.runtime,
        "STRIP": "1" if c.docker.strip else "0",
        "VERSION": VERSION,
        "REVISION": (_git(c, "rev-parse", "HEAD") or "unknown") + dirty,
        "CREATED": _git(c, "log", "-1", "--format=%cI") or "unknown",
        "SOURCE": PROJECT.get("urls", {}).get("Source", "unknown"),
    }
    argv = ["build", "--target", target, "--label", f"{ROLE}={target}"]
    argv += [] if test else ["--label", _sbom(c)]
    argv += [flag for tag in tags for flag in ("--tag", tag)]
    argv += [flag for item in build_args.items() for flag in ("--build-arg", "=".join(item))]
    argv += ["--no-cache"] if no_cache else []
    with _build_secrets(c) as secrets:
        result = _docker(
            c, *argv, *secrets, ".", env={"DOCKER_BUILDKIT": "1"}, echo=True, warn=True
        )
    if result.failed:
        raise Exit(
            f"error: the build failed (exit {result.exited}) at the step shown above; "
            f"{tags[0]} still holds what it held before.",
            code=result.exited,
        )
    state = "unchanged: every layer was cached" if _image_id(c, tags[0]) == before else "built"
    print(f"{' and '.join(tags)}: {state}, {_image_size(c, tags[0])}")


def _container_of(ref: str) -> list[str]:
    """`docker run` arguments for one labelled, throwaway container of REF, never pulled."""
    return ["run", "--rm", "--pull", "never", "--label", f"{ROLE}=run", ref]


def _require_image(c: Context, ref: str) -> None:
    if not _image_id(c, ref):
        raise Exit(f"error: there is no image {ref} here yet. Build it first: `inv build`.")


@task(help={"cmd": 'The image\'s arguments, as one string: "say-hello --name alice".'})
def run(c, cmd=None):
    """Run the image once with --cmd; exit with the container's code.

    --cmd is split like a shell would split it, but no shell runs it, here or in the image.
    Without --cmd, the image prints its usage.
    """
    argv = _split(cmd) if cmd else []
    _engine(c)
    ref = _image_ref(c)
    _require_image(c, ref)
    result = _docker(c, *_container_of(ref), *argv, echo=True, warn=True)
    if result.failed:
        raise Exit(f"{ref} exited with {result.exited}", code=result.exited)


def _pinned(distribution: str) -> str:
    """The version of DISTRIBUTION that requirements.txt pins."""
    for line in Path("requirements.txt").read_text().splitlines():
        if line.startswith(f"{distribution}=="):
            return line.split("==")[1].split()[0]
    raise Exit(f"error: requirements.txt pins no {distribution}. Run `inv export`.")


@task(help={"image": "The image to check (default: the runtime image of this version)."})
def smoke(c, image=None):
    """Check what show-deps and say-hello print in the image."""
    ref = image or _image_ref(c)
    _engine(c)
    _require_image(c, ref)
    checks = {
        ("say-hello", "--name", "alice"): ["Hello alice!"],
        ("show-deps",): [f"polars {_pinned('polars')}", "blue 6", "red 9"],
    }
    for argv, expected in checks.items():
        result = _docker(c, *_container_of(ref), *argv, hide=True, warn=True)
        if c.config.run.dry:  # shown, not run: there is nothing to check
            continue
        missing = [text for text in expected if text not in result.stdout]
        if result.failed or missing:
            raise Exit(
                f"error: smoke test of {ref} failed: `{shlex.join(argv)}` exited with "
                f"{result.exited} and printed {result.stdout + result.stderr!r}, not {missing}."
            )
        print(f"ok: {shlex.join(argv)} -> {result.stdout.splitlines()[-1].strip()}")


def _confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise Exit(f"error: {question} needs an answer, and there is no terminal. Add --yes.")
    return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}


@task(
    help={
        "local": "Also delete .venv, htmlcov, dist and the caches in the work tree.",
        "base": "Also remove the base image that `inv base` bootstrapped.",
        "build_cache": "Also prune the engine's whole build cache, which other projects share.",
        "yes": "Answer yes to --build-cache's question, for scripts.",
    }
)
def clean(c, local=False, base=False, build_cache=False, yes=False):
    """Remove the project's containers and images; more with flags.

    Only what carries the project's label goes: its dev container, its stopped run containers,
    its images and their dangling leftovers. Nothing else on the engine is touched.
    """
    _engine(c)
    # Live `inv run` containers belong to someone's terminal: only stopped ones are leftovers.
    leftovers = ["--filter", f"label={ROLE}=run"]
    leftovers += [
        flag for state in ("created", "exited", "dead") for flag in ("--filter", f"status={state}")
    ]
    containers = _ids(c, "container", "ls", "--all", "--filter", f"label={ROLE}=dev")
    containers += _ids(c, "container", "ls", "--all", *leftovers)
    if containers:
        _docker(c, "container", "rm", "--force", "--volumes", *containers, echo=True, hide="stdout")
    images = _ids(c, "image", "ls", "--filter", f"label={ROLE}")
    kept = [] if base else _ids(c, "image", "ls", "--filter", f"label={ROLE}=base")
    images = [image for image in images if image not in kept]
    if images:
        _docker(c, "image", "rm", "--force", *images, echo=True, hide="stdout", warn=True)
    print(f"removed {len(containers)} containers and {len(images)} images of {NAME}")
    if build_cache and _confirm("Prune this engine's whole build cache, for every project?", yes):
        _docker(c, "builder", "prune", "--force", echo=True)
    if local:
        junk = [".venv", "htmlcov", "dist", ".coverage", ".pytest_cache", ".ruff_cache"]
        c.run(shlex.join(["rm", "-rf", *junk]), echo=True)
        c.run("find . -name __pycache__ -type d -prune -exec rm -rf {} +", echo=True)


def _ids(c: Context, *args: str) -> list[str]:
    """The IDs that a `docker ... ls` command lists, each once, in order."""
    return list(dict.fromkeys(_docker_probe(c, *args, "--quiet").stdout.split()))


@task(pre=[install], help={"runs": "How many starts of each command make a latency median."})
def bench(c, runs=21):
    """Measure the image against two baselines; write docs/benchmarks.md.

    Size (whole, compressed, by component), cold and incremental build times, a second
    `inv release`, and start latency. Takes several minutes; run it on a quiet machine.
    """
    _buildkit(c)
    build(c)
    argv = [str(VENV / "bin" / "python"), "bench/bench.py", "--docker", c.docker.command]
    argv += ["--base", _base(c), "--image", _image_ref(c), "--runs", str(runs)]
    with _build_secrets(c) as secrets:
        _ok(
            c.run(shlex.join([*argv, *secrets]), echo=True, warn=True),
            what="the benchmark",
            fix="See its last lines above; `inv clean` removes what it left.",
        )


# --- Publish and release ------------------------------------------------------------------


@task(
    help={"allow_dirty": "Push even with uncommitted changes, though the revision tag then lies."}
)
def push(c, allow_dirty=False):
    """Push the image, pull it back by digest, and smoke-test it.

    Tags: the version, the short git revision and `latest`, under registry.url.
    """
    _push(c, allow_dirty)


def _push(c: Context, allow_dirty: bool = False) -> str:
    registry = c.registry.url
    if not registry:
        raise Exit(
            "error: no registry is configured. Set registry.url (INVOKE_REGISTRY_URL), "
            "for example 127.0.0.1:5000/team, then try again."
        )
    _engine(c)
    if _git(c, "status", "--porcelain") and not allow_dirty:
        raise Exit(
            "error: the work tree has uncommitted changes, so the revision tag would name a commit "
            "that is not what was built. Commit them, or pass --allow-dirty."
        )
    source = _image_ref(c)
    _require_image(c, source)
    repository = f"{registry.rstrip('/')}/{c.docker.image}"
    tags = [VERSION, _git(c, "rev-parse", "--short", "HEAD") or "unknown", "latest"]
    for tag in tags:
        _docker(c, "tag", source, f"{repository}:{tag}", echo=True)
        pushed = _docker(c, "push", f"{repository}:{tag}", echo=True, warn=True)
        _registry_ok(pushed, registry)
    # One image, so one digest for the three tags; none is shown under --dry.
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed.stdout)
    reference = f"{repository}@{digest[1] if digest else 'unknown'}"
    # Pulled by digest under a throwaway name: what the registry serves is what gets tested.
    throwaway = f"{NAME}-verify:{os.getpid()}"
    _registry_ok(_docker(c, "pull", reference, echo=True, warn=True), registry)
    _docker(c, "tag", reference, throwaway, echo=True)
    try:
        smoke(c, image=throwaway)
    finally:
        _docker(c, "image", "rm", throwaway, hide=True, warn=True)
    print(f"pushed and verified: {reference}")
    return reference


def _registry_ok(result: Result, registry: str) -> None:
    """End with one line naming REGISTRY and the likely fix, when a push or pull failed."""
    if result.ok:
        return
    output = result.stdout + result.stderr
    if re.search(r"unauthorized|authentication required|no basic auth|denied", output, re.I):
        fix = f"Log in first: `docker login {registry.split('/')[0]}` (or your credential helper)."
    else:
        fix = f"Check that {registry} is the right address and that it is up."
    raise Exit(
        f"error: the registry {registry} refused or did not answer. {fix}", code=result.exited
    )


@task(help={"push": "End by pushing the tested image to the registry (or set registry.push)."})
def release(c, push=False):
    """Run the whole flow, from a fresh clone to a tested image.

    venv, lock, install, lint, test, export, the test stage, the runtime, the smoke test
    (and with --push, push). Steps whose inputs are unchanged say so and skip.
    """
    _buildkit(c)  # before any work: a release without an engine could only fail later
    steps = {
        "venv": lambda: venv(c),
        "lock": lambda: lock(c),
        "install": lambda: install(c),
        "lint": lambda: lint(c),
        "test": lambda: test(c, changed=True),
        "export": lambda: export(c),
        "build the test stage": lambda: build(c, test=True),
        "build the runtime": lambda: build(c),
        "smoke test": lambda: smoke(c),
    }
    if push or c.registry.push:
        steps["push"] = lambda: _push(c)
    timings = {}
    for name, step in steps.items():
        print(f"\n==> {name}")
        start = time.monotonic()
        step()
        timings[name] = time.monotonic() - start
    print(f"\nreleased {_image_ref(c)} ({_image_size(c, _image_ref(c))})")
    for name, seconds in timings.items():
        print(f"  {name:<22} {seconds:6.1f} s")
    print(f"  {'total':<22} {sum(timings.values()):6.1f} s")


# The tasks, in the order of the workflow.
ns = Collection(venv, lock, install, test, export, lint,
                base, explore, build, run, smoke, clean, bench, push, release)  # fmt: skip
ns.configure(
    {
        "python": {"version": "3.11"},
        "poetry": {
            "requirements": (
                "poetry==2.5.1 poetry-plugin-export==1.10.1 poetry-plugin-pypi-mirror==0.6.5"
            ),
            "groups": "test,dev",
        },
        # A PyPI mirror or pull-through cache (INVOKE_PYPI_MIRROR), and a CA bundle for it.
        "pypi": {"mirror": None, "cert": None},
        "docker": {
            "command": "docker",  # INVOKE_DOCKER_COMMAND: a CLI that can build with BuildKit
            "image": NAME,
            "base": "python:3.11-slim",
            "bootstrap": True,  # when the base cannot be pulled, bootstrap one from Debian
            "suite": "bookworm",  # the Debian release that bootstrapping uses
            "runtime": "distroless",  # or "slim": the base with a shell, for debugging
            "strip": True,  # False keeps the native libraries' symbols, for debugging
        },
        "registry": {"url": None, "push": False},
    }
)
