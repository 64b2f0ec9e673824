"""The workflow of shipyard, one task per step, in the order a person runs them, for any poetry app.

    inv venv lock install test export    # the app, proven on the laptop
    inv base explore build run clean     # the image, on a Docker Engine or rootless Podman
    inv release                          # all of it: from a fresh clone to a tested image
    inv keygen push; inv verify REF      # a release signed by cosign, checked against its source
    inv adopt PATH                       # another poetry project takes the collection

A project's own tasks.py imports `ns` from here (and adds its own tasks to it). `inv --list`
names every task and `inv --help TASK` its options. The defaults are set once, in
`ns.configure` at the end of this file; invoke.yaml and INVOKE_* variables override them (for
example INVOKE_PYTHON_VERSION=3.11). What the image needs of the app (its name, packages,
script and tests) is read off its pyproject.toml (tooling/project.py). A task whose work is
done says so and returns; a failure ends in one line that says what happened and what to do.
The mechanics live in tooling/, a module a job: the engine (and what Podman does otherwise),
secrets, Pythons, the base image, cross builds, registries, the SBOM and provenance, signing.
"""

import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from invoke import Collection, Context, Exit, task

import shipyard
from shipyard.tooling import (
    adoption,
    bootstrap,
    cosign,
    engine,
    images,
    imports,
    opened,
    owned,
    platforms,
    podman,
    poetry,
    project,
    pythons,
    registry,
    sbom,
    secrets,
    security,
    signing,
    stamps,
    suite,
    verification,
)
from shipyard.tooling.commands import ok, split
from shipyard.tooling.project import (
    COLLECTION,
    EXPORTED,
    IN_IMAGE,
    NAME,
    POETRY,
    ROLE,
    ROOT,
    VENV,
    VERSION,
    app,
    exports,
)

# Every path below is relative to the project root, whichever folder `inv` was started in.
os.chdir(ROOT)

# The files that steps rewrite and git tracks: `release` names those not committed yet.
COMMITTED = ("pyproject.toml", "poetry.lock", *EXPORTED)


def _test_inputs(c: Context) -> list[str]:
    """What the suite reads: `release` skips it when none of it changed since a green run."""
    read = ["pyproject.toml", "poetry.lock", "tasks.py", *app().packages.values()]
    return [*read, *suite.paths(c), str(COLLECTION.relative_to(ROOT))]


# --- The local flow: venv -> lock -> install -> test -> export -------------------------------


@task(help={"force": "Delete .venv and make it again."})
def venv(c, force=False):
    """Make .venv with python.version's Python, and poetry beside it.

    Poetry gets an environment of its own inside .venv, so that syncing .venv never removes it.
    """
    fingerprint = f"python{pythons.version(c)} {c.poetry.requirements}"
    if not force and (VENV / "bin" / "python").exists() and stamps.done("venv", fingerprint):
        print(f"{VENV} has python{c.python.version} and {c.poetry.requirements}: nothing to do")
        return
    python = pythons.interpreter(c)
    c.run(shlex.join(["rm", "-rf", str(VENV)]), echo=True)
    c.run(shlex.join([python, "-m", "venv", str(VENV)]), echo=True)
    c.run(shlex.join([python, "-m", "venv", str(POETRY)]), echo=True)
    if VENV.is_dir():  # git leaves it alone, as Python 3.13's venv says, on any Python
        (VENV / ".gitignore").write_text("*\n")
    pip = [str(POETRY / "bin" / "pip"), "install", "--quiet", *shlex.split(c.poetry.requirements)]
    # The mirror's URL may hold credentials: it goes in the environment, never on a shown line.
    env = {"PIP_INDEX_URL": c.pypi.mirror} if c.pypi.mirror else {}
    ok(
        c.run(shlex.join(pip), env=env, echo=True, warn=True),
        what="installing poetry",
        fix="Check the network or the PyPI mirror (pypi.mirror), then run `inv venv --force`.",
    )
    stamps.record(c, "venv", fingerprint)


@task(pre=[venv])
def lock(c):
    """Lock the dependencies for python.version; a no-op when poetry.lock is current.

    requires-python in pyproject.toml follows python.version, and the lock follows it.
    """
    pythons.align(c)
    fingerprint = stamps.digest("pyproject.toml", "poetry.lock")
    if stamps.done("lock", fingerprint):
        print("poetry.lock matches pyproject.toml: nothing to do")
        return
    if not poetry.run(c, "check", "--lock", hide=True, warn=True).ok:
        poetry.ok(
            c,
            poetry.run(c, "lock", echo=True, warn=True),
            what="poetry lock",
            fix="Fix what poetry names above, then run `inv lock` again.",
        )
    stamps.record(c, "lock", stamps.digest("pyproject.toml", "poetry.lock"))


