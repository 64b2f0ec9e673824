"""Registries: where the image is pushed (a manifest list, for several platforms), and the build
cache that a team shares through one.

Every push and pull that fails ends in one line naming the registry and the likely fix. The
cache is a help, never a need: a cache registry that does not answer costs one warning line
and a slower, correct build.
"""

import ipaddress
import json
import os
import re
import shlex
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from invoke import Context, Exit, Result

from shipyard.tooling import engine, owned, platforms, podman, pythons
from shipyard.tooling.project import NAME

_answers: dict[str, bool] = {}  # each cache registry is asked once a process


def require_ok(c: Context, result: Result) -> None:
    """End with one line naming registry.url and the likely fix, when a push or pull failed."""
    if result.ok:
        return
    registry, output = c.registry.url, result.stdout + result.stderr
    if re.search(r"unauthorized|authentication required|no basic auth|denied", output, re.I):
        cli = Path(shlex.split(c.docker.command)[0]).name  # docker, or podman
        fix = f"Log in first: `{cli} login {host(registry)}` (or your credential helper)."
    else:
        fix = f"Check that {registry} is the right address and that it is up."
    raise Exit(
        f"error: the registry {registry} refused or did not answer. {fix}", code=result.exited
    )


def push(c: Context, source: str, remote: str) -> str:
    """Tag SOURCE as REMOTE and push it to registry.url; return the digest the registry gave."""
    engine.docker(c, "tag", source, remote, echo=True)
    owned.built(c, engine.image_id(c, remote), remote)  # a name the tasks gave: `clean`'s
    with tempfile.TemporaryDirectory() as folder:
        written = Path(folder) / "digest"  # where Podman writes it; Docker prints it
        told = ["--digestfile", str(written)] if podman.chosen(c) else []
        pushed = engine.docker(c, "push", *tls(c, remote), *told, remote, echo=True, warn=True)
        require_ok(c, pushed)
        found = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed.stdout)
        if written.is_file():
            return written.read_text().strip()
    return found[1] if found else "unknown"  # none under --dry


def pull(c: Context, platform: str, reference: str) -> None:
    """Pull REFERENCE's PLATFORM image from registry.url, or end with one line."""
    pulled = engine.docker(
        c, "pull", *tls(c, reference), "--platform", platform, reference, echo=True, warn=True
    )
    require_ok(c, pulled)


def tls(c: Context, reference: str) -> list[str]:
    """Podman's flag to reach REFERENCE's registry over plain HTTP where Docker's would
    (loopback, and insecure-registries): Podman asks for TLS of every registry, unless told."""
    return ["--tls-verify=false"] if podman.chosen(c) and insecure_registry(c, reference) else []


def push_list(c: Context, repository: str, tags: list[str], images: list[str]) -> str:
    """Push a manifest list of IMAGES (pushed already, by digest) under each of TAGS; return
    the list's digest."""
    if podman.chosen(c):
        return _push_list_podman(c, repository, tags, images)
    # The manifest commands reach a plain-HTTP registry only when told, unlike push and pull.
    insecure = ["--insecure"] if insecure_registry(c, repository) else []
    for tag in tags:
        listed = f"{repository}:{tag}"
        created = engine.docker(c, "manifest", "create", *insecure, "--amend", listed, *images,
                                echo=True, hide="stdout", warn=True)  # fmt: skip
        require_ok(c, created)
        pushed = engine.docker(
            c, "manifest", "push", *insecure, "--purge", listed, echo=True, warn=True
        )
        require_ok(c, pushed)
    return pushed.stdout.strip().splitlines()[-1] if pushed.stdout.strip() else "unknown"


