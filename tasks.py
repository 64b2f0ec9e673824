"""The workflow of my-project, one task per step, in the order a person runs them.

    inv venv lock install test export    # the app, proven on the laptop
    inv base explore build run clean     # the image, on a Docker Engine or rootless Podman
    inv release                          # all of it: from a fresh clone to a tested image
    inv keygen push; inv verify REF      # a signed release, checked against its source

`inv --list` names every task and `inv --help TASK` its options. The defaults are set once,
in `ns.configure` at the end of this file; invoke.yaml and INVOKE_* variables override them
(for example INVOKE_PYTHON_VERSION=3.11). A task whose work is done says so and returns; a
failure ends in one line that says what happened and what to do. The mechanics live in
tooling/, a module a job: the engine (and what Podman does otherwise), secrets, Pythons, the
base image, cross builds, registries, the SBOM and provenance, signing.
"""

import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from invoke import Collection, Context, Exit, task

from tooling import (
    archive,
    bootstrap,
    cross,
    engine,
    imports,
    owned,
    platforms,
    poetry,
    provenance,
    pythons,
    registry,
    reproducible,
    sbom,
    secrets,
    security,
    signing,
    stamps,
    verification,
)
from tooling.commands import ok, probe, split
from tooling.project import EXPORTS, NAME, POETRY, PROJECT, ROLE, ROOT, VENV, VERSION

# Every path below is relative to the project root, whichever folder `inv` was started in.
os.chdir(ROOT)

# The files that steps rewrite and git tracks: `release` names those not committed yet.
COMMITTED = ("pyproject.toml", "poetry.lock", *EXPORTS)
# What the suite reads: `release` skips the suite when none of it changed since a green run.
TEST_INPUTS = ("my_project", "tests", "main.py", "tasks.py", "tooling", "pyproject.toml",
               "poetry.lock")  # fmt: skip


def _image_ref(c: Context, tag: str = VERSION) -> str:
    if not PROJECT:
        raise Exit("error: pyproject.toml cannot be read. Run `inv lock` to see why, and fix it.")
    return f"{c.docker.image}:{tag}"


def _git(c: Context, *args: str) -> str:
    return probe(c, shlex.join(["git", *args])).stdout.strip()


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
    """Install the app with its core, test and dev groups into .venv.

    Bytecode is compiled as packages install: where PYTHONDONTWRITEBYTECODE is set, as in many
    containers, nothing else would write it, and every pytest run would compile its imports.
    """
    fingerprint = f"{stamps.digest('pyproject.toml', 'poetry.lock')} {c.poetry.groups}"
    if stamps.done("install", fingerprint):
        print(f"{VENV} is in sync with poetry.lock: nothing to do")
        return
    poetry.ok(
        c,
        poetry.run(c, "sync", "--compile", "--with", c.poetry.groups, echo=True, warn=True),
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
        "all": "Also run the slow tests, those that build and run images on a Docker Engine too.",
        "changed": "Skip the run when nothing the suite reads changed since its last green run.",
    },
)
def test(c, all=False, changed=False):
    """Run the suite with coverage; pytest arguments go after --.

    For example `inv test -- -k cli -x`. Tests marked `docker` or `slow` run only with --all.
    """
    extra = split(c.remainder, what="the arguments after --")
    fingerprint = f"{stamps.digest(*TEST_INPUTS)} all={all}"
    if changed and not extra and stamps.done("test", fingerprint):
        print("nothing the suite reads changed since its last green run: skipped")
        return
    argv = [str(VENV / "bin" / "python"), "-m", "pytest", "-s", "--tb=native", "--durations=10"]
    argv += ["--cov=my_project"]
    argv += ["--cov-report", "term-missing", "--cov-report", "html:htmlcov", "tests"]
    argv += [] if all else ["-m", "not docker and not slow"]
    # Coverage must be complete on a whole run; a selection (after --) covers only part.
    argv += extra or ["--cov-fail-under=100"]
    result = c.run(shlex.join(argv), warn=True)
    if result.exited == 5:
        raise Exit("error: no test ran: nothing matched the selection after --.", code=5)
    ok(result, what="the test suite", fix="Fix what fails above, then run `inv test` again.")
    if not extra:
        stamps.record(c, "test", fingerprint)


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


