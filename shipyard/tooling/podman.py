"""Podman in the Docker Engine's place: rootless, with no daemon. What it does otherwise.

`docker.command` set to `podman` (INVOKE_DOCKER_COMMAND=podman) picks it. Its CLI takes
Docker's commands and flags, and tooling/engine.py asks this module where the two differ:
- No daemon answers: the CLI is the engine, which `podman info` shows working.
- Buildah builds, not BuildKit. The Dockerfile's cache and secret mounts work as they are.
  Its log reads `[2/14] STEP 3/6: RUN ...`, then `--> Using cache ID` where the step was
  cached. No inline cache goes to a registry: registry.cache is Docker's alone.
- Buildah writes the time of the build into each layer's files, unless told a time
  (`--timestamp`). Told the epoch, each build of the same files gives the same layers, as
  docker/layer makes BuildKit's. Every build is told, so that what one build leaves in the
  cache is what another would have made. The image's config is then written again with the
  commit's time, as Docker's is (tooling/reproducible.py).
- Buildah (1.28) finds a LABEL step in its cache by the step's text alone, not the values of
  the build arguments that it reads: an image would keep an older commit's revision. The
  labels that read one go on the command line too, with their values, which Buildah adds
  as a last step of their own: a new revision relabels the image, and rebuilds nothing else.
- Buildah (1.28) mounts a stage that it took whole from its cache (`RUN --mount=from=STAGE`)
  as an empty folder, and finds a step that mounts a stage in its cache whatever that stage
  now holds. So a build that needs a stage with such a step which was not built here, for
  its platform, from what the stages are made of now (the app's files aside: no mounted
  stage reads them) runs without the cache: then every stage is built, and each mount holds
  what it must. An edit of the app is a cached build, as on Docker; a new dependency is not.
- `inspect` gives an image's ID without `sha256:`, and no variant; names read
  `localhost/NAME:TAG`. An unqualified name finds any registry's image of that name, where
  Docker's means Docker Hub's alone: the tasks look for `localhost/` and Docker Hub's.
- `rm --force` stops a container with SIGTERM and 10 s of grace, unless told `--time 0`.
- Its build cache is an untagged image for each step, every project's together: `builder
  prune` removes every dangling image, of every project, and is never called. The tasks
  record the images that their own builds made (the IDs in Buildah's log), and `clean
  --build-cache` removes those alone. `rmi --force` removes the containers that use the
  image, anyone's: never forced.
- A registry on this machine is not taken as plain HTTP unless told `--tls-verify=false`.
- A manifest list is made with `manifest create`, then `manifest add` of each image in the
  registry, and pushed with `manifest push --all`.
"""

import hashlib
import itertools
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

from invoke import Context

from shipyard.tooling import stamps
from shipyard.tooling.project import DOCKERFILE, IN_IMAGE, ROOT

# A step's title in Buildah's log: "[2/14] STEP 3/6: RUN ...", without "[k/n] " where one
# stage is built.
STEP = re.compile(r"^(?:\[(\d+)/\d+\] )?STEP (\d+)/\d+: (.*)$", re.MULTILINE)
CACHED = re.compile(r"^--> Using cache [0-9a-f]+$")
# The image that each step made or took from the cache: "--> 75f0b8b397a", "--> Using cache ID".
COMMITTED = re.compile(r"^--> (?:Using cache )?([0-9a-f]{11,64})$", re.MULTILINE)
# A stage's first step names it: "FROM IMAGE AS NAME".
FROM = re.compile(r"^FROM \S+ AS (\S+)$", re.IGNORECASE)
# What a build step printed of its error, as Buildah passes it through: "error: ...".
STEP_ERROR = re.compile(r"^(error: .+\.)$", re.MULTILINE)
BUILD = ["--timestamp", "0"]  # every build's own flags
# What the stages that a build mounts are made of (the app's files are not): the build
# context's other files. And what changes with each commit alone: the labels' values.
MOUNTED_FROM = [DOCKERFILE, IN_IMAGE, ROOT / "requirements.txt", ROOT / "requirements-test.txt"]
PER_COMMIT = {"REVISION", "CREATED"}
LOCAL = "localhost/"  # the repository host of the images that Podman names here


def labels(dockerfile: str, argv: list[str]) -> list[str]:
    """`--label NAME=VALUE` for each label that the DOCKERFILE's stage that the build ARGV
    targets sets from a build argument, with the value that ARGV gives that argument."""
    args, target = _args(argv), dict(itertools.pairwise(argv)).get("--target")
    flags = []
    for stage, words, line in _instructions(dockerfile):
        if stage == target and words[0] == "ARG" and len(words) > 1:
            name, _, default = words[1].partition("=")
            args.setdefault(name, default.strip('"'))
        elif stage == target and words[0] == "LABEL":
            read = [item for item in shlex.split(line)[1:] if "$" in item]
            flags += [flag for item in read for flag in ("--label", _expand(item, args))]
    return flags