def _push_list_podman(c: Context, repository: str, tags: list[str], images: list[str]) -> str:
    """push_list() with Podman's manifest commands: the list is made here, of the images in
    the registry, pushed under each tag, and removed here after."""
    listed, flags = f"{NAME}-list:{os.getpid()}", tls(c, repository)
    engine.docker(c, "manifest", "create", listed, echo=True, hide="stdout")
    try:
        for image in images:
            added = engine.docker(c, "manifest", "add", *flags, listed, f"docker://{image}",
                                  echo=True, hide="stdout", warn=True)  # fmt: skip
            require_ok(c, added)
        with tempfile.TemporaryDirectory() as folder:
            written = Path(folder) / "digest"
            for tag in tags:
                pushed = engine.docker(
                    c, "manifest", "push", "--all", *flags, "--digestfile", str(written),
                    listed, f"docker://{repository}:{tag}", echo=True, warn=True,
                )  # fmt: skip
                require_ok(c, pushed)
            return written.read_text().strip() if written.is_file() else "unknown"
    finally:
        engine.docker(c, "manifest", "rm", listed, hide=True, warn=True)


def has(c: Context, reference: str) -> bool:
    """Whether the registry holds REFERENCE (its manifest is read, nothing is pulled)."""
    insecure = ["--insecure"] if insecure_registry(c, reference) else []
    return engine.probe(c, "manifest", "inspect", *insecure, reference).ok


def host(reference: str) -> str:
    """The registry's host (and port) in REFERENCE: 127.0.0.1:5000/team/x -> 127.0.0.1:5000."""
    return reference.split("/")[0]


def insecure_registry(c: Context, reference: str) -> bool:
    """Whether the engine reaches REFERENCE's registry over plain HTTP, as it does loopback's
    (127.0.0.0/8) and those named in its insecure-registries."""
    answer = engine.probe(c, "info", "--format", "{{json .RegistryConfig}}")
    config = json.loads(answer.stdout or "{}") if answer.ok else {}
    name = host(reference)
    if not (config.get("IndexConfigs", {}).get(name, {}).get("Secure", True)):
        return True
    try:
        address = ipaddress.ip_address(socket.gethostbyname(name.rpartition(":")[0] or name))
    except (OSError, ValueError):
        return False
    # Where no engine answers (`inv verify` needs none): Docker's default, loopback.
    networks = config.get("InsecureRegistryCIDRs", ["127.0.0.0/8"]) or []
    return any(address in ipaddress.ip_network(network) for network in networks)


def cache(c: Context) -> str | None:
    """registry.cache, where it answers; else None, said once as a warning. Podman's builds
    cannot use it: it is BuildKit's inline cache."""
    repository = (c.registry.cache or "").rstrip("/")
    if not repository or c.config.run.dry:
        return repository or None
    if repository not in _answers and podman.chosen(c):
        print(f"warning: registry.cache ({repository}) is BuildKit's; Podman builds without it")
        _answers[repository] = False
    if repository not in _answers:
        scheme = "http" if insecure_registry(c, repository) else "https"
        url = f"{scheme}://{host(repository)}/v2/"  # the registry API's root: 200, or 401
        try:
            with urllib.request.urlopen(url, timeout=3):  # noqa: S310 # http(s), made above
                _answers[repository] = True
        except urllib.error.HTTPError as error:
            _answers[repository] = error.code == 401  # up, and asking for credentials
        except OSError as error:
            print(f"warning: the build cache {repository} does not answer ({error}): no cache")
            _answers[repository] = False
    return repository if _answers[repository] else None


def cache_ref(c: Context, cache: str, stage: str, platform: str) -> str:
    """STAGE's cache image for PLATFORM: CACHE:builder-3.13-amd64, CACHE:runtime-distroless-..."""
    kind = f"{stage}-{c.docker.runtime}" if stage == "runtime" else stage
    return f"{cache}:{kind}-{pythons.version(c)}-{platforms.suffix(platform)}"


def push_cache(c: Context, local: str, reference: str) -> bool:
    """Push the image LOCAL to the cache as REFERENCE; whether it went. A failure is a warning,
    said once: after it, this process pushes nothing more to that cache."""
    repository = reference.rpartition(":")[0]
    if not _answers.get(repository, True):
        return False
    if local != reference:
        engine.docker(c, "tag", local, reference, echo=True)
        owned.built(c, engine.image_id(c, reference), reference)
    pushed = engine.docker(c, "push", reference, echo=True, hide=True, warn=True)
    if not pushed.ok:
        reason = (pushed.stderr.strip().splitlines() or ["no answer"])[-1]
        print(
            f"warning: the build cache {repository} took nothing ({reason}); the build is as good"
        )
        _answers[repository] = False
    return pushed.ok