@task(pre=[install])
def lint(c):
    """Lint the Python code (ruff), the Dockerfile (hadolint) and the CI workflows.

    The workflows are checked against GitHub's schema (check-jsonschema) and audited for
    security (zizmor), offline both; `.venv/bin/pre-commit install` runs the same at commit.
    """
    tools = VENV / "bin"
    ok(
        c.run(f"{tools}/ruff check .", echo=True, warn=True),
        what="ruff check",
        fix=f"Fix what ruff names above; `{tools}/ruff check --fix .` fixes many.",
    )
    ok(
        c.run(f"{tools}/ruff format --check .", echo=True, warn=True),
        what="ruff format",
        fix=f"Run `{tools}/ruff format .`.",
    )
    ok(
        c.run(f"{tools}/hadolint --failure-threshold warning Dockerfile", echo=True, warn=True),
        what="hadolint",
        fix="Fix the Dockerfile lines it names, or ignore a rule on its line, with the reason.",
    )
    workflows = sorted(str(path) for path in Path(".github/workflows").glob("*.y*ml"))
    if workflows:
        schema = [f"{tools}/check-jsonschema", "--builtin-schema", "vendor.github-workflows"]
        ok(
            c.run(shlex.join([*schema, *workflows]), echo=True, warn=True),
            what="check-jsonschema",
            fix="Fix the workflow where it leaves GitHub's schema, as named above.",
        )
        ok(
            c.run(shlex.join([f"{tools}/zizmor", "--offline", *workflows]), echo=True, warn=True),
            what="zizmor",
            fix="Fix the findings above, or ignore one on its line, with the reason.",
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
                for path in EXPORTS}  # fmt: skip
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
        "skip_import_check": "Do not import every module in the runtime image (release says so).",
    },
)
def build(c, test=False, no_cache=False, skip_import_check=False):
    """Build the runtime image (or its test stage) for each platform, and print its size.

    On the engine's own platform, the runtime is tagged with the version from pyproject.toml
    and `latest`, the test stage `test`; on another (docker.platforms), VERSION-ARCH and
    test-ARCH. pip's CA bundle and index reach the build as BuildKit secrets. With
    registry.cache, the build starts from the cache there, and adds to it. Each runtime must
    then import every module that the lock installs, run as a hardened deployment runs it.
    """
    engine.require_buildkit(c)
    _exports_current()
    wanted = platforms.wanted(c)
    for platform in wanted:
        platforms.require_emulation(c, platform)
    revision = (_git(c, "rev-parse", "HEAD") or "unknown") + (
        "-dirty" if _git(c, "status", "--porcelain") else ""
    )
    labels = {
        "VERSION": VERSION,
        "REVISION": revision,
        "CREATED": _git(c, "log", "-1", "--format=%cI") or "unknown",
        "SOURCE": PROJECT.get("urls", {}).get("Source", "unknown"),
    }
    epoch = int(_git(c, "log", "-1", "--format=%ct") or 0)  # SOURCE_DATE_EPOCH: the commit's
    for platform in wanted:
        bootstrap.fresh(c, platform, always=False)  # asked once an hour; `inv base` asks now
        ref = _build(c, platform, "test" if test else "runtime", labels, no_cache, epoch)
        if not test and not skip_import_check:
            imports.check(c, ref, platform)


