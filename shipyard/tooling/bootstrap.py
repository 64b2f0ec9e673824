"""The base image of each platform: the configured one, pulled, or else bootstrapped from the
Debian release that ships python.version, and shared through the build cache's registry; and
kept current with Debian's security and point updates."""

import os
import shlex
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from invoke import Context, Exit

from shipyard.tooling import engine, owned, platforms, pythons, registry, security, stamps
from shipyard.tooling.commands import ok
from shipyard.tooling.project import NAME, ROLE

# A Python slim image, from Debian packages: what the official python:*-slim images install.
PACKAGES = "--include=python3,python3-venv,ca-certificates,netbase,tzdata"
DEBOOTSTRAP = ["debootstrap", "--variant=minbase", PACKAGES]
# What a slim image leaves out: documentation, translations, apt's lists and caches.
NOT_IN_SLIM = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
               "var/lib/apt/lists", "var/cache/apt"]  # fmt: skip
# The same root, made by anyone (in a user namespace of its own), straight into a tar.
MMDEBSTRAP = [
    "mmdebstrap", "--mode=unshare", "--variant=minbase", PACKAGES,
    f"--customize-hook=cd \"$1\" && rm -rf {' '.join(NOT_IN_SLIM)}",
]  # fmt: skip
# The state of Debian's archive that a bootstrapped base is current with (docker/outdated.py).
STATE = f"{NAME}.debian-state"
# What an engine puts in every container, Docker's and Podman's, which the base never held.
ENGINE_FILES = {".dockerenv", "run/.containerenv"}
_said: set[str] = set()  # what this process has said of the bases, said once
# The root becomes an image by a build, which (unlike `docker import`) records its platform.
DOCKERFILE = """\
FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8
CMD ["python3"]
"""


def base(c: Context, platform: str | None = None, force: bool = False) -> str:
    """The base image to build PLATFORM on (default: the engine's own platform)."""
    platform = platform or platforms.own(c)
    wanted = pythons.base(c)
    if not force and engine.platform_of(c, wanted) == platform:
        return wanted
    release = pythons.DEBIAN.get(pythons.version(c), "none")
    local = _bootstrapped(c, platform)
    cache = registry.cache(c)
    shared = f"{cache}:base-{release}-{platforms.suffix(platform)}" if cache else None
    if not force and engine.image_id(c, local):
        _once(f"{wanted} is not here for {platform}: using {local}, bootstrapped from Debian")
        _share(c, local, shared)
        return local
    if not force and shared and registry.has(c, shared):
        # Named as the cache has it: BuildKit reads its config there, and its layers only if a
        # step must run on it (none, where the cache holds the build: nothing to download).
        _once(f"{wanted} is not here for {platform}: using {shared}, from the build cache")
        return shared
    if (
        not force
        and engine.docker(c, "pull", "--platform", platform, wanted, echo=True, warn=True).ok
    ):
        return wanted
    suite = pythons.suite(c, wanted)  # or a clear line: no Debian release has this Python
    if not c.docker.bootstrap:
        raise Exit(
            f"error: cannot pull {wanted}, and bootstrapping is off. Make {wanted} available "
            "(docker pull, docker load), or set docker.bootstrap (INVOKE_DOCKER_BOOTSTRAP=1)."
        )
    if not _bootstrapper():
        raise Exit(
            f"error: cannot pull {wanted}, and bootstrapping {local} needs mmdebstrap "
            "(apt-get install mmdebstrap), or debootstrap and root. Make the base available, "
            "or install mmdebstrap."
        )
    platforms.require_emulation(c, platform)  # debootstrap runs the target's own programs
    took = "a few minutes, under emulation" if platform != platforms.own(c) else "half a minute"
    print(f"cannot pull {wanted}: bootstrapping {local} from Debian {suite} ({took})")
    bootstrap(c, local, suite, platform)
    _share(c, local, shared)
    return local


def _bootstrapped(c: Context, platform: str) -> str:
    """The name of the base that is bootstrapped here for PLATFORM."""
    release = pythons.DEBIAN.get(pythons.version(c), "none")
    return f"{NAME}-base:{release}-{platforms.suffix(platform)}"