@task(pre=[venv, lock])
def install(c):
    """Install the app with poetry's groups (all but the optional ones) into .venv.

    poetry.groups adds optional groups. Bytecode is compiled as packages install: where
    PYTHONDONTWRITEBYTECODE is set, as in many containers, nothing else would write it, and
    every pytest run would compile its imports.
    """
    fingerprint = f"{stamps.digest('pyproject.toml', 'poetry.lock')} {c.poetry.groups}"
    if stamps.done("install", fingerprint):
        print(f"{VENV} is in sync with poetry.lock: nothing to do")
        return
    groups = ["--with", c.poetry.groups] if c.poetry.groups else []
    poetry.ok(
        c,
        poetry.run(c, "sync", "--compile", *groups, echo=True, warn=True),
        what="poetry sync",
        fix="Check the network or the PyPI mirror (pypi.mirror), then run `inv install` again.",
    )
    stamps.record(c, "install", fingerprint)


@task(pre=[venv], name="poetry")
def poetry_(c):
    """Run poetry on .venv, through the index that the tasks use: `inv poetry -- add numpy`.

    The arguments after -- go to poetry as they are. Poetry run by hand reads PyPI's JSON
    API, which an index that serves only the simple API (most mirrors) lacks. Then `inv
    export` and `inv build` take a change to the lock into the image.
    """
    args = split(c.remainder, what="the arguments after --")
    if not args:
        raise Exit("error: no poetry command: give one after --, as in `inv poetry -- add numpy`.")
    poetry.ok(
        c,
        poetry.run(c, *args, echo=True, warn=True),
        what=f"poetry {args[0]}",
        fix="Fix what poetry names above, then run the command again.",
    )


@task(
    pre=[install],
    help={
        "all": "Also run the tests that test.slow selects (here: those that build images).",
        "changed": "Skip the run when nothing the suite reads changed since its last green run.",
    },
)
def test(c, all=False, changed=False):
    """Run the app's tests, as its pytest configuration says; pytest arguments go after --.

    For example `inv test -- -k cli -x`. test.paths and test.markers narrow every run, here
    and in the image; what test.slow selects runs only with --all.
    """
    extra = split(c.remainder, what="the arguments after --")
    fingerprint = f"{stamps.digest(*_test_inputs(c))} all={all}"
    if changed and not extra and stamps.done("test", fingerprint):
        print("nothing the suite reads changed since its last green run: skipped")
        return
    runner = str((IN_IMAGE / "run-tests").relative_to(ROOT))
    argv = [str(VENV / "bin" / "python"), runner, *suite.arguments(c, all, extra)]
    result = c.run(shlex.join(argv), warn=True)
    if result.exited == 5 and extra:
        raise Exit("error: no test ran: nothing matched the selection after --.", code=5)
    if result.failed:  # run-tests' own last line says why, where it can tell
        said = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
        fix = "error: the test suite failed. Fix what fails above, then run `inv test` again."
        raise Exit((said or [fix])[-1], code=result.exited)
    if not extra:
        stamps.record(c, "test", fingerprint)


@task(
    pre=[lock],
    help={"check": "Change nothing; fail, naming the file, when an export differs from the lock."},
)
def export(c, check=False):
    """Export the lock to requirements*.txt, with hashes.

    requirements.txt holds the core group, requirements-test.txt the groups that hold pytest
    (test.groups); a file is rewritten only when its content changes.
    """
    stale = []
    for path, group in exports(c).items():
        # A read-only command: it runs under --dry too, so that the plan shown is the real one.
        exported = poetry.run(c, "export", "--only", group, hide=True, warn=True, dry=False)
        poetry.ok(
            c, exported, what=f"poetry export of group {group}", fix="Run `inv lock`, then again."
        )
        wanted = poetry.export_header() + exported.stdout
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


# --- The container flow: base -> explore -> build -> run -> clean ----------------------------


@task(help={"force": "Bootstrap the base again, even when one is present."})
def base(c, force=False):
    """Make the base image of each platform available and current: pull it, or bootstrap it.

    The base is python:VERSION-slim for python.version. Where no registry can be reached, an
    equivalent image is bootstrapped from the Debian release that ships that Python, with its
    -updates and -security suites, under a local tag. Each call then checks it, in seconds:
    a pulled base is pulled again when its tag moved; a bootstrapped one is upgraded when
    Debian's archive has a newer package. docker.refresh_base=false keeps it as it is.
    """
    engine.require(c)
    for platform in platforms.wanted(c):
        print(f"base image for {platform}: {bootstrap.base(c, platform, force)}")
        bootstrap.fresh(c, platform)


