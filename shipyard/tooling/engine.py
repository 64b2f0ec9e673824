"""The engine: the configured CLI, quiet probes, and one clear line when it cannot serve.

The Docker Engine's, or rootless Podman's: tooling/podman.py holds what Podman does
otherwise, and the functions here ask it where they must."""

import json
import re
import shlex
import shutil
from collections.abc import Callable

from invoke import Context, Exit, Result

from shipyard.tooling import podman, secrets, stamps
from shipyard.tooling.commands import confirm
from shipyard.tooling.commands import probe as _probe
from shipyard.tooling.project import DOCKERFILE, ROLE, ROOT

# A build step's title in BuildKit's plain output: "#12 [builder 6/10] RUN ...".
STEP = re.compile(r"^#(\d+) \[([^\]]*)\] (.*)$", re.MULTILINE)
# A build step's line of BuildKit's plain output: "#12 3.456 error: ...".
STEP_ERROR = re.compile(r"^#\d+ \d+\.\d+ (error: .+\.)$", re.MULTILINE)


def argv(c: Context, *args: str) -> str:
    """The configured docker CLI with ARGS, as one command line, each argument quoted."""
    return shlex.join([*shlex.split(c.docker.command), *args])


def docker(c: Context, *args: str, **kwargs) -> Result:
    """Run the configured docker CLI with ARGS, each passed as one argument.

    Only an interactive command reads the terminal (in_stream=sys.stdin): any other would
    swallow what the user types ahead for the shell that comes next. What may change the
    engine's images makes their IDs, as this process knows them, be asked anew.
    """
    forget()
    return c.run(argv(c, *args), **{"in_stream": False, **kwargs})


def probe(c: Context, *args: str) -> Result:
    return _probe(c, argv(c, *args))


# What the engine says of itself, asked once a process: its version, the CLI's, its platform.
VERSIONS = "{{.Server.Version}} {{.Client.Version}} {{.Server.Os}}/{{.Server.Arch}}"
PODMAN_VERSIONS = "{{.Version.Version}} {{.Version.Version}} {{.Host.OS}}/{{.Host.Arch}}"
_answered: dict[str, Result] = {}
# What this process asked of the engine's images, since it last ran a command that may change them.
_ids: dict[str, str | None] = {}
_inspected: dict[str, dict] = {}


def answers(c: Context) -> Result:
    """Ask the engine its version: the answer's .ok says whether one serves this CLI. Podman
    has no daemon to ask: its CLI is the engine, and `info` shows it working. One question
    says all that the tasks ask of it (versions, platform); an answer is kept for the process."""
    if c.docker.command in _answered:
        return _answered[c.docker.command]
    if podman.chosen(c):
        answer = probe(c, "info", "--format", PODMAN_VERSIONS)
    else:
        answer = probe(c, "version", "--format", VERSIONS)
    if answer.ok:
        _answered[c.docker.command] = answer
    return answer


def _said(c: Context, field: int) -> str:
    """The FIELD-th word of the engine's answer (server, client, platform); "" where none."""
    words = answers(c).stdout.split() if answers(c).ok else []
    return words[field] if len(words) > field else ""


def require(c: Context) -> None:
    """End with a clear line when there is no docker CLI, or no Docker Engine answers it."""
    cli = shlex.split(c.docker.command)[0]
    if not shutil.which(cli):
        raise Exit(
            f"error: there is no docker CLI `{cli}` here. Install Docker (Docker Engine or "
            "Docker Desktop), or point INVOKE_DOCKER_COMMAND at a docker CLI."
        )
    answer = answers(c)
    if not answer.ok and podman.chosen(c):
        reason = (answer.stderr.strip().splitlines() or ["no answer"])[-1]
        raise Exit(
            f"error: podman cannot run containers here ({reason}). Run `podman info` to see "
            "why; rootless, the user needs ranges in /etc/subuid and /etc/subgid."
        )
    if not answer.ok:
        reason = (answer.stderr.strip().splitlines() or ["no answer"])[-1]
        raise Exit(
            f"error: no Docker Engine answers ({reason}). Start one (`dockerd &`, or "
            "`systemctl start docker`) or point DOCKER_HOST at it, then try again."
        )


def require_docker(c: Context, what: str, why: str) -> None:
    """End with one line where the engine is Podman and WHAT is the Docker Engine's alone."""
    if podman.chosen(c):
        raise Exit(
            f"error: {what} runs on the Docker Engine alone ({why}). Point "
            "INVOKE_DOCKER_COMMAND at a docker CLI to run it."
        )


