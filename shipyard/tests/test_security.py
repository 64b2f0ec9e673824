"""Debian's security fixes reach the image: a release refuses a runtime that lacks one, and
`inv base` brings the base up to date; an archive that cannot be reached costs one warning.

The base is made stale on purpose, under its own tag: a package that the runtime carries is
taken back to the version of the release's main suite, where -security or -updates has a
newer one. The test puts the base it found back when it ends.
"""

import os

import pytest
from support import VERSION, context, docker, image_id, inv

from shipyard.tooling import bootstrap, platforms, security

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Packages that every runtime carries; the first one that Debian has fixed since the release
# is taken back to the release's own version.
CARRIED = "libzstd1 libc6 libssl3t64 zlib1g liblzma5 libsqlite3-0 libexpat1 libffi8 tzdata"
STALE = """\
FROM {base}
RUN set -eu; apt-get update -qq; \\
    for package in {carried}; do \\
        release=$(apt-cache madison "$package" \\
            | awk -F' [|] ' '$3 ~ / {suite}\\/main / {{print $2}}'); \\
        installed=$(dpkg-query --show --showformat='${{Version}}' "$package"); \\
        if [ -n "$release" ] && [ "$release" != "$installed" ]; then \\
            apt-get install -y -qq --allow-downgrades "$package=$release" >/dev/null; \\
            echo "$package $release" > /stale; break; \\
        fi; \\
    done; \\
    rm -rf /var/lib/apt/lists/*; test -s /stale
"""


def build(dockerfile: str, tag: str) -> None:
    built = docker("build", "--tag", tag, "-", input=dockerfile,
                   env={**os.environ, "DOCKER_BUILDKIT": "1"}, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]


def test_a_stale_base_makes_the_release_refuse_and_inv_base_mends_it(project):
    base = bootstrap.base(context())
    original = image_id(base)
    suite = base.partition(":")[2].rpartition("-")[0]  # my-project-base:trixie-amd64 -> trixie
    name = f"my-project-stale-{os.getpid()}"
    env = {"INVOKE_DOCKER_IMAGE": name}
    named = f"{name}-base:original"  # a name to build FROM: BuildKit takes no ID there
    docker("tag", original, named)
    stale = unreachable = None
    try:
        build(STALE.format(base=named, suite=suite, carried=CARRIED), base)
        taken_back = docker("run", "--rm", base, "cat", "/stale").stdout.split()
        package, version = taken_back
        # Kept as it is (docker.refresh_base=false, as to reproduce an old build): refused.
        kept = {**env, "INVOKE_DOCKER_REFRESH_BASE": "0"}
        refused = inv("release", cwd=project, env=kept, timeout=3600)
        assert refused.returncode == 1, refused.stdout[-3000:] + refused.stderr[-3000:]
        [line] = refused.stderr.strip().splitlines()[-1:]
        assert line.startswith(f"error: {name}:{VERSION} holds {package} {version}, and Debian's")
        assert "Run `inv base`" in line
        # The archive cannot be reached: one warning line, and the base is kept.
        stale = image_id(base)
        build(f"FROM {base}\nRUN echo 'deb http://127.0.0.1:9/debian {suite} main' "
              "> /etc/apt/sources.list\n", base)  # fmt: skip
        unreachable = image_id(base)
        offline = inv("base", cwd=project)
        assert offline.returncode == 0, offline.stderr
        warnings = [line for line in offline.stdout.splitlines() if "warning" in line]
        assert len(warnings) == 1 and "Debian's archive cannot be reached" in warnings[0]
        assert image_id(base) == unreachable
        docker("tag", stale, base)
        # inv base upgrades it, naming what moved; then the release passes.
        mended = inv("base", cwd=project)
        assert mended.returncode == 0, mended.stderr
        assert f"is behind Debian's archive: {package} {version} -> " in mended.stdout
        assert image_id(base) != stale
        released = inv("release", cwd=project, env=env, timeout=3600)
        assert released.returncode == 0, released.stdout[-3000:] + released.stderr[-3000:]
        assert "Debian packages checked against the archive" in released.stdout
    finally:
        made = [image_id(base), *(found for found in (stale, unreachable) if found)]
        docker("tag", original, base)
        docker("image", "rm", "--force", f"{name}:{VERSION}", f"{name}:latest", f"{name}:test",
               named, *made, check=False)  # fmt: skip


def test_another_architecture_s_base_is_asked_of_natively_with_the_same_answer():
    """apt on the engine's own CPU, reading the other architecture's indexes, says what apt
    under emulation says of that architecture's base: the same packages behind, the same
    state of the archive (what `inv base` compares with the base's label)."""
    c = context()
    own = platforms.own(c)
    other = "linux/arm64" if own == "linux/amd64" else "linux/amd64"
    bootstrap.base(c, own)  # the native asker
    base = bootstrap.base(c, other)
    native = bootstrap.native(c, other, base)
    assert native is not None
    emulated = security.outdated(c, base, other)
    asked = security.outdated(c, base, other, native=native)
    assert (emulated.error, asked.error) == (None, None)
    assert (asked.behind, asked.state) == (emulated.behind, emulated.state)
    assert asked.state
