"""Platforms: which ones to build (docker.platforms), the tag of each, and emulation for those
that the engine's CPU cannot run itself."""

import os
import re
from pathlib import Path

from invoke import Context, Exit

from shipyard.tooling import engine

# Debian's name for each architecture that Docker names otherwise (debootstrap --arch).
DEBIAN_ARCH = {"arm/v7": "armhf", "arm/v6": "armel", "386": "i386", "ppc64le": "ppc64el"}
# The name of each architecture in the kernel's binfmt_misc, where qemu registers itself.
QEMU_ARCH = {"arm64": "aarch64", "amd64": "x86_64", "arm": "arm", "386": "i386",
             "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}  # fmt: skip
# What the engine's CPU runs without emulation, beyond its own architecture.
NATIVE_TOO = {"amd64": {"386"}, "arm64": {"arm"}}
BINFMT = Path("/proc/sys/fs/binfmt_misc")
PLATFORM = re.compile(r"linux/[a-z0-9]+(/v\d)?")  # OS/ARCH[/VARIANT], as docker names one
_engine_platform: dict[str, str] = {}  # asked once a process


def own(c: Context) -> str:
    """The engine's own platform, such as linux/amd64."""
    if "platform" not in _engine_platform:
        _engine_platform["platform"] = engine.own_platform(c) or "linux/amd64"
    return _engine_platform["platform"]


def wanted(c: Context) -> list[str]:
    """docker.platforms, checked; where it is unset, the engine's own platform alone."""
    listed = [item.strip() for item in (c.docker.platforms or "").split(",") if item.strip()]
    for platform in listed:
        if not PLATFORM.fullmatch(platform):
            raise Exit(
                f"error: docker.platforms names {platform!r}, not a platform such as linux/arm64. "
                "Fix INVOKE_DOCKER_PLATFORMS (a comma-separated list) or invoke.yaml."
            )
    return list(dict.fromkeys(listed)) or [own(c)]


def one(c: Context, platform: str | None) -> str:
    """The platform that a task's --platform names, checked; by default the engine's own."""
    if platform and not PLATFORM.fullmatch(platform):
        raise Exit(f"error: --platform {platform!r} is not a platform such as linux/arm64.")
    return platform or own(c)


def arch(platform: str) -> str:
    """The architecture of PLATFORM, with its variant: linux/arm/v7 -> arm/v7."""
    return platform.partition("/")[2]


def suffix(platform: str) -> str:
    """How PLATFORM's images and files are named apart: linux/arm64 -> arm64."""
    return arch(platform).replace("/", "-")


def debian(platform: str) -> str:
    """Debian's name for PLATFORM's architecture: linux/arm64 -> arm64, linux/arm/v7 -> armhf."""
    return DEBIAN_ARCH.get(arch(platform), arch(platform))


def tag(c: Context, platform: str, name: str) -> str:
    """The tag NAME of an image for PLATFORM: NAME on the engine's own, NAME-ARCH on others."""
    return name if platform == own(c) else f"{name}-{suffix(platform)}"


def require_emulation(c: Context, platform: str) -> None:
    """End with one clear line when PLATFORM needs an emulator that is not registered here.

    Only a local engine shares this machine's kernel, and so its binfmt_misc: for a remote
    one, the build itself tells.
    """
    mine = arch(own(c))
    target = arch(platform).partition("/")[0]
    if target == mine or target in NATIVE_TOO.get(mine, ()):
        return
    if os.environ.get("DOCKER_HOST", "unix://").startswith("unix://") and BINFMT.is_dir():
        entry = BINFMT / f"qemu-{QEMU_ARCH.get(target, target)}"
        if not (entry.is_file() and entry.read_text().startswith("enabled")):
            raise Exit(
                f"error: {platform} needs an emulator on this {own(c)} machine, and none is "
                "registered. Register one (mount binfmt_misc where it is not, then apt-get "
                "install qemu-user-static binfmt-support), or leave it out of docker.platforms "
                "(INVOKE_DOCKER_PLATFORMS)."
            )