def require_buildkit(c: Context) -> None:
    """End with a clear line when the engine is missing or the CLI cannot build with BuildKit."""
    require(c)
    if podman.chosen(c):  # Podman builds with Buildah
        return
    client = _said(c, 1)
    major = client.partition(".")[0]
    # Before 23.0, `docker build` has BuildKit built in; from 23.0 on, only the buildx plugin.
    if (major.isdigit() and int(major) < 23) or probe(c, "buildx", "version").ok:
        return
    raise Exit(
        f"error: `{c.docker.command}` (client {client}) cannot build with BuildKit, which the "
        "Dockerfile needs. Install the buildx plugin, or point INVOKE_DOCKER_COMMAND at a CLI "
        "that has BuildKit (such as Debian's own, /usr/bin/docker)."
    )


def build(c: Context, argv: list[str], keeps: str | None = None, hide: bool = False) -> str:
    """Run `docker build ARGV .` with pip's secrets; return its log. A failure ends in one line:
    the last `error: ...` that a build step printed, where one did, and the image that KEEPS.
    HIDE keeps the log to itself (the command is still shown)."""
    with secrets.build_secrets(c) as flags:
        env = {"DOCKER_BUILDKIT": "1"}
        record = None
        if podman.chosen(c):
            dockerfile = DOCKERFILE.read_text()
            flags += [*podman.BUILD, *podman.labels(dockerfile, argv)]
            fresh, record = _podman_cache(c, argv, dockerfile)
            flags += fresh
        dockerfile = ["--file", str(DOCKERFILE.relative_to(ROOT))]
        result = docker(c, *argv, *dockerfile, *flags, ".", env=env, echo=True, warn=True,
                        hide=hide)  # fmt: skip
    if result.ok and record:
        record()
    if result.failed:
        said = (podman.STEP_ERROR if podman.chosen(c) else STEP_ERROR).findall(
            result.stdout + result.stderr
        )
        reason = said[-1] if said else "error: the build failed at the step shown above."
        kept = f" ({keeps} still holds what it held before.)" if keeps else ""
        raise Exit(f"{reason}{kept}", code=result.exited)
    return result.stdout + result.stderr


def _podman_cache(
    c: Context, argv: list[str], dockerfile: str
) -> tuple[list[str], Callable[[], None]]:
    """`--no-cache` where a stage of DOCKERFILE that the Podman build ARGV needs, and that
    mounts another, was not built here from what it is made of now (tooling/podman.py says
    why), said in one line; and what records, once the build has succeeded, that its stages
    were."""
    named = [value.split("=", 1)[1] for value in argv
             if value.startswith(("BASE_IMAGE=", "BUILD_IMAGE="))]  # fmt: skip
    key, made = podman.inputs(argv, [image_id(c, name) for name in named])
    needed = podman.stages(dockerfile, argv)
    found = (stamps.read(f"podman-{key}") or "").split()
    built = set(found[1:]) if found[:1] == [made] else set()

    def record() -> None:
        stamps.record(c, f"podman-{key}", " ".join([made, *sorted(built | needed)]))

    if "--no-cache" in argv or needed & podman.mounting(dockerfile) <= built:
        return [], record
    print("podman: a stage that this build mounts was not built here from what it is made of "
          "now: it runs without the cache, which Buildah would mount stale or empty")  # fmt: skip
    return ["--no-cache"], record


def throwaway(platform: str, role: str = "run") -> list[str]:
    """`docker run` arguments for one throwaway container on PLATFORM, labelled as the project's
    own, in ROLE (`clean` finds any that an interrupted task left), and never pulled."""
    return ["run", "--rm", "--pull=never", "--platform", platform, "--label", f"{ROLE}={role}"]


def remove_containers(c: Context, *containers: str, **kwargs) -> Result:
    """Remove CONTAINERS, running or not, and their anonymous volumes, at once (Podman would
    give each 10 s to stop)."""
    now = ["--time", "0"] if podman.chosen(c) else []
    return docker(c, "container", "rm", "--force", *now, "--volumes", *containers, **kwargs)


def remove_images(c: Context, *images: str, **kwargs) -> None:
    """Remove IMAGES (names, or IDs of untagged ones), as far as nothing else holds them.

    Docker's --force takes a name off an image that a container uses, and leaves both.
    Podman's would remove the container, anyone's: Podman removes each image unforced, and
    takes the name off one that a container uses, as Docker does."""
    if not podman.chosen(c):
        docker(c, "image", "rm", "--force", *images, **kwargs)
        return
    for image in images:
        removed = docker(c, "image", "rm", image, **{**kwargs, "warn": True})
        if removed.failed and not image.startswith("sha256:"):
            docker(c, "untag", image, **kwargs)


def prune_build_cache(c: Context, yes: bool) -> None:
    """Prune the Docker Engine's whole build cache, which other projects share, once the user
    says so (YES says so for scripts)."""
    if confirm("Prune this engine's whole build cache, for every project?", yes):
        docker(c, "builder", "prune", "--force", echo=True)