def inputs(argv: list[str], bases: list[str | None]) -> tuple[str, str]:
    """The build ARGV's platform, and a fingerprint of what the stages it mounts are made of:
    the Dockerfile, docker/, the requirements, the build's arguments (but the labels' commit
    and time) and its base images' IDs, BASES."""
    args = [f"{name}={value}" for name, value in _args(argv).items() if name not in PER_COMMIT]
    platform = dict(itertools.pairwise(argv)).get("--platform", "")
    fingerprint = stamps.digest(*map(str, MOUNTED_FROM))
    made = "\0".join([fingerprint, *args, *map(str, bases), platform])
    return platform.replace("/", "-"), hashlib.sha256(made.encode()).hexdigest()


def stages(dockerfile: str, argv: list[str]) -> set[str]:
    """The stages of DOCKERFILE that the build ARGV builds: its target's, and those that it
    starts FROM, copies from or mounts, in turn."""
    args, needs = _args(argv), {}
    for stage, words, line in _instructions(dockerfile):
        if stage is None and words[0] == "ARG" and len(words) > 1:  # before any FROM
            name, _, default = words[1].partition("=")
            args.setdefault(name, _expand(default.strip('"'), args))
        elif words[0] == "FROM":
            image = next(word for word in words[1:] if not word.startswith("--"))
            needs[stage] = {_expand(image, args)}
        elif stage is not None:
            needs[stage] |= set(re.findall(r"(?:--from=|[,\s]from=)([^,\s]+)", line))
    last = list(needs)[-1] if needs else None
    found, todo = set(), [dict(itertools.pairwise(argv)).get("--target", last)]
    while todo:
        name = todo.pop()
        if name in needs and name not in found:
            found.add(name)
            todo += needs[name]
    return found


def mounting(dockerfile: str) -> set[str]:
    """The stages of DOCKERFILE with a step that mounts another stage: those whose cache
    Buildah may hold stale, or mount empty (RUN --mount=type=bind,from=STAGE)."""
    mounts = re.compile(r"--mount=\S*\bfrom=")
    return {stage for stage, words, line in _instructions(dockerfile)
            if words[0] == "RUN" and mounts.search(line)}  # fmt: skip


def _instructions(dockerfile: str) -> Iterator[tuple[str | None, list[str], str]]:
    """Each instruction of DOCKERFILE, its lines joined: the stage that it is in (None before
    the first FROM; a FROM's own is the one it starts), its words (the first in capitals),
    and its text."""
    stage, count = None, 0
    for line in re.sub(r"\\\n", " ", dockerfile).splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        words[0] = words[0].upper()
        if words[0] == "FROM":
            named = len(words) > 2 and words[-2].upper() == "AS"
            stage, count = (words[-1] if named else str(count)), count + 1
        yield stage, words, line


def _args(argv: list[str]) -> dict[str, str]:
    """The build arguments that the build ARGV gives: NAME to VALUE."""
    given = [value for flag, value in itertools.pairwise(argv) if flag == "--build-arg"]
    return dict(value.split("=", 1) for value in given)


def _expand(text: str, args: dict[str, str]) -> str:
    """TEXT with each ${NAME} (or $NAME) that ARGS give replaced by its value."""
    return re.sub(r"\$\{?(\w+)\}?", lambda found: args.get(found[1], found[0]), text)


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
        if not CACHED.match(after) and not title.startswith("FROM ")
    ]


def committed(log: str) -> list[str]:
    """The images (IDs, or their first hex digits) that a Buildah build whose LOG is given made
    or took from its cache, one for each step: its build cache, which the project owns."""
    return list(dict.fromkeys(COMMITTED.findall(log)))


def image_id(found: str) -> str:
    """An image's ID as Docker writes it (sha256:HEX), from Podman's (HEX)."""
    return f"sha256:{found}" if re.fullmatch(r"[0-9a-f]{64}", found) else found


def meant(ref: str) -> list[str]:
    """The names that REF means, as Docker would read it, in the order to look for them here.
    An unqualified name is the local build's (`localhost/`), else Docker Hub's; Podman itself
    would also take any registry's image of that name, `127.0.0.1:5000/team/my-project:0.1.0`
    for `my-project:0.1.0`."""
    first = ref.split("/")[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return [ref]
    hub = f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"
    return [f"{LOCAL}{ref}", hub]


def name(ref: str) -> str:
    """An image's name as the tasks wrote it, from Podman's: without `localhost/`."""
    return ref.removeprefix(LOCAL)