@contextmanager
def _removed_at_exit(c: Context, container: str) -> Iterator[None]:
    """Remove CONTAINER when the block ends: normally, on Ctrl-C, or when the terminal closes."""

    def remove() -> None:
        engine.remove_containers(c, container, hide=True, warn=True)

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
    argv = split(cmd) if cmd else None
    engine.require(c)
    container = f"{NAME}-dev"
    role_and_state = f'{{{{index .Config.Labels "{ROLE}"}}}} {{{{.State.Running}}}}'
    found = engine.probe(c, "container", "inspect", "--format", role_and_state, container)
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
            engine.remove_containers(c, container, hide=True, warn=True)
        start = ["run", "--detach", "--name", container, "--label", f"{ROLE}=dev"]
        start += ["--volume", f"{ROOT}:/project:ro", "--workdir", "/project"]
        engine.docker(c, *start, bootstrap.base(c), "sleep", "infinity", echo=True, hide="stdout")
        _explore_in(c, container, argv)


def _explore_in(c: Context, container: str, argv: list[str] | None) -> None:
    if argv is None:  # a shell, on the user's terminal
        shell = ["exec", "--interactive", "--tty", container, "bash"]
        engine.docker(c, *shell, pty=True, in_stream=sys.stdin, warn=True)
        return
    result = engine.docker(c, "exec", container, *argv, echo=True, warn=True)
    if result.failed:
        raise Exit(f"`{shlex.join(argv)}` exited with {result.exited}", code=result.exited)


def _exports_current() -> None:
    """End with a clear line when requirements*.txt were not exported from this poetry.lock."""
    header = poetry.export_header()
    exported = {path: Path(path).is_file() and Path(path).read_text().startswith(header)
                for path in EXPORTED}  # fmt: skip
    stale = [path for path, current in exported.items() if not current]
    if stale:
        raise Exit(
            f"error: {' and '.join(stale)} not exported from the current poetry.lock. "
            "Run `inv export` first."
        )


@task(
    pre=[install],
    help={
        "test": "Build the test stage, which runs the suite inside the image, not the runtime.",
        "no_cache": "Build every layer again, ignoring the cache (on Docker 20.10, pip's too), "
        "and scan the whole image for its SBOM.",
        "skip_import_check": "Do not import every module in the runtime image, nor look for what "
        "they open by name (release says so).",
    },
)
def build(c, test=False, no_cache=False, skip_import_check=False):
    """Build the runtime image (or its test stage) for each platform, and print its size.

    On the engine's own platform, the runtime is tagged with the version from pyproject.toml
    and `latest`, the test stage `test`; on another (docker.platforms), VERSION-ARCH and
    test-ARCH. pip's CA bundle and index reach the build as BuildKit secrets. With
    registry.cache, the build starts from the cache there, and adds to it. Each runtime must
    then import every module that the lock installs, run as a hardened deployment runs it;
    where one opens a library by name, the runtime is built again with its Debian package.
    Every module that still fails, of every platform, is named at the end.
    """
    engine.require_buildkit(c)
    _exports_current()
    wanted = platforms.wanted(c)
    for platform in wanted:
        platforms.require_emulation(c, platform)
    failed = []
    for platform in wanted:
        bootstrap.fresh(c, platform, always=False)  # asked once an hour; `inv base` asks now
        target = "test" if test else "runtime"
        gate = None if test or skip_import_check else partial(imports.check, c, platform=platform)
        ref, checked = images.build(c, platform, target, no_cache, check=gate)
        if gate:  # what failed for a library opened by name is found, and the image built again
            again = partial(_runtime, c, platform)
            failed += opened.gate(c, ref, platform, rebuild=again, checked=checked)
    if failed:
        raise Exit("\n".join(failed))


def _runtime(c: Context, platform: str) -> str:
    """Build PLATFORM's runtime again, as it is now: its name."""
    return images.build(c, platform, "runtime", no_cache=False, check=None)[0]


def _container_of(ref: str, platform: str) -> list[str]:
    """`docker run` arguments for one labelled, throwaway container of REF, never pulled."""
    return [*engine.throwaway(platform), ref]


@task(
    help={
        "cmd": 'The image\'s arguments, as one string: "say-hello --name alice".',
        "platform": "Run the image of this platform, built by `inv build` (default: the engine's).",
    }
)
def run(c, cmd=None, platform=None):
    """Run the image once with --cmd; exit with the container's code.

    --cmd is split like a shell would split it, but no shell runs it, here or in the image.
    Without --cmd, the image prints its usage. Another platform's image runs under emulation.
    """
    argv = split(cmd) if cmd else []
    engine.require(c)
    platform = platforms.one(c, platform)
    ref = images.ref(c, platforms.tag(c, platform, VERSION))
    engine.require_image(c, ref)
    result = engine.docker(c, *_container_of(ref, platform), *argv, echo=True, warn=True)
    if result.failed:
        raise Exit(f"{ref} exited with {result.exited}", code=result.exited)