def _build(c: Context, platform: str, target: str, labels: dict, no_cache: bool, epoch: int) -> str:
    """Build TARGET for PLATFORM, through the registry's cache where there is one; return the
    image's first name. A runtime's every time is EPOCH's, so that its ID follows the source."""
    runtime = target == "runtime"
    tag = platforms.tag(c, platform, VERSION if runtime else "test")
    tags = [_image_ref(c, tag)]
    if runtime and platform == platforms.own(c):
        tags.append(_image_ref(c, "latest"))
    build_args = {
        **cross.build_args(c, platform, pythons.version(c)),
        "PYTHON_VERSION": pythons.version(c),
        "RUNTIME": c.docker.runtime,
        "BUILD_PACKAGES": c.docker.build_packages,
        "RUNTIME_PACKAGES": c.docker.runtime_packages,
        "HOST_LIBRARIES": c.docker.host_libraries,
        "STRIP": "1" if c.docker.strip else "0",
        **labels,
    }
    common = ["build", "--platform", platform]
    common += [flag for item in build_args.items() for flag in ("--build-arg", "=".join(item))]
    cache = registry.cache(c)
    if cache:  # inline cache: each image pushed there carries what rebuilds its layers
        refs = {
            stage: registry.cache_ref(c, cache, stage, platform) for stage in ("builder", target)
        }
        common += ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]
        common += [flag for ref in refs.values() for flag in ("--cache-from", ref)]
    argv = [*common, *(["--no-cache"] if no_cache else []), "--target", target]
    argv += ["--label", f"{ROLE}={target}"]
    argv += [flag for ref in tags for flag in ("--tag", ref)]
    before = engine.image_id(c, tags[0])
    log = engine.build(c, argv, keeps=tags[0])
    built = after = engine.image_id(c, tags[0])
    owned.built(c, built, *tags)  # by its ID, `clean` tells it from an image built on it
    with archive.saved(c, built or tags[0]) as image:  # saved if a step below reads it
        if runtime:
            after = reproducible.written(c, image, tags, epoch)
            owned.built(c, after, *tags)
        # What ran is new to the cache (the builder's part of it too), or it lacked it: push.
        if cache and (engine.ran(log) or engine.cache_missed(log)):
            builder = ["--target", "builder", "--label", f"{ROLE}=cache", "--tag", refs["builder"]]
            engine.build(c, [*common, *builder])
            owned.built(c, engine.image_id(c, refs["builder"]), refs["builder"])
            registry.push_cache(c, refs["builder"], refs["builder"])
            registry.push_cache(c, built or tags[0], refs[target])  # BuildKit's, with its links
        state = "unchanged: every layer was cached" if after == before else "built"
        print(f"{' and '.join(tags)} ({platform}): {state}, {engine.image_size(c, tags[0])}")
        if runtime:
            sbom.write(c, image, tags[0], sbom.path(c, tag), whole=no_cache)
            packages = provenance.build_packages(c, common, log, sbom.path(c, tag))
            provenance.write(c, sbom.path(c, tag), platform, build_args, packages)
    return tags[0]


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
    ref = _image_ref(c, platforms.tag(c, platform, VERSION))
    engine.require_image(c, ref)
    result = engine.docker(c, *_container_of(ref, platform), *argv, echo=True, warn=True)
    if result.failed:
        raise Exit(f"{ref} exited with {result.exited}", code=result.exited)


def _pinned(distribution: str) -> str:
    """The version of DISTRIBUTION that requirements.txt pins."""
    for line in Path("requirements.txt").read_text().splitlines():
        if line.startswith(f"{distribution}=="):
            return line.split("==")[1].split()[0]
    raise Exit(f"error: requirements.txt pins no {distribution}. Run `inv export`.")


