"""The app's images: their names, what a build of one is told, and the build with what follows.

A build is told, as build arguments, what the app's pyproject.toml says (tooling/project.py)
and what the settings add: where its wheel is built, its script, its packages, its tests and
the Debian packages that each stage wants (with those that its modules were found to open by
name, opened.py), the labels of its commit. Then the runtime is
written again with the commit's time (reproducible.py), the registry's cache is fed where
there is one (registry.py), and its SBOM and provenance are written (sbom.py, provenance.py).
"""

import concurrent.futures
import json
import shlex
import time
from collections.abc import Callable
from typing import Any

from invoke import Context

from shipyard.tooling import (
    archive,
    cross,
    engine,
    opened,
    owned,
    platforms,
    podman,
    provenance,
    pythons,
    registry,
    reproducible,
    sbom,
    suite,
)
from shipyard.tooling.commands import probe
from shipyard.tooling.project import NAME, ROLE, VERSION, app

_said: set[str] = set()  # the detection, said once a process


def ref(c: Context, tag: str = VERSION) -> str:
    """The image's name with TAG: docker.image, which is the app's name by default."""
    return f"{c.docker.image}:{tag}"


def git(c: Context, *args: str) -> str:
    return probe(c, shlex.join(["git", *args])).stdout.strip()


def commit(c: Context) -> tuple[str, str, int]:
    """HEAD's hash, its time as ISO 8601, and as SOURCE_DATE_EPOCH (which every time in the
    runtime takes): asked of git once."""
    said = git(c, "log", "-1", "--format=%H %cI %ct").split()
    if len(said) != 3:  # no commit yet
        return "unknown", "unknown", 0
    return said[0], said[1], int(said[2])


def labels(c: Context) -> dict[str, str]:
    """The OCI labels' build arguments: the app's name and version, and the commit."""
    head, created, _ = commit(c)
    dirty = "-dirty" if git(c, "status", "--porcelain") else ""
    return {"TITLE": NAME, "VERSION": VERSION, "REVISION": head + dirty, "CREATED": created,
            "SOURCE": app().source}  # fmt: skip


def arguments(c: Context, platform: str) -> dict[str, str]:
    """The build arguments of PLATFORM's image, but for the labels: the Dockerfile's places,
    the settings, and what the app is. An app with a build script builds its wheel on the
    target, whose the wheel then is, and the distroless tree serves what that wheel links."""
    found = app()
    script = found.script(c.app.script)
    if found.describe(script) not in _said:
        _said.add(found.describe(script))
        print(f"app: {found.describe(script)}")
    compiled = bool(found.build_script)
    placed = cross.build_args(c, platform, pythons.version(c))
    by_name = opened.kept(platform, placed["BASE_IMAGE"])
    return {
        **placed,
        "PYTHON_VERSION": pythons.version(c),
        "RUNTIME": c.docker.runtime,
        "BUILD_PACKAGES": c.docker.build_packages,
        "RUNTIME_PACKAGES": c.docker.runtime_packages,
        "FOUND_PACKAGES": opened.packages(c.docker.runtime_packages, by_name),
        "TEST_PACKAGES": c.docker.test_packages,
        "HOST_LIBRARIES": c.docker.host_libraries,
        "STRIP": "1" if c.docker.strip else "0",
        "WHEEL_STAGE": "sdists" if compiled else "builder",
        "ROOTFS_VENV": "app" if compiled else "builder",
        "BUILD_REQUIRES": json.dumps(found.requires),
        "SCRIPT": script or "",
        "IMPORTS": " ".join(found.packages),
        "TEST_ARGS": json.dumps(suite.arguments(c, everything=True, selection=[], image=True)),
    }


