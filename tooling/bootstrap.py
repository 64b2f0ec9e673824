"""The base image: the configured one, pulled, or else bootstrapped from Debian's packages."""

import os
import shlex
import shutil
import tempfile
from pathlib import Path

from invoke import Context, Exit

from tooling import engine, pythons
from tooling.commands import ok
from tooling.project import NAME, ROLE

# A Python slim image, from Debian packages: what the official python:*-slim images install.
DEBOOTSTRAP = [
    "debootstrap",
    "--variant=minbase",
    "--include=python3,python3-venv,ca-certificates,netbase,tzdata",
]
# What a slim image leaves out: documentation, translations, apt's lists and caches.
NOT_IN_SLIM = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
               "var/lib/apt/lists", "var/cache/apt"]  # fmt: skip
# The root becomes an image by a build, which (unlike `docker import`) records its platform.
DOCKERFILE = """\
FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8
CMD ["python3"]
"""


def base(c: Context, force: bool = False) -> str:
    """The base image to build on: the configured one, or one bootstrapped from Debian."""
    wanted = pythons.base(c)
    if not force and engine.image_id(c, wanted):
        return wanted
    local = f"{NAME}-base:{pythons.DEBIAN.get(pythons.version(c), 'none')}"
    if not force and engine.image_id(c, local):
        print(f"{wanted} is not here: using {local}, bootstrapped from Debian packages")
        return local
    if not force and engine.docker(c, "pull", wanted, echo=True, warn=True).ok:
        return wanted
    suite = pythons.suite(c, wanted)  # or a clear line: no Debian release has this Python
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
    print(f"cannot pull {wanted}: bootstrapping {local} from Debian {suite} (about a minute)")
    bootstrap(c, local, suite)
    return local


def bootstrap(c: Context, tag: str, suite: str) -> None:
    """Make the image TAG from Debian SUITE, labelled as the project's own."""
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-base-") as folder:
        root, context = Path(folder) / "root", Path(folder) / "context"
        ok(
            c.run(
                shlex.join([*DEBOOTSTRAP, suite, str(root)]), echo=True, hide="stdout", warn=True
            ),
            what="debootstrap",
            fix="Check that Debian's package archive can be reached, then run `inv base`.",
        )
        c.run(shlex.join(["rm", "-rf", *(f"{root}/{path}" for path in NOT_IN_SLIM)]), echo=True)
        if not c.config.run.dry:
            context.mkdir()
            (context / "Dockerfile").write_text(DOCKERFILE)
        c.run(shlex.join(["tar", "-C", str(root), "-cf", f"{context}/rootfs.tar", "."]), echo=True)
        built = engine.docker(
            c, "build", "--label", f"{ROLE}=base", "--tag", tag, str(context),
            env={"DOCKER_BUILDKIT": "1"}, echo=True, warn=True,
        )  # fmt: skip
        ok(built, what=f"making {tag}", fix="See the build's last lines above.")