def _smoke_checks(c: Context) -> dict[tuple[str, ...], list[str]]:
    """What `smoke` runs in the image, and what each must print: the app's script answers
    --help (an app with no script: python imports its packages); then app.smoke's commands."""
    found = app()
    if found.script(c.app.script):
        checks = {("--help",): []}
    else:
        checks = {("-c", f"import {', '.join(found.packages)}"): []}
    for command, expected in (c.app.smoke or {}).items():
        checks[tuple(split(command, what=f"app.smoke's {command!r}"))] = (
            [expected] if isinstance(expected, str) else list(expected)
        )
    return checks


@task(
    help={
        "image": "The image to check (default: the runtime image of this version).",
        "platform": "Check the image of this platform (default: the engine's own).",
    }
)
def smoke(c, image=None, platform=None):
    """Check that the image runs its script, hardened, and prints what app.smoke expects.

    The script must answer --help; each command of app.smoke must exit 0 and print its text.
    Every container runs as a hardened deployment runs it: read-only, no capability, no
    network (imports.HARDENED).
    """
    engine.require(c)
    platform = platforms.one(c, platform)
    ref = image or images.ref(c, platforms.tag(c, platform, VERSION))
    engine.require_image(c, ref)
    for argv, expected in _smoke_checks(c).items():
        container = [*engine.throwaway(platform), *imports.HARDENED, ref, *argv]
        result = engine.docker(c, *container, hide=True, warn=True)
        if c.config.run.dry:  # shown, not run: there is nothing to check
            continue
        missing = [text for text in expected if text not in result.stdout]
        if result.failed or missing:
            raise Exit(
                f"error: smoke test of {ref} failed: `{shlex.join(argv)}` exited with "
                f"{result.exited} and printed {result.stdout + result.stderr!r}, not {missing}."
            )
        printed = (result.stdout + result.stderr).splitlines()
        said = ([line for line in printed if line.strip()] or [""])[-1].strip()
        print(f"ok: {shlex.join(argv)} -> {said[:100]}")


@task(
    help={
        "image": "The image to audit (default: the runtime image of this version).",
        "platform": "Audit the image of this platform (default: the engine's own).",
    }
)
def audit(c, image=None, platform=None):
    """Compare the image's Debian packages with Debian's archive; fail if one is behind.

    The packages are those that the image's own dpkg records list; the archive is the base's
    Debian release with its -updates and -security suites, asked from a container of the base.
    Works for an image pulled back from a registry too.
    """
    engine.require(c)
    platform = platforms.one(c, platform)
    ref = image or images.ref(c, platforms.tag(c, platform, VERSION))
    engine.require_image(c, ref)
    base_image = bootstrap.base(c, platform)
    native = bootstrap.native(c, platform, base_image)
    report = security.audit(c, ref, platform, base_image, native)
    if report.error:
        raise Exit(f"error: {report.error}. Fix what it says, then try again.")
    if report.behind:
        print(security.table(report))
        raise Exit("\n".join(report.lines(ref, "Run `inv base`, then `inv build`.")))
    print(f"{ref} ({platform}): its {report.checked} Debian packages are current")


@task(
    help={
        "local": "Also delete .venv, htmlcov, dist and the caches in the work tree.",
        "base": "Also remove the base image that `inv base` bootstrapped, and what a killed "
        "upgrade of it left.",
        "build_cache": "Also prune the engine's whole build cache, which other projects share.",
        "yes": "Answer yes to --build-cache's question, for scripts.",
    }
)
def clean(c, local=False, base=False, build_cache=False, yes=False):
    """Remove the project's containers and images; more with flags.

    Only what the project made goes: its dev container, its stopped run containers, the
    images it tagged and their untagged leftovers (tooling/owned.py says how it knows). Images
    built on ours, and everything else on the engine, are left alone. With --local and no
    engine, the work tree is cleaned and the engine left alone.
    """
    if not local or engine.answers(c).ok:
        _clean_engine(c, base, build_cache, yes)
    else:
        print("no Docker Engine answers: the work tree is clean, the engine was left alone")
    if local:  # last: .venv holds the record of the images that the tasks built
        junk = [".venv", "htmlcov", "dist", ".coverage", ".pytest_cache", ".ruff_cache"]
        c.run(shlex.join(["rm", "-rf", *junk]), echo=True)
        c.run("find . -name __pycache__ -type d -prune -exec rm -rf {} +", echo=True)