def build(
    c: Context, platform: str, target: str, no_cache: bool, check: Callable[[str], Any] | None
) -> tuple[str, Any]:
    """Build TARGET for PLATFORM, through the registry's cache where there is one; return the
    image's first name, with what CHECK found. A runtime's every time is the commit's, so that
    its ID follows the
    source; its SBOM and provenance are written beside it, while CHECK (the import gate) runs
    on it at the same time: what CHECK found is returned with the name."""
    runtime = target == "runtime"
    tag = platforms.tag(c, platform, VERSION if runtime else "test")
    tags = [ref(c, tag)]
    if runtime and platform == platforms.own(c):
        tags.append(ref(c, "latest"))
    build_args = {**arguments(c, platform), **labels(c)}
    common = ["build", "--platform", platform]
    common += [flag for item in build_args.items() for flag in ("--build-arg", "=".join(item))]
    cache = registry.cache(c)
    stages = []  # the stages pushed to the cache beside the target, which does not hold them
    if cache:  # inline cache: each image pushed there carries what rebuilds its layers
        # The app's wheel (its build backend installed), and the venv's builder, which another
        # engine would otherwise run. BuildKit follows a chain of steps in the first cache
        # image that holds its start: where the wheel is built on the builder, the builder's
        # own image would hide the wheel's steps from a fresh engine, and is left out.
        stages = ["wheel"] if build_args["WHEEL_STAGE"] == "builder" else ["wheel", "builder"]
        refs = {stage: registry.cache_ref(c, cache, stage, platform) for stage in [*stages, target]}
        common += ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]
        common += [flag for name in refs.values() for flag in ("--cache-from", name)]
    argv = [*common, *(["--no-cache"] if no_cache else []), "--target", target]
    argv += ["--label", f"{ROLE}={target}"]
    argv += [flag for name in tags for flag in ("--tag", name)]
    before = engine.image_id(c, tags[0])
    start = time.monotonic()
    log = engine.build(c, argv, keeps=tags[0])
    took = {"the engine": time.monotonic() - start}
    if podman.wrote(log):  # its build cache: an image a step, which `clean` knows as ours
        owned.cached(c, podman.committed(log))
    built = after = engine.image_id(c, tags[0])
    owned.built(c, built, *tags)  # by its ID, `clean` tells it from an image built on it
    checked = None  # what CHECK found: a runtime's alone is checked
    with archive.saved(c, built or tags[0]) as image:  # saved if a step below reads it
        if runtime:
            start = time.monotonic()
            base = build_args["BASE_IMAGE"]
            after = reproducible.written(c, image, tags, commit(c)[2], base)
            owned.built(c, after, *tags)
            took["written again"] = time.monotonic() - start
        # What ran is new to the cache (the builder's part of it too), or it lacked it: push.
        if cache and (engine.ran(log) or engine.cache_missed(log)):
            for stage in stages:
                own = ["--target", stage, "--label", f"{ROLE}=cache", "--tag", refs[stage]]
                engine.build(c, [*common, *own])
                owned.built(c, engine.image_id(c, refs[stage]), refs[stage])
                registry.push_cache(c, refs[stage], refs[stage])
            registry.push_cache(c, built or tags[0], refs[target])  # BuildKit's, with its links
        state = "unchanged: every layer was cached" if after == before else "built"
        spent = "; ".join(f"{name} {seconds:.1f} s" for name, seconds in took.items())
        print(
            f"{' and '.join(tags)} ({platform}): {state}, {engine.image_size(c, tags[0])} ({spent})"
        )
        if runtime:
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as beside:
                checking = beside.submit(check, tags[0]) if check else None
                sbom.write(c, image, tags[0], sbom.path(c, tag), whole=no_cache)
                packages = provenance.build_packages(c, common, log, sbom.path(c, tag))
                # The setting is the parameter; what was found by name is the builder's, and why.
                found = opened.kept(platform, build_args["BASE_IMAGE"])
                provenance.write(c, sbom.path(c, tag), platform, build_args, packages, found)
            checked = checking.result() if checking else None
    return tags[0], checked