def native(c: Context, platform: str, used: str) -> str | None:
    """Where PLATFORM's base (USED, what base() gave) was bootstrapped here, the engine's own
    platform's, when it is here too: of the same Debian release, it asks the archive of
    PLATFORM's packages without emulation. None otherwise (a pulled base may be of another
    release than ours)."""
    own = platforms.own(c)
    ours = _bootstrapped(c, own)
    if platform == own or used == pythons.base(c) or engine.platform_of(c, ours) != own:
        return None
    return ours


def _once(line: str) -> None:
    """Print LINE, unless this process has said it: the base is asked for at every step."""
    if line not in _said:
        _said.add(line)
        print(line)


def _share(c: Context, local: str, shared: str | None) -> None:
    """Push the bootstrapped base LOCAL to the build cache as SHARED, once: a teammate's engine,
    or CI's, then builds on this very base, and so finds its layers in the cache."""
    if not shared:
        return
    step, identity = f"shared-{shared.replace('/', '_')}", engine.image_id(c, local) or ""
    if not stamps.done(step, identity) and registry.push_cache(c, local, shared):
        stamps.record(c, step, identity)


def bootstrap(c: Context, tag: str, suite: str, platform: str) -> None:
    """Make the image TAG for PLATFORM from Debian SUITE, labelled as the project's own, with
    the security and point updates that debootstrap's one suite lacks."""
    arch, tool = f"--arch={platforms.debian(platform)}", _bootstrapper()
    fix = "Fix what it says, then run `inv base` again."
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-base-") as folder:
        root, rootfs = Path(folder) / "root", Path(folder) / "rootfs.tar"
        if tool == "mmdebstrap":  # in a user namespace of its own: no root needed
            argv = [*MMDEBSTRAP, arch, suite, str(rootfs)]
            ok(c.run(shlex.join(argv), echo=True, hide="both", warn=True), what=tool, fix=fix)
        else:
            argv = [*DEBOOTSTRAP, arch, suite, str(root)]
            ok(c.run(shlex.join(argv), echo=True, hide="stdout", warn=True), what=tool, fix=fix)
            c.run(shlex.join(["rm", "-rf", *(f"{root}/{path}" for path in NOT_IN_SLIM)]), echo=True)
            c.run(shlex.join(["tar", "-C", str(root), "-cf", str(rootfs), "."]), echo=True)
        _image(c, tag, platform, rootfs, Path(folder) / "context")
    _upgrade(c, tag, platform)


def _bootstrapper() -> str | None:
    """What makes a Debian root here: mmdebstrap, as anyone (and in a quarter of debootstrap's
    time); else debootstrap, as root. One tool for every engine: the two write dpkg's records
    apart (a package's priority, from its own control file or from the archive's index)."""
    if shutil.which("mmdebstrap"):
        return "mmdebstrap"
    return "debootstrap" if shutil.which("debootstrap") and os.geteuid() == 0 else None


def _image(
    c: Context, tag: str, platform: str, rootfs: Path, context: Path, state: str = ""
) -> None:
    """Make the image TAG for PLATFORM of the root filesystem in the tar ROOTFS, in one layer,
    labelled with the STATE of Debian's archive that it is current with."""
    if rootfs.is_file():  # not under --dry
        context.mkdir()
        (context / "Dockerfile").write_text(DOCKERFILE)
        rootfs.rename(context / "rootfs.tar")
    labels = ["--label", f"{ROLE}=base", "--label", f"{STATE}={state}"]
    built = engine.docker(
        c, "build", "--platform", platform, *labels, "--tag", tag, str(context),
        env={"DOCKER_BUILDKIT": "1"}, echo=True, warn=True,
    )  # fmt: skip
    ok(built, what=f"making {tag}", fix="See the build's last lines above.")
    owned.built(c, engine.image_id(c, tag), tag)