@task(
    help={
        "image": "The image to check (default: the runtime image of this version).",
        "platform": "Check the image of this platform (default: the engine's own).",
    }
)
def smoke(c, image=None, platform=None):
    """Check what show-deps and say-hello print in the image."""
    engine.require(c)
    platform = platforms.one(c, platform)
    ref = image or _image_ref(c, platforms.tag(c, platform, VERSION))
    engine.require_image(c, ref)
    checks = {
        ("say-hello", "--name", "alice"): ["Hello alice!"],
        ("show-deps",): [f"polars {_pinned('polars')}", "blue 6", "red 9"],
    }
    for argv, expected in checks.items():
        result = engine.docker(c, *_container_of(ref, platform), *argv, hide=True, warn=True)
        if c.config.run.dry:  # shown, not run: there is nothing to check
            continue
        missing = [text for text in expected if text not in result.stdout]
        if result.failed or missing:
            raise Exit(
                f"error: smoke test of {ref} failed: `{shlex.join(argv)}` exited with "
                f"{result.exited} and printed {result.stdout + result.stderr!r}, not {missing}."
            )
        print(f"ok: {shlex.join(argv)} -> {result.stdout.splitlines()[-1].strip()}")


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
    ref = image or _image_ref(c, platforms.tag(c, platform, VERSION))
    engine.require_image(c, ref)
    base_image = bootstrap.base(c, platform)
    native = bootstrap.native(c, platform, base_image)
    report = security.audit(c, ref, platform, base_image, native)
    if report.error:
        raise Exit(f"error: Debian's archive cannot be reached ({report.error}). Try again.")
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
    owned.forget_removed(c)
    print(f"removed {len(containers)} containers and {len(images)} images of {NAME}")
    if build_cache:
        engine.prune_build_cache(c, yes)


# The platforms that `inv bench` measures: the engine's own, and the other one, emulated.
BENCH_PLATFORMS = ("linux/amd64", "linux/arm64")


@task(pre=[install], help={"runs": "How many starts of each command make a latency median."})
def bench(c, runs=21):
    """Measure the image against two baselines; write docs/benchmarks.md.

    Size (whole, compressed, by component), cold and incremental build times, arm64's (or
    amd64's) image and cold build, an empty engine's build from a registry cache, a second
    `inv release`, and start latency. Takes a quarter of an hour; run it on a quiet machine.
    It needs root, dockerd and docker-registry, for the empty engine and its registry.
    """
    engine.require_docker(c, "the benchmark", "its baselines are BuildKit builds on dockerd")
    engine.require_buildkit(c)
    build(c)
    argv = [str(VENV / "bin" / "python"), "bench/bench.py", "--docker", c.docker.command]
    argv += ["--base", bootstrap.base(c), "--image", _image_ref(c), "--runs", str(runs)]
    for platform in BENCH_PLATFORMS:  # the other one is built too, as `build` would
        if platform != platforms.own(c):
            platforms.require_emulation(c, platform)
            args = cross.build_args(c, platform, pythons.version(c))
            argv += ["--foreign", f"{platform}={json.dumps(args)}"]
    with secrets.build_secrets(c) as flags:
        ok(
            c.run(shlex.join([*argv, *flags]), echo=True, warn=True),
            what="the benchmark",
            fix="See its last lines above; `inv clean` removes what it left.",
        )


# --- Publish and release ------------------------------------------------------------------