def _clean_engine(c: Context, base: bool, build_cache: bool, yes: bool) -> None:
    engine.require(c)
    containers = owned.containers(c, base)
    if containers:
        engine.remove_containers(c, *containers, echo=True, hide="stdout")
    # Without --base the base stays; its untagged leftovers (IDs, of an upgrade) go all the same.
    bases = owned.images(c, role="base")
    kept = [] if base else [ref for ref in bases if not ref.startswith("sha256:")]
    images = [image for image in owned.images(c) if image not in kept]
    if images:
        engine.remove_images(c, *images, echo=True, hide="stdout", warn=True)
    if build_cache and podman.chosen(c):  # the images of its build cache that ours made
        cache = owned.build_cache(c)
        engine.remove_images(c, *cache, echo=True, hide="both", warn=True)
        left = owned.build_cache(c)
        freed = sum(size for image, size in cache.items() if image not in left)
        print(f"removed {len(cache) - len(left)} images of Podman's build cache that {NAME}'s "
              f"builds made ({freed / 1e6:.0f} MB); those that others use are kept")  # fmt: skip
    elif build_cache:
        engine.prune_build_cache(c, yes)
    owned.forget_removed(c)
    print(f"removed {len(containers)} containers and {len(images)} images of {NAME}")
    if podman.chosen(c):
        held = sum(owned.build_cache(c).values())
        print(f"Podman's build cache holds {held / 1e6:.0f} MB of {NAME}'s builds: "
              "`inv clean --build-cache` removes them")  # fmt: skip
    elif size := engine.build_cache_size(c):
        print(f"the engine's build cache holds {size}, every project's: `inv clean "
              "--build-cache` prunes it, asking first")  # fmt: skip


# The platforms that `inv bench` measures: the engine's own, and the other one, emulated.
BENCH_PLATFORMS = ("linux/amd64", "linux/arm64")


@task(
    pre=[install],
    help={
        "runs": "How many starts of each command make a latency median.",
        "loop": "Measure the inner loop alone: an edit's build and a no-op's, against a plain "
        "build's (a few minutes; all that runs on Podman).",
    },
)
def bench(c, runs=21, loop=False):
    """Measure the image against two baselines; write docs/benchmarks.md and docs/inner-loop.md.

    Size (whole, compressed, by component), cold and incremental build times, arm64's (or
    amd64's) image and cold build, an empty engine's build from a registry cache, a second
    `inv release`, and start latency: a quarter of an hour, on a quiet machine, with root,
    dockerd and docker-registry (an empty engine and its registry). Then the inner loop, on
    this engine: `inv build` after an edit of the app, and with nothing changed, beside a
    plain two-stage build of the same edit (shipyard/bench/loop.py).
    """
    engine.require_buildkit(c)
    build(c)
    own = platforms.own(c)
    with secrets.build_secrets(c) as flags:
        if not (loop or podman.chosen(c)):
            argv = [str(VENV / "bin" / "python"), str(COLLECTION / "bench" / "bench.py")]
            argv += ["--docker", c.docker.command, "--image", images.ref(c), "--runs", str(runs)]
            argv += ["--args", json.dumps(images.arguments(c, own)), "--source", _edited_module()]
            argv += ["--script", app().script(c.app.script) or "python"]
            for platform in BENCH_PLATFORMS:  # the other one is built too, as `build` would
                if platform != own:
                    platforms.require_emulation(c, platform)
                    argv += ["--foreign", f"{platform}={json.dumps(images.arguments(c, platform))}"]
            ok(
                c.run(shlex.join([*argv, *flags]), echo=True, warn=True),
                what="the benchmark",
                fix="See its last lines above; `inv clean` removes what it left.",
            )
        elif not loop:
            print("podman: the benchmark's baselines and empty engine are dockerd's: the inner "
                  "loop alone is measured")  # fmt: skip
        source = _edited_module()
        argv = [str(VENV / "bin" / "python"), str(COLLECTION / "bench" / "loop.py")]
        argv += ["--engine", c.docker.command, "--base", bootstrap.base(c), "--source", source]
        argv += flags  # --secret id=...: as the plain builds take them
        ok(
            c.run(shlex.join(argv), echo=True, warn=True),
            what="the inner loop's benchmark",
            fix="See its last lines above; `inv clean` removes what it left.",
        )


def _edited_module() -> str:
    """The module of the app that the inner loop's benchmark edits: its first package's."""
    path = ROOT / next(iter(app().packages.values()))
    module = path / "__init__.py" if path.is_dir() else path
    return str(module.relative_to(ROOT))


# --- Publish and release ------------------------------------------------------------------