def build_cache_size(c: Context) -> str:
    """What the Docker Engine's build cache holds, every project's, as `docker system df`
    says it: 12GB."""
    said = probe(c, "system", "df", "--format", "{{.Type}}\t{{.Size}}").stdout
    return next((line.split("\t")[1] for line in said.splitlines()
                 if line.startswith("Build Cache\t")), "")  # fmt: skip


def image_id(c: Context, ref: str) -> str | None:
    """REF's ID (sha256:HEX), where the engine has the image; else None. Asked once, until a
    command of this process may have changed the engine's images."""
    if ref not in _ids:
        _ids[ref] = None
        for name in _meant(c, ref):
            found = probe(c, "image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
            if found:
                _ids[ref] = podman.image_id(found)
                break
    return _ids[ref]


def _meant(c: Context, ref: str) -> list[str]:
    """The names that REF means, as Docker reads it, in the order to look for them."""
    return podman.meant(ref) if podman.chosen(c) else [ref]


def own_platform(c: Context) -> str | None:
    """The platform that the engine runs without emulation, such as linux/amd64: its daemon's,
    or the host's where Podman runs (it has no daemon); None where it cannot tell."""
    return _said(c, 2) or None


def inspected(c: Context, ref: str) -> dict:
    """What the engine says of the local image REF ({} where there is none), its ID as
    Docker writes it. (Podman's inspect has no variant to template: the JSON has it.) Asked
    once, as image_id() is."""
    if ref not in _inspected:
        _inspected[ref] = {}
        for name in _meant(c, ref):
            answer = probe(c, "image", "inspect", name)  # Podman answers [] where there is none
            [found] = (json.loads(answer.stdout) if answer.ok else None) or [{}]
            if "Id" in found:
                _inspected[ref] = {**found, "Id": podman.image_id(found["Id"])}
                break
    return _inspected[ref]


def forget() -> None:
    """Forget what the engine said of its images: another process may have changed them."""
    _ids.clear()
    _inspected.clear()


def platform_of(c: Context, ref: str) -> str | None:
    """The platform of the local image REF, such as linux/arm/v7; None where there is none."""
    found = inspected(c, ref)
    parts = [found.get("Os"), found.get("Architecture"), found.get("Variant")]
    return "/".join(part for part in parts if part) if parts[0] else None


def image_size(c: Context, ref: str) -> str:
    size = probe(c, "image", "inspect", "--format", "{{.Size}}", ref).stdout.strip()
    return f"{int(size or 0) / 1e6:.0f} MB"


def require_image(c: Context, ref: str) -> None:
    if not image_id(c, ref):
        raise Exit(f"error: there is no image {ref} here yet. Build it first: `inv build`.")


def ids(c: Context, *args: str) -> list[str]:
    """The IDs that a `docker ... ls` command lists, each once, in order."""
    return list(dict.fromkeys(probe(c, *args, "--quiet").stdout.split()))


def cache_missed(log: str) -> bool:
    """Whether a build whose BuildKit LOG is given failed to import a cache it was given (a
    Buildah build is given none)."""
    imports = re.findall(r"^#(\d+) importing cache manifest from ", log, re.MULTILINE)
    return any(re.search(rf"^#{step} ERROR", log, re.MULTILINE) for step in imports)


def _steps_run(log: str) -> list[tuple[str | None, str]]:
    """The steps that a build whose LOG is given really ran, not taken from a cache: each one's
    stage (None where the log does not name it) and title ("RUN ..."). BuildKit's (plain
    progress) names the stage in brackets, "[linux/arm64 sdists 2/4]"; Buildah's, Podman's,
    otherwise (tooling/podman.py)."""
    if podman.wrote(log):
        return podman.steps_run(log)
    cached = set(re.findall(r"^#(\d+) CACHED$", log, re.MULTILINE))
    steps = {step: (where.split(), title) for step, where, title in STEP.findall(log)}
    return [  # a stage's FROM is DONE, never CACHED: it runs nothing
        (words[-2] if len(words) >= 2 and re.match(r"\d+/\d+$", words[-1]) else None, title)
        for step, (words, title) in steps.items()
        if step not in cached and not title.startswith("FROM ")
    ]


def stages_ran(log: str) -> set[str]:
    """The stages of which a build whose LOG is given really ran a step."""
    return {stage for stage, _ in _steps_run(log) if stage}


def ran(log: str) -> list[str]:
    """The RUN steps that a build whose LOG is given really ran: not taken from a cache. Under
    --dry, or where the log shows no step at all, none."""
    return [title for _, title in _steps_run(log) if title.startswith("RUN ")]