@task(
    help={"allow_dirty": "Push even with uncommitted changes, though the revision tag then lies."}
)
def push(c, allow_dirty=False):
    """Push the image, pull it back by digest, and smoke-test it.

    Tags: the version, the short git revision and `latest`, under registry.url. With several
    platforms, each one's image goes first (VERSION-ARCH), and the three tags name a
    manifest list of them all; every platform is pulled back from it and smoke-tested.
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
    if _git(c, "status", "--porcelain") and not allow_dirty:
        raise Exit(
            "error: the work tree has uncommitted changes, so the revision tag would name a commit "
            "that is not what was built. Commit them, or pass --allow-dirty."
        )
    sources = {
        platform: _image_ref(c, platforms.tag(c, platform, VERSION))
        for platform in platforms.wanted(c)
    }
    for source in sources.values():
        engine.require_image(c, source)
    repository = f"{url.rstrip('/')}/{c.docker.image}"
    tags = [VERSION, _git(c, "rev-parse", "--short", "HEAD") or "unknown", "latest"]
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
        images = [f"{repository}@{digests[platform]}" for platform in sources]
        digest = registry.push_list(c, repository, tags, images)
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
    for platform in sources:
        print(f"  SBOM of {platform}: {sbom.path(c, platforms.tag(c, platform, VERSION))}")
    signing.release(c, repository, sources, digests, digest if len(sources) > 1 else None)
    return reference


@task(help={"force": "Replace the key pair that is there."})
def keygen(c, force=False):
    """Make the key pair that `push` signs with: signing.key (private) and signing.public.

    ECDSA P-256, by openssl, as cosign's are. The private key is readable by you alone; keep it
    out of git (.gitignore names cosign.key), and it never enters a build (.dockerignore lets in
    only what the image needs). Give verifiers the public key. COSIGN_PASSWORD, where set,
    encrypts the private key, as cosign's own does.
    """
    key, public = Path(c.signing.key), Path(c.signing.public)
    if key.is_file() and not force:
        print(f"{key} is there already, with {public}: nothing to do (--force replaces them)")
        return
    signing.keygen(c, key, public)
    print(f"made {key} (private: keep it, never commit it) and {public} (for verifiers)")


@task(
    positional=["ref"],
    help={
        "ref": "The image, by tag or digest: REGISTRY/team/my-project:0.1.0.",
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
    wanted = _git(c, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
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

    venv, lock, install, export, lint, test, the test stage and the runtime of each platform,
    the smoke test of each (and with --push, push). Steps whose inputs are unchanged say so
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
        "lint": lambda: lint(c),
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
    print(f"\nreleased {_image_ref(c)} ({engine.image_size(c, _image_ref(c))})")
    for name, seconds in timings.items():
        print(f"  {name:<22} {seconds:6.1f} s")
    print(f"  {'total':<22} {sum(timings.values()):6.1f} s")
    if skip_import_check:
        print("  the import check was SKIPPED (--skip-import-check): modules may not import")
    if allow_outdated:
        print("  the security check was OVERRIDDEN (--allow-outdated): see its lines above")
    changed = _git(c, "diff", "--name-only", "HEAD", "--", *COMMITTED).split()
    if changed:
        print(f"  not committed yet, and built into this image: {', '.join(changed)}. Commit them.")


def _security_gate(c: Context, allow_outdated: bool) -> None:
    """Refuse a release whose runtime holds a Debian package that the archive has fixed."""
    for platform in platforms.wanted(c):
        ref = _image_ref(c, platforms.tag(c, platform, VERSION))
        base_image = bootstrap.base(c, platform)
        native = bootstrap.native(c, platform, base_image)
        report = security.audit(c, ref, platform, base_image, native)
        if report.error:  # the freshness check warned already: no archive, no verdict
            print(f"warning: Debian's archive cannot be reached: {ref} ({platform}) is unaudited")
        elif report.behind and not allow_outdated:
            fix = "Run `inv base`, then release again (--allow-outdated overrides, and says so)."
            raise Exit("\n".join(report.lines(ref, fix)))
        else:
            for line in report.lines(ref, "Released all the same (--allow-outdated)."):
                print(line.replace("error:", "warning:", 1))
            print(
                f"{ref} ({platform}): {report.checked} Debian packages checked against the archive"
            )


# The tasks, in the order of the workflow.
ns = Collection(venv, lock, install, poetry_, test, export, lint,
                base, explore, build, run, smoke, audit, clean, bench,
                keygen, push, verify, release)  # fmt: skip
ns.configure(
    {
        # The Python of everything: .venv, requires-python, the base image, the image.
        "python": {"version": "3.13"},
        "poetry": {
            "requirements": (
                "poetry==2.5.1 poetry-plugin-export==1.10.1 poetry-plugin-pypi-mirror==0.6.5"
            ),
            "groups": "test,dev",
        },
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
        "signing": {"key": "cosign.key", "public": "cosign.pub"},
    }
)