@task(
    help={"allow_dirty": "Push even with uncommitted changes, though the revision tag then lies."}
)
def push(c, allow_dirty=False):
    """Push the image, pull it back by digest, smoke-test it, and sign it with cosign.

    Tags: the version, the short git revision and `latest`, under registry.url. With several
    platforms, each one's image goes first (VERSION-ARCH), and the three tags name a
    manifest list of them all; every platform is pulled back from it and smoke-tested. With
    signing.key, each image is signed by digest, with its SBOM and provenance attested beside
    it, and so is the list.
    """
    _push(c, allow_dirty)


def _push(c: Context, allow_dirty: bool = False) -> str:
    url = c.registry.url
    if not url:
        raise Exit(
            "error: no registry is configured. Set registry.url (INVOKE_REGISTRY_URL), "
            "for example 127.0.0.1:5000/team, then try again."
        )
    engine.require(c)
    status = images.git(c, "status", "--porcelain").splitlines()
    changed = [line.split(maxsplit=1)[-1] for line in status]  # "?? cosign.pub": cosign.pub
    if changed and not allow_dirty:
        raise Exit(
            f"error: the work tree has uncommitted changes ({', '.join(changed[:3])}"
            f"{' ...' if len(changed) > 3 else ''}), so the revision tag would name a commit that "
            "is not what was built. Commit them, or pass --allow-dirty."
        )
    signer = signing.signer(c)  # before the push: a key that cannot sign stops it here
    sources = {
        platform: images.ref(c, platforms.tag(c, platform, VERSION))
        for platform in platforms.wanted(c)
    }
    for source in sources.values():
        engine.require_image(c, source)
    repository = f"{url.rstrip('/')}/{c.docker.image}"
    tags = [VERSION, images.git(c, "rev-parse", "--short", "HEAD") or "unknown", "latest"]
    if len(sources) == 1:
        [(platform, source)] = sources.items()
        for tag in tags:
            digest = registry.push(c, source, f"{repository}:{tag}")  # one image: one digest
        digests = {platform: digest}
    else:  # each platform's image, then under each tag a manifest list of them all
        remote = {
            platform: f"{repository}:{VERSION}-{platforms.suffix(platform)}" for platform in sources
        }
        digests = {platform: registry.push(c, sources[platform], remote[platform])
                   for platform in sources}  # fmt: skip
        pushed = [f"{repository}@{digests[platform]}" for platform in sources]
        digest = registry.push_list(c, repository, tags, pushed)
    reference = f"{repository}@{digest}"
    # Pulled by digest under a throwaway name: what the registry serves is what gets tested.
    for platform in sources:
        throwaway = f"{NAME}-verify:{os.getpid()}-{platforms.suffix(platform)}"
        registry.pull(c, platform, reference)
        engine.docker(c, "tag", reference, throwaway, echo=True)
        if len(sources) > 1:  # the list's digest names each platform's: the next one needs it
            engine.docker(c, "image", "rm", reference, hide=True, warn=True)
        try:
            smoke(c, image=throwaway, platform=platform)
        finally:
            engine.docker(c, "image", "rm", throwaway, hide=True, warn=True)
    print(f"pushed and verified: {reference} ({', '.join(sources)})")
    for platform in sources:  # each image by its digest: what its attestations are of
        written = sbom.path(c, platforms.tag(c, platform, VERSION))
        print(f"  {platform}: {repository}@{digests[platform]}, SBOM {written}")
    listed = digest if len(sources) > 1 else None
    signing.release(c, signer, repository, sources, digests, listed)
    return reference


@task(help={"force": "Replace the key pair that is there."})
def keygen(c, force=False):
    """Make the key pair that `push` signs with, by cosign: signing.key and signing.public.

    cosign encrypts the private key with COSIGN_PASSWORD (it asks, where that is not set). The
    key is readable by you alone; keep it out of git (.gitignore names cosign.key), and it
    never enters a build (.dockerignore lets in only what the image needs). Commit the public
    key, for verifiers. A pair that a team made with `cosign generate-key-pair` serves as it is.
    """
    key, public = Path(c.signing.key), Path(c.signing.public)
    if key.is_file() and not force:
        print(f"{key} is there already, with {public}: nothing to do (--force replaces them)")
        return
    cosign.keygen(c, key, public)
    # push refuses a work tree with a file that git does not know: the public key is one.
    tracked = public.resolve().is_relative_to(ROOT)
    then = f": commit it (git add {shlex.quote(str(public))} && git commit)" if tracked else ""
    print(f"made {key} (private: keep it, never commit it) and {public}, for verifiers{then}")