def fresh(c: Context, platform: str, always: bool = True) -> None:
    """Bring PLATFORM's base up to date, cheaply: a base pulled from a registry is pulled again
    when its tag moved; one bootstrapped here is compared with Debian's archive (its release,
    -updates and -security suites), and made again, upgraded, where a package is behind, or
    where Debian has published since it was made: the packages that the build installs on it
    (libgomp1, the runtime packages) then come again, with their fixes. ALWAYS false asks at
    most once an hour. Unreachable, it is kept as it is, with one warning line."""
    if not c.docker.refresh_base:
        return
    tag = base(c, platform)
    step, asked = f"fresh-{tag.replace('/', '_')}", time.strftime("%Y-%m-%d %H")
    if not always and stamps.done(step, f"{engine.image_id(c, tag)} {asked}"):
        return
    if tag == pythons.base(c):
        _pull_again(c, tag, platform)
    elif tag.startswith(f"{NAME}-base:"):  # bootstrapped here (one from the cache is its maker's)
        _upgrade_if_behind(c, tag, platform)
    stamps.record(c, step, f"{engine.image_id(c, tag)} {asked}")


def _pull_again(c: Context, tag: str, platform: str) -> None:
    pulled = engine.docker(c, "pull", "--platform", platform, tag, hide=True, warn=True)
    if pulled.failed:
        print(f"warning: {tag}'s registry cannot be reached: the one here is kept, unchecked")
    elif "Downloaded newer image" in pulled.stdout:
        print(f"{tag} moved in its registry: pulled again")


def _upgrade_if_behind(c: Context, tag: str, platform: str) -> None:
    report = security.outdated(c, tag, platform, native=native(c, platform, tag), role="upgrade")
    if report.error:
        print(f"warning: {report.error}: {tag} is kept, unchecked")
        return
    made = engine.probe(
        c, "image", "inspect", "--format", f'{{{{index .Config.Labels "{STATE}"}}}}', tag
    )
    if report.behind:
        moved = ", ".join(f"{item['package']} {item['version']} -> {item['fixed']}"
                          for item in report.behind)  # fmt: skip
        print(f"{tag} is behind Debian's archive: {moved}. Upgrading it")
    elif report.state and report.state != made.stdout.strip():
        print(f"{tag} is current, and Debian has published since it was made: making it again")
    else:
        print(f"{tag} holds every fix in Debian's archive (asked in {report.seconds:.1f} s)")
        return
    _upgrade(c, tag, platform)


def _upgrade(c: Context, tag: str, platform: str) -> None:
    """Upgrade what the base TAG holds to Debian's current versions, in a container, and make
    TAG again of the result: one layer still, as a bootstrapped base is, however often."""
    start = time.monotonic()
    container = f"{NAME}-base-upgrade-{os.getpid()}"
    # Its own role, which no image has (a container inherits its image's labels, and the base
    # is labelled base): `clean` spares it while it works, and removes it, with --base, after.
    labelled = ["--label", f"{ROLE}=upgrade"]
    upgrade = ["run", "--name", container, "--platform", platform, *labelled, tag]
    ran = engine.docker(c, *upgrade, "python3", "-c", security.SCRIPT.read_text(), "--upgrade",
                        hide=True, warn=True)  # fmt: skip
    state = security.read(ran.stdout).state or ""
    try:
        ok(ran, what=f"upgrading {tag}", fix="Fix what it says, then run `inv base` again.")
        with tempfile.TemporaryDirectory(prefix=f"{NAME}-base-") as folder:
            exported = Path(folder) / "exported.tar"
            engine.docker(c, "export", "--output", str(exported), container, echo=True)
            rootfs = _without_engine_files(exported)
            _image(c, tag, platform, rootfs, Path(folder) / "context", state)
    finally:
        engine.remove_containers(c, container, hide=True, warn=True)
    print(f"{tag}: upgraded to Debian's current versions in {time.monotonic() - start:.0f} s")


def _without_engine_files(exported: Path) -> Path:
    """A copy of the container's filesystem EXPORTED without what the engine put there."""
    kept = exported.with_name("rootfs.tar")
    if exported.is_file():
        with tarfile.open(exported) as source, tarfile.open(kept, "w") as target:
            for member in source:
                if member.name.removeprefix("./") not in ENGINE_FILES:
                    target.addfile(member, source.extractfile(member) if member.isfile() else None)
    return kept
