"""Podman in the Docker Engine's place: rootless, with no daemon. What it does otherwise.

`docker.command` set to `podman` (INVOKE_DOCKER_COMMAND=podman) picks it. Its CLI takes
Docker's commands and flags, and tooling/engine.py asks this module where the two differ:
- No daemon answers: the CLI is the engine, which `podman info` shows working.
- Buildah builds, not BuildKit. The Dockerfile's cache and secret mounts work as they are.
  Its log reads `[2/14] STEP 3/6: RUN ...`, then `--> Using cache ID` where the step was
  cached. No inline cache goes to a registry: registry.cache is Docker's alone.
- Buildah writes the time of the build into each layer's files and the image's config,
  unless told a time (`--timestamp`). Told the epoch, each build of the same files gives the
  same layers, as docker/layer makes BuildKit's, and the same image: its config says it was
  created at the epoch, where Docker's says the commit's time (tooling/reproducible.py). The
  labels say the commit's time on both. Every build is told, so that what one build leaves
  in the cache is what another would have made.
- `inspect` gives an image's ID without `sha256:`, and no variant; names read
  `localhost/NAME:TAG`.
- `rm --force` stops a container with SIGTERM and 10 s of grace, unless told `--time 0`.
- `builder prune` removes every dangling image, of every project: never called.
- A registry on this machine is not taken as plain HTTP unless told `--tls-verify=false`.
- A manifest list is made of local images, named `containers-storage:REF`.
"""

import re
import shlex
from pathlib import Path

from invoke import Context

# A step's title in Buildah's log: "[2/14] STEP 3/6: RUN ...", without "[k/n] " where one
# stage is built.
STEP = re.compile(r"^(?:\[(\d+)/\d+\] )?STEP (\d+)/\d+: (.*)$", re.MULTILINE)
CACHED = re.compile(r"^--> Using cache [0-9a-f]+$")
# A stage's first step names it: "FROM IMAGE AS NAME".
FROM = re.compile(r"^FROM \S+ AS (\S+)$", re.IGNORECASE)
# What a build step printed of its error, as Buildah passes it through: "error: ...".
STEP_ERROR = re.compile(r"^(error: .+\.)$", re.MULTILINE)
BUILD = ["--timestamp", "0"]  # every build's own flags
LOCAL = "localhost/"  # the repository host of the images that Podman names here


def chosen(c: Context) -> bool:
    """Whether the configured engine is Podman."""
    return Path(shlex.split(c.docker.command)[0]).name == "podman"


def wrote(log: str) -> bool:
    """Whether Buildah wrote the build LOG (not BuildKit)."""
    return bool(STEP.search(log))


def steps_run(log: str) -> list[tuple[str | None, str]]:
    """The steps that a build whose Buildah LOG is given ran, not taken from its cache: each
    one's stage and title. Stages build side by side, and their lines interleave: a step
    whose title the next line does not answer with "Using cache" counts as run."""
    stages: dict[str, str] = {}
    titled: list[tuple[str, str, str]] = []  # (stage number, title, the line after it)
    lines = log.splitlines()
    for line, after in zip(lines, [*lines[1:], ""], strict=True):
        step = STEP.match(line)
        if not step:
            continue
        number, title = step[1] or "1", step[3]
        named = FROM.match(title) if step[2] == "1" else None
        if named:
            stages[number] = named[1]
        titled.append((number, title, after))
    return [
        (stages.get(number, number), title)
        for number, title, after in titled
        if not CACHED.match(after) and not FROM.match(title) and not title.startswith("FROM ")
    ]


def image_id(found: str) -> str:
    """An image's ID as Docker writes it (sha256:HEX), from Podman's (HEX)."""
    return f"sha256:{found}" if re.fullmatch(r"[0-9a-f]{64}", found) else found


def name(ref: str) -> str:
    """An image's name as the tasks wrote it, from Podman's: without `localhost/`."""
    return ref.removeprefix(LOCAL)