@task(
    positional=["ref"],
    help={
        "ref": "The image, by tag or digest: REGISTRY/team/APP:VERSION.",
        "commit": "The commit it must have been built from (default: HEAD).",
        "rebuild": "Also build that commit in a temporary tree and compare the image.",
    },
)
def verify(c, ref, commit="HEAD", rebuild=False):
    """Check a pushed image against its source: signature, SBOM, provenance, and the rebuild.

    Each platform's image must be signed by signing.public's key, its SBOM and provenance
    attested of its very digest, and its provenance must name the commit. With --rebuild, the
    commit, built here, must give the same image. Any mismatch is one line.
    """
    wanted = images.git(c, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    if not wanted:
        raise Exit(f"error: {commit} is not a commit of this repository.")
    verification.check(c, ref, wanted, rebuild)


@task(
    help={
        "push": "End by pushing the tested image to the registry (or set registry.push).",
        "skip_import_check": "Do not import every module in the runtime images; said at the end.",
        "allow_outdated": "Release even where Debian's archive has fixes the image lacks.",
    }
)
def release(c, push=False, skip_import_check=False, allow_outdated=False):
    """Run the whole flow, from a fresh clone to a tested image.

    venv, lock, install, export, test, the test stage and the runtime of each platform, the
    smoke test of each (and with --push, push). Steps whose inputs are unchanged say so
    and skip. The files that steps rewrite and git tracks (a new lock, its exports) are named
    at the end where they differ from the last commit: to commit.
    """
    engine.require_buildkit(c)  # before any work: a release without an engine could only fail
    steps = {
        "venv": lambda: venv(c),
        "lock": lambda: lock(c),
        "install": lambda: install(c),
        # Before the suite: it and the build read the exports of the lock as it now is.
        "export": lambda: export(c),
        "test": lambda: test(c, changed=True),
        "base": lambda: base(c),
        "build the test stage": lambda: build(c, test=True),
        "build the runtime": lambda: build(c, skip_import_check=skip_import_check),
        "smoke test": lambda: [smoke(c, platform=platform) for platform in platforms.wanted(c)],
        "security": lambda: _security_gate(c, allow_outdated),
    }
    if push or c.registry.push:
        steps["push"] = lambda: _push(c)
    timings = {}
    for name, step in steps.items():
        print(f"\n==> {name}")
        start = time.monotonic()
        step()
        timings[name] = time.monotonic() - start
    print(f"\nreleased {images.ref(c)} ({engine.image_size(c, images.ref(c))})")
    for name, seconds in timings.items():
        print(f"  {name:<22} {seconds:6.1f} s")
    print(f"  {'total':<22} {sum(timings.values()):6.1f} s")
    if skip_import_check:
        print("  the import check was SKIPPED (--skip-import-check): modules may not import")
    if allow_outdated:
        print("  the security check was OVERRIDDEN (--allow-outdated): see its lines above")
    changed = images.git(c, "diff", "--name-only", "HEAD", "--", *COMMITTED).split()
    if changed:
        print(f"  not committed yet, and built into this image: {', '.join(changed)}. Commit them.")


def _security_gate(c: Context, allow_outdated: bool) -> None:
    """Refuse a release whose runtime holds a Debian package that the archive has fixed."""
    for platform in platforms.wanted(c):
        ref = images.ref(c, platforms.tag(c, platform, VERSION))
        base_image = bootstrap.base(c, platform)
        native = bootstrap.native(c, platform, base_image)
        report = security.audit(c, ref, platform, base_image, native)
        if report.error:  # no archive, no verdict: said, as whoever failed says it
            print(f"warning: {report.error}: {ref} ({platform}) is unaudited")
        elif report.behind and not allow_outdated:
            fix = "Run `inv base`, then release again (--allow-outdated overrides, and says so)."
            raise Exit("\n".join(report.lines(ref, fix)))
        else:
            for line in report.lines(ref, "Released all the same (--allow-outdated)."):
                print(line.replace("error:", "warning:", 1))
            print(
                f"{ref} ({platform}): {report.checked} Debian packages checked against the archive"
            )


# --- Another app ---------------------------------------------------------------------------


@task(
    positional=["path"],
    help={
        "path": "The folder of the poetry project that takes the collection.",
        "force": "Replace its shipyard/ even where files there were edited since.",
    },
)
def adopt(c, path, force=False):
    """Bring the collection into the poetry project at PATH, or update it there.

    PATH gets shipyard/ (this collection, but for its own tests), a tasks.py that imports it
    where it has none, and poetry's group `shipyard` (what the tasks need). Nothing of the
    project's own is overwritten: a tasks.py, Dockerfile or CI of its own is left as it is,
    and one line says how the collection's is used beside it. Run again from a later
    collection, it updates shipyard/ there; a file edited since stops it (--force replaces).
    """
    target = Path(path).expanduser().resolve()
    adoption.check_target(target)
    changed = adoption.edited(target) if (target / "shipyard").exists() else []
    if changed and not force:
        raise Exit(
            f"error: {target / 'shipyard'} has files that `inv adopt` did not write, or that were "
            f"edited since: {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}. Move "
            "the change into a setting or a task of tasks.py, or pass --force to replace them."
        )
    replaced, count = adoption.copy(target)
    came = f"{replaced} -> {shipyard.__version__}" if replaced else shipyard.__version__
    lines = [f"shipyard/: the collection {came}, {count} files (never edit them: they are "
             "replaced by the next `inv adopt`)"]  # fmt: skip
    lines += [adoption.tasks_file(target), adoption.group(c, target)]
    lines += adoption.neighbours(target)
    found = project.app(target)
    single = found.name if found.name in found.scripts else next(iter(found.scripts), None)
    shown = single if len(found.scripts) == 1 or found.name in found.scripts else None
    print(f"adopted by {target}: {found.describe(shown)}")
    for line in lines:
        print(f"  {line}")
    print(f"next: cd {target} && inv release; then commit shipyard/, tasks.py, pyproject.toml "
          "and poetry.lock")  # fmt: skip


# The tasks, in the order of the workflow.
ns = Collection(venv, lock, install, poetry_, test, export,
                base, explore, build, run, smoke, audit, clean, bench,
                keygen, push, verify, release, adopt)  # fmt: skip
ns.configure(
    {
        # The Python of everything: .venv, requires-python, the base image, the image.
        "python": {"version": "3.13"},
        "poetry": {
            "requirements": (
                "poetry==2.5.1 poetry-plugin-export==1.10.1 poetry-plugin-pypi-mirror==0.6.5"
            ),
            "groups": "",  # optional groups to install too; the others always are
        },
        # What the image runs, and what `smoke` checks it prints: {"COMMAND": "TEXT"}.
        "app": {"script": None, "smoke": {}},
        # What pytest runs, here and in the image (tooling/suite.py): paths (the project's
        # testpaths by default), an -m expression for every run, what only `test --all` runs,
        # tests that cannot pass here (node IDs), and the poetry groups that the test stage
        # installs (those that hold pytest).
        "test": {"paths": None, "markers": "", "slow": "", "deselect": "", "groups": None},
        # A PyPI mirror or pull-through cache (INVOKE_PYPI_MIRROR), and a CA bundle for it;
        # without them, pip's own index and CA bundle.
        "pypi": {"mirror": None, "cert": None},
        "docker": {
            "command": "docker",  # INVOKE_DOCKER_COMMAND: a BuildKit docker CLI, or podman
            "image": NAME,
            "base": None,  # python.version's official slim image, python:3.13-slim
            "bootstrap": True,  # when the base cannot be pulled, bootstrap one from Debian
            # False keeps the base as it is (to reproduce an old build); true brings it up to
            # date with its registry, or with Debian's security and point updates.
            "refresh_base": True,
            "runtime": "distroless",  # or "slim": the base with a shell, for debugging
            "strip": True,  # False keeps the native libraries' symbols, for debugging
            # Debian packages that dependencies without a wheel need to build (their headers
            # and tools, such as libpq-dev): gcc and Python's headers come with them.
            "build_packages": "",
            # Debian packages the runtime carries beyond what it finds itself: a library
            # that a dependency opens by name, say.
            "runtime_packages": "",
            # Debian packages that the app's tests need in the test stage: git, libmagic1.
            "test_packages": "",
            # Libraries that the host mounts into the container at run time, which no Debian
            # package is looked for: NVIDIA's container toolkit mounts libcuda.so.1, say.
            "host_libraries": "",
            # Modules that may fail `build`'s import check, each with its reason: in
            # invoke.yaml a mapping, in the environment "MODULE: REASON; MODULE: REASON".
            "import_allowed": "",
            # The platforms to build, such as linux/amd64,linux/arm64; by default the engine's.
            "platforms": None,
            # Build another architecture's image on the engine's CPU, emulating only what must
            # run on the target (tooling/cross.py); false emulates every step.
            "cross": True,
        },
        # Where `push` sends the image; and a repository where builds share their cache.
        "registry": {"url": None, "push": False, "cache": None},
        # The key pair that `push` signs with and `verify` checks with (`inv keygen`): the
        # private key stays on this machine, never in git or a build; verifiers get the public.
        # cosign does the signing and its checks: the one on PATH, or where this names one.
        "signing": {"key": "cosign.key", "public": "cosign.pub", "cosign": "cosign"},
    }
)
