"""Benchmark of this app's image: its size, build times and start latency, against baselines.

Usage (what `inv bench` runs, from the project root):

    python shipyard/bench/bench.py --docker docker --image my-project:0.1.0 --args JSON \
        --source my_project/__init__.py --script my-project \
        [--secret id=pip_cert,src=FILE]... [--runs 21] [--out docs]

--image is the runtime image, already built; --args are the build arguments that `inv build`
gives it (the base's among them), as JSON; --source is a module of the app, which the
benchmark edits, and --script the console script that the baselines run; --secret flags
reach every `docker build` as they are. The benchmark builds two baselines from the same base
and requirements.txt (shipyard/bench/baseline-single.Dockerfile and baseline-two-stage.
Dockerfile, each installing the app as pip installs a project), builds the project cold and
after a source-only change, cold for each --foreign PLATFORM=ARGS too (ARGS: its build
arguments, as JSON, which tasks.py composes: a cross build, where the builder runs on this CPU
and only what must runs emulated), and on an empty second engine from a cache in a registry
of its own (tooling/sandbox.py); it runs `inv release` and `inv test` twice each, times
container starts, then writes docs/benchmarks.md and docs/image-size.png. Every image it
makes is tagged in the repository my-project-bench, labelled my-project.role=bench, and
removed at the end; `inv clean` removes what an interrupted run left, by that repository.
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # draw to a file, without a display
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first

ROOT = Path(__file__).resolve().parents[2]  # the project root: the build context
sys.path.insert(0, str(ROOT))  # shipyard/: the tasks' own reading of a build's log, the sandbox
from shipyard.tooling import engine, sandbox  # noqa: E402
from shipyard.tooling.project import DOCKERFILE, VERSION  # noqa: E402

BENCH = Path(__file__).resolve().parent
PREFIX = "my-project-bench"  # every image this benchmark makes is named so
LABEL = "my-project.role=bench"  # and labelled so, to say what it is for
MB = 1e6  # as docker reports sizes
COMPONENTS = ("base", "dependencies", "app")
# A step of BuildKit's plain progress output: "#12 [builder 6/10] RUN ..." then "#12 CACHED".
STEP = re.compile(r"^#(\d+) \[[^\]]*\] (.*)$", re.MULTILINE)
CACHED = re.compile(r"^#(\d+) CACHED$", re.MULTILINE)
PIP_INSTALL = re.compile(r"^RUN .*pip[- ]install")


@dataclass
class Build:
    """One timed `docker build`."""

    tag: str
    seconds: float
    log: str  # BuildKit's plain progress output


@dataclass
class ImageSize:
    """An image's size, whole and split by what made each layer, in bytes."""

    name: str
    ref: str
    uncompressed: int
    compressed: int
    parts: dict[str, int]


@dataclass
class Goal:
    """A goal of the project, and how the measured figure compares with it."""

    figure: str
    measured: str
    goal: str
    ratio: str  # the measured figure over what the goal compares it with, as text
    met: bool


@dataclass
class Results:
    """Every figure of one run, gathered for the report."""

    machine: dict[str, str] = field(default_factory=dict)
    releases: list[tuple[float | None, str]] = field(default_factory=list)
    test_overhead: tuple[float, float] | None = None  # a second `inv test`: whole, pytest's own
    sizes: list[ImageSize] = field(default_factory=list)
    builds: dict[str, Build] = field(default_factory=dict)
    pip_cached: bool = False
    latency: dict[str, float] = field(default_factory=dict)
    runs: int = 0
    fresh: tuple[float, list[str]] | None = None  # an empty engine's build: seconds, steps run
    task: dict[str, float] = field(default_factory=dict)  # `inv build`: cold, after an edit
    edit_sbom: tuple[str, float] = ("", 0.0)  # that edit's SBOM: what syft read, its seconds


# --- Running commands ------------------------------------------------------------------------


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ARGV (no shell) with its output captured as text; the caller checks the exit code."""
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def output(argv: list[str]) -> str:
    """The standard output of ARGV, which must succeed."""
    result = run(argv)
    if result.returncode:
        sys.exit(f"error: `{shlex.join(argv)}` failed: {result.stderr.strip()}")
    return result.stdout.strip()


def progress(message: str) -> None:
    print(f"[bench] {message}", flush=True)


# --- Building ----------------------------------------------------------------------------------


def build(
    docker: list[str],
    tag: str,
    flags: list[str],
    secrets: list[str],
    context: Path = ROOT,
    host: str | None = None,
) -> Build:
    """Build CONTEXT with FLAGS (file, target, build args) as TAG, labelled; time it. HOST is
    another engine's DOCKER_HOST."""
    argv = [*docker, "build", "--progress", "plain", "--tag", tag, "--label", LABEL]
    argv += [*flags, *secrets, str(context)]
    progress(f"building {tag} ...")
    start = time.monotonic()
    result = run(argv, env={**os.environ, "DOCKER_BUILDKIT": "1", **on(host)})
    seconds = time.monotonic() - start
    if result.returncode:
        print("\n".join(result.stderr.splitlines()[-30:]), file=sys.stderr)
        sys.exit(f"error: the build of {tag} failed (exit {result.returncode}), see above")
    progress(f"built {tag} in {seconds:.1f} s")
    return Build(tag, seconds, result.stderr)


def pip_step_cached(log: str) -> bool:
    """Whether the build whose plain LOG is given took every pip-install step from the cache."""
    pip_steps = {number for number, command in STEP.findall(log) if PIP_INSTALL.match(command)}
    return bool(pip_steps) and pip_steps <= set(CACHED.findall(log))


def copy_context(destination: Path) -> None:
    """Copy the files git knows of (tracked, or new and not ignored) into DESTINATION.

    The build then filters them through .dockerignore, as it does for the project root.
    """
    listing = output(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    )
    for name in listing.split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def project_flags(arguments: dict[str, str], **changed: str) -> list[str]:
    """`docker build` flags for the project's Dockerfile, with ARGUMENTS as `inv build` gives
    them, but for those CHANGED."""
    given = {**arguments, **changed}
    return [
        "--file",
        str(DOCKERFILE),
        *(f"--build-arg={name}={value}" for name, value in given.items()),
    ]


def edit(folder: Path, source: str) -> None:
    """Edit the module SOURCE of the copy of the project in FOLDER: a line of its own, which
    no cache has seen."""
    with (folder / source).open("a") as module:
        module.write(f"# an edit, made by the benchmark ({time.time_ns()})\n")


def project_builds(
    docker: list[str], arguments: dict, source: str, secrets: list[str], results: Results
) -> None:
    """Build the project cold, again after a source-only change, and without bytecode."""
    flags = [*project_flags(arguments), "--target", "runtime"]
    cold = build(docker, f"{PREFIX}:cold", [*flags, "--no-cache"], secrets)
    results.builds["cold"] = cold
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-") as folder:
        copy_context(Path(folder))
        edit(Path(folder), source)
        rebuild = build(docker, f"{PREFIX}:rebuild", flags, secrets, Path(folder))
    results.builds["rebuild"] = rebuild
    results.pip_cached = pip_step_cached(rebuild.log)
    progress(f"rebuild: pip-install step cached: {yes_no(results.pip_cached)}")
    nopyc = ["--build-arg", "COMPILE=0"]
    build(docker, f"{PREFIX}:nopyc", [*flags, *nopyc], secrets)  # for start latency only


def build_task(source: str, results: Results) -> None:
    """Time `inv build` as a person waits for it, SBOM and import check included: cold
    (`--no-cache`), then after a source edit. It runs in a committed copy of the project, which
    shares its .venv, and builds the benchmark's own image (PREFIX:VERSION)."""
    invoke = [sys.executable, "-m", "invoke", "build"]
    env = {**os.environ, "INVOKE_DOCKER_IMAGE": PREFIX}
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-") as folder:
        copy_context(Path(folder))
        (Path(folder) / ".venv").symlink_to(ROOT / ".venv")
        for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
            output([*git, "-C", folder, *command])
        for name, flags in (("cold", ["--no-cache"]), ("edit", [])):
            if name == "edit":
                edit(Path(folder), source)
            progress(f"inv build ({name}) ...")
            start = time.monotonic()
            result = run([*invoke, *flags], cwd=folder, env=env)
            results.task[name] = time.monotonic() - start
            if result.returncode:
                print(result.stdout[-2000:] + result.stderr[-2000:], file=sys.stderr)
                sys.exit(f"error: `inv build` failed (exit {result.returncode}), see above")
            progress(f"inv build ({name}): {results.task[name]:.1f} s")
    sbom = re.findall(r"^SBOM: .*\((syft read .*), ([0-9.]+) s\)$", result.stdout, re.MULTILINE)
    results.edit_sbom = (sbom[-1][0], float(sbom[-1][1]))


def on(host: str | None) -> dict[str, str]:
    """The environment that points docker at HOST, where one is given."""
    return {"DOCKER_HOST": host} if host else {}


def foreign_builds(
    docker: list[str], foreign: dict[str, dict], secrets: list[str], results: Results
) -> dict[str, str]:
    """Build the project cold for each other platform (PLATFORM: its build arguments); return
    each one's image, by its architecture."""
    images = {}
    for target, build_args in foreign.items():
        arch = target.partition("/")[2].replace("/", "-")
        flags = [*project_flags(build_args), "--target", "runtime", "--no-cache"]
        flags += ["--platform", target]
        results.builds[f"cold {arch}"] = build(docker, f"{PREFIX}:cold-{arch}", flags, secrets)
        images[arch] = f"{PREFIX}:cold-{arch}"
    return images


def fresh_engine_build(
    docker: list[str], arguments: dict, secrets: list[str], results: Results
) -> None:
    """Fill a cache in a registry of our own from this engine's build, then build the same on
    an empty engine, pointed at that cache, with the base named as the cache has it, as `inv
    build` names it there: its seconds, and the steps that it ran (none, if the cache served
    them all: then the base's layers are not even pulled)."""
    base = arguments["BASE_IMAGE"]
    flags = [*project_flags(arguments), "--build-arg", "BUILDKIT_INLINE_CACHE=1"]
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-") as folder:
        with sandbox.registry(Path(folder)) as address, sandbox.engine(docker) as host:
            cache = f"{address}/bench/cache"
            for stage in ("builder", "wheel", "runtime"):  # as `inv build` does with the cache
                build(docker, f"{cache}:{stage}", [*flags, "--target", stage], secrets)
                output([*docker, "push", f"{cache}:{stage}"])
            output([*docker, "tag", base, f"{cache}:base"])
            output([*docker, "push", f"{cache}:base"])
            progress("an empty engine, from the cache: the base named as it has it ...")
            # As `inv build` does there: the base's layers come only if a step must run.
            flags = [*project_flags(arguments, BASE_IMAGE=f"{cache}:base")]
            flags += ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]
            refs = [flag for stage in ("builder", "wheel", "runtime")
                    for flag in ("--cache-from", f"{cache}:{stage}")]  # fmt: skip
            fresh = build(docker, f"{PREFIX}:fresh", [*flags, "--target", "runtime", *refs],
                          secrets, host=host)  # fmt: skip
        output(
            [
                *docker,
                "image",
                "rm",
                f"{cache}:builder",
                f"{cache}:wheel",
                f"{cache}:runtime",
                f"{cache}:base",
            ]
        )
    results.fresh = (fresh.seconds, engine.ran(fresh.log))
    progress(
        f"an empty engine built from the cache in {fresh.seconds:.1f} s, ran {results.fresh[1]}"
    )


def baseline_builds(
    docker: list[str], base: str, script: str, secrets: list[str], results: Results
) -> None:
    """Build both baselines from scratch, from the same base and requirements.txt."""
    for name in ("single", "two-stage"):
        flags = ["--file", str(BENCH / f"baseline-{name}.Dockerfile"), "--no-cache"]
        flags += ["--build-arg", f"BASE_IMAGE={base}"]
        results.builds[name] = build(docker, f"{PREFIX}:{name}", flags, secrets)
        runs = [*docker, "run", "--rm", "--entrypoint", f"/opt/venv/bin/{script}"]
        said = output([*runs, f"{PREFIX}:{name}", "--help"]).strip().splitlines()
        progress(f"{PREFIX}:{name} runs {script}: {(said or [''])[0]!r}")


# --- Sizes -------------------------------------------------------------------------------------


def inspect(docker: list[str], ref: str, template: str) -> str:
    return output([*docker, "image", "inspect", "--format", template, ref])


def compressed_size(docker: list[str], ref: str) -> int:
    """Bytes of `docker save REF | gzip`, streamed: the image is never held in memory."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip format, gzip -6
    total = 0
    with subprocess.Popen([*docker, "save", ref], stdout=subprocess.PIPE) as save:
        while chunk := save.stdout.read(1 << 20):
            total += len(compressor.compress(chunk))
    if save.returncode:
        sys.exit(f"error: `docker save {ref}` failed (exit {save.returncode})")
    return total + len(compressor.flush())


def history(docker: list[str], ref: str) -> list[tuple[str, int]]:
    """The layers of REF, newest first: what created each, and its size in bytes."""
    template = "{{.Size}}\t{{.CreatedBy}}"
    argv = [*docker, "history", "--no-trunc", "--human=false", "--format", template, ref]
    rows = [line.partition("\t") for line in output(argv).splitlines()]
    return [(created_by, int(size)) for size, _, created_by in rows]


def inherited_layers(docker: list[str], ref: str, base: str) -> int:
    """How many history entries REF inherits from BASE: 0 when it is not built on BASE."""
    layers, base_layers = (
        inspect(docker, image, "{{json .RootFS.Layers}}") for image in (ref, base)
    )
    if not layers.startswith(base_layers.rstrip("]")):
        return 0
    return len(history(docker, base))


def component(created_by: str) -> str:
    """What a layer holds, judged by the instruction that created it."""
    if "COPY /rootfs /" in created_by:  # the distroless tree: interpreter, stdlib, libraries
        return "base"
    if re.search(r"/opt/venv|/layers/venv|pip[- ]install", created_by):
        return "dependencies"
    if created_by.startswith(("COPY", "ADD")):
        return "app"
    return "base"  # the rest (ENV, WORKDIR, ...) adds metadata, not bytes


def image_size(docker: list[str], name: str, ref: str, base: str) -> ImageSize:
    """Measure REF: uncompressed, gzip-compressed, and split into base, dependencies and app."""
    progress(f"measuring the size of {ref} ...")
    layers = history(docker, ref)
    inherited = inherited_layers(docker, ref, base)
    parts = dict.fromkeys(COMPONENTS, 0)
    for position, (created_by, size) in enumerate(reversed(layers)):
        parts["base" if position < inherited else component(created_by)] += size
    uncompressed = int(inspect(docker, ref, "{{.Size}}"))
    size = ImageSize(name, ref, uncompressed, compressed_size(docker, ref), parts)
    progress(f"{ref}: {mb(size.uncompressed)}, {mb(size.compressed)} compressed")
    return size


# --- Release and start latency ----------------------------------------------------------------


def release() -> tuple[float | None, str]:
    """Run `inv release` in the project root; its seconds (None if it failed) and a note."""
    start = time.monotonic()
    result = run([sys.executable, "-m", "invoke", "release"], cwd=ROOT)
    seconds = time.monotonic() - start
    if result.returncode:
        lines = (result.stdout + result.stderr).strip().splitlines() or ["no output"]
        print("\n".join(lines[-20:]), file=sys.stderr)
        return None, f"failed (exit {result.returncode}): {lines[-1]}"
    return seconds, "ok"


def releases(results: Results) -> None:
    """Run `inv release` twice; the second, with nothing changed, is the figure."""
    for attempt in ("first", "second"):
        progress(f"inv release ({attempt}) ...")
        seconds, note = release()
        results.releases.append((seconds, note))
        progress(f"inv release ({attempt}): {note}" + (f", {seconds:.1f} s" if seconds else ""))
        if seconds is None:
            return


def test_overhead(results: Results) -> None:
    """Run `inv test` twice; of the second, with nothing changed, time the whole and pytest's own.

    What the tasks add (venv, lock and install finding nothing to do) is the difference.
    """
    for attempt in ("first", "second"):
        progress(f"inv test ({attempt}) ...")
        start = time.monotonic()
        result = run([sys.executable, "-m", "invoke", "test"], cwd=ROOT)
        whole = time.monotonic() - start
        if result.returncode:
            print(result.stdout[-2000:] + result.stderr[-2000:], file=sys.stderr)
            sys.exit(f"error: `inv test` failed (exit {result.returncode}), see above")
    pytest_own = re.findall(r" in ([0-9.]+)s", result.stdout)  # pytest's summary: "... in 7.54s"
    results.test_overhead = (whole, float(pytest_own[-1]))
    progress(f"inv test (second): {whole:.1f} s, of which pytest {pytest_own[-1]} s")


def start_commands(docker: list[str], image: str, nopyc: str) -> dict[str, list[str]]:
    """The container starts to time, by name: the floor and the app's two commands, per image."""
    runner = [*docker, "run", "--rm", "--pull", "never"]
    floor = ["--entrypoint", "/opt/venv/bin/python"]
    commands = {}
    for suffix, ref in (("", image), (" (COMPILE=0)", nopyc)):
        commands[f"floor{suffix}"] = [*runner, *floor, ref, "-c", "pass"]
        commands[f"say-hello{suffix}"] = [*runner, ref, "say-hello", "--name", "alice"]
        commands[f"show-deps{suffix}"] = [*runner, ref, "show-deps"]
    return commands


def timed(argv: list[str]) -> float:
    """Seconds that ARGV takes, which must succeed."""
    start = time.monotonic()
    result = run(argv)
    seconds = time.monotonic() - start
    if result.returncode:
        sys.exit(f"error: `{shlex.join(argv)}` failed: {result.stderr.strip()}")
    return seconds


def start_latency(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Median seconds of each command over RUNS rounds, after one warm-up round.

    Each round runs every command once, in turn, so that noise spreads over all of them.
    """
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(runs + 1):
        progress(f"start latency: round {round_} of {runs}" + (" (warm-up)" if not round_ else ""))
        for name, argv in commands.items():
            seconds = timed(argv)
            if round_:
                times[name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


# --- The machine -------------------------------------------------------------------------------


def machine(docker: list[str], base: str) -> dict[str, str]:
    """What ran the benchmark: CPU, cores, memory, kernel, Docker Engine, base image."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    memory = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    engine = output([*docker, "version", "--format", "{{.Server.Version}}"])
    base_size = int(inspect(docker, base, "{{.Size}}"))
    return {
        "CPU": model.group(1) if model else platform.processor() or "unknown",
        "cores": str(os.cpu_count()),
        "memory": f"{int(memory.group(1)) * 1024 / 1e9:.1f} GB" if memory else "unknown",
        "kernel": f"{platform.system()} {platform.release()}",
        "Docker Engine": engine,
        "base image": f"`{base}`, {mb(base_size)}",
    }


# --- The report --------------------------------------------------------------------------------


def mb(size: float) -> str:
    """SIZE in bytes as MB; small sizes keep three decimals, so that they do not read 0.0."""
    return f"{size / MB:.1f} MB" if size >= 0.1 * MB else f"{size / MB:.3f} MB"


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def ratio_goal(
    figure: str, measured: str, goal: str, ratio: float, limit: float, reference: str
) -> Goal:
    """A goal met when RATIO (the figure over REFERENCE) is at most LIMIT."""
    return Goal(figure, measured, goal, f"{ratio:.2f} {reference}", ratio <= limit)


def goals(results: Results) -> list[Goal]:
    """The project's goals, each with its measured figure."""
    sizes = {size.name: size for size in results.sizes}
    ours, two_stage = sizes["this project"], sizes["baseline (b): two stages"]
    cold, rebuild = results.builds["cold"].seconds, results.builds["rebuild"].seconds
    floor, hello, deps = (results.latency[name] for name in ("floor", "say-hello", "show-deps"))
    listed = [
        ratio_goal(
            "runtime image, uncompressed",
            mb(ours.uncompressed),
            "≤ 190 MB",
            ours.uncompressed / (190 * MB),
            1.0,
            "x the goal",
        ),
        ratio_goal(
            "runtime image, against baseline (b)",
            mb(ours.uncompressed),
            "≤ 0.60 x baseline (b)",
            ours.uncompressed / two_stage.uncompressed,
            0.60,
            "x baseline (b)",
        ),
        ratio_goal(
            "rebuild after a source-only change",
            f"{rebuild:.1f} s",
            "≤ 0.10 x cold build",
            rebuild / cold,
            0.10,
            "x the cold build",
        ),
        ratio_goal(
            "`inv build` after a source edit, the whole task",
            f"{results.task['edit']:.1f} s",
            "≤ 0.10 x a cold `inv build`",
            results.task["edit"] / results.task["cold"],
            0.10,
            "x the cold task",
        ),
        ratio_goal(
            "that edit's SBOM",
            f"{results.edit_sbom[1]:.1f} s ({results.edit_sbom[0]})",
            "≤ 1 s",
            results.edit_sbom[1],
            1.0,
            "x the goal",
        ),
        Goal(
            "no wheel downloaded by that rebuild",
            f"pip-install step cached: {yes_no(results.pip_cached)}",
            "cached",
            "-",
            results.pip_cached,
        ),
        ratio_goal(
            "say-hello start",
            f"{hello:.3f} s",
            "≤ 1.25 x floor",
            hello / floor,
            1.25,
            "x the floor",
        ),
        ratio_goal(
            "show-deps start", f"{deps:.3f} s", "≤ 1.7 x floor", deps / floor, 1.7, "x the floor"
        ),
    ]
    for name, size in sizes.items():
        if name.startswith("this project, "):  # another architecture's image
            listed.append(
                ratio_goal(
                    f"{name.partition(', ')[2]} image, against amd64's",
                    mb(size.uncompressed),
                    "within 10 % of amd64's",
                    size.uncompressed / ours.uncompressed,
                    1.10,
                    "x amd64's",
                )
            )
            listed[-1].met = abs(size.uncompressed / ours.uncompressed - 1) <= 0.10
    for name, built in results.builds.items():
        if name.startswith("cold "):  # another architecture's, built on this CPU
            listed.append(
                ratio_goal(
                    f"{name.partition(' ')[2]} cold build, against amd64's",
                    f"{built.seconds:.1f} s",
                    "≤ 1.5 x amd64's",
                    built.seconds / cold,
                    1.5,
                    "x amd64's",
                )
            )
    if results.fresh:
        seconds, ran = results.fresh
        listed.append(
            ratio_goal(
                "an empty engine's build, from the registry cache",
                f"{seconds:.1f} s, {len(ran)} steps run",
                "≤ 0.25 x cold build, no step run",
                seconds / cold,
                0.25,
                "x the cold build",
            )
        )
        listed[-1].met = listed[-1].met and not ran
    whole, pytest_own = results.test_overhead
    listed.append(
        ratio_goal(
            "second `inv test`: what the tasks add to pytest's own time",
            f"{whole - pytest_own:.1f} s ({whole:.1f} s in all)",
            "≤ 3 s",
            (whole - pytest_own) / 3,
            1.0,
            "x the goal",
        )
    )
    second, note = results.releases[1] if len(results.releases) > 1 else (None, None)
    figure = "second `inv release`, nothing changed"
    if second is None:
        failure = note or results.releases[0][1]
        listed.append(Goal(figure, failure, "≤ 20 s", "-", False))
    else:
        listed.append(
            ratio_goal(figure, f"{second:.1f} s", "≤ 20 s", second / 20, 1.0, "x the goal")
        )
    return listed


def goal_rows(results: Results) -> list[str]:
    rows = ["| figure | measured | goal | ratio | met |", "| --- | --- | --- | --- | --- |"]
    for goal in goals(results):
        row = [goal.figure, goal.measured, goal.goal, goal.ratio, yes_no(goal.met)]
        rows.append(f"| {' | '.join(row)} |")
    return rows


def size_rows(results: Results) -> list[str]:
    rows = ["| image | uncompressed | compressed (gzip) | base | dependencies | app |"]
    rows.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for size in results.sizes:
        parts = " | ".join(mb(size.parts[name]) for name in COMPONENTS)
        rows.append(f"| {size.name} | {mb(size.uncompressed)} | {mb(size.compressed)} | {parts} |")
    return rows


def build_rows(results: Results) -> list[str]:
    builds = results.builds
    cold = builds["cold"].seconds
    rows = ["| build | seconds | note |", "| --- | ---: | --- |"]
    rows.append(f"| this project, cold (`--no-cache`) | {cold:.1f} | |")
    rebuild_note = f"{builds['rebuild'].seconds / cold:.2f} x cold; pip-install step cached: "
    rows.append(
        f"| this project, after a source-only change | {builds['rebuild'].seconds:.1f} "
        f"| {rebuild_note}{yes_no(results.pip_cached)} |"
    )
    task = results.task
    rows.append(f"| `inv build`, the whole task, cold (`--no-cache`) | {task['cold']:.1f} | |")
    rows.append(
        f"| `inv build`, the whole task, after a source edit | {task['edit']:.1f} "
        f"| {task['edit'] / task['cold']:.2f} x cold; SBOM: {results.edit_sbom[0]}, "
        f"{results.edit_sbom[1]:.1f} s |"
    )
    rows.append(f"| baseline (a), one stage, cold | {builds['single'].seconds:.1f} | |")
    rows.append(f"| baseline (b), two stages, cold | {builds['two-stage'].seconds:.1f} | |")
    for name, built in builds.items():
        if name.startswith("cold "):
            arch, note = name.partition(" ")[2], f"{built.seconds / cold:.2f} x amd64's"
            rows.append(
                f"| this project, {arch}, cold (`--no-cache`) | {built.seconds:.1f} | {note} |"
            )
    if results.fresh:
        seconds, ran = results.fresh
        note = f"{seconds / cold:.2f} x cold; steps run: {len(ran)}"
        rows.append(
            f"| this project, an empty engine, from the registry cache | {seconds:.1f} | {note} |"
        )
    for attempt, (seconds, note) in zip(("first", "second"), results.releases, strict=False):
        shown = f"{seconds:.1f}" if seconds is not None else "-"
        rows.append(f"| `inv release`, {attempt} run | {shown} | {note} |")
    return rows


def latency_rows(results: Results) -> list[str]:
    latency = results.latency
    rows = [
        "| bytecode | floor (`python -c pass`) | say-hello | show-deps "
        "| say-hello ÷ floor | show-deps ÷ floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, suffix in (
        ("compiled at build (`COMPILE=1`)", ""),
        ("not compiled (`COMPILE=0`)", " (COMPILE=0)"),
    ):
        floor, hello, deps = (
            latency[f"{name}{suffix}"] for name in ("floor", "say-hello", "show-deps")
        )
        rows.append(
            f"| {label} | {floor:.3f} s | {hello:.3f} s | {deps:.3f} s "
            f"| {hello / floor:.2f} x | {deps / floor:.2f} x |"
        )
    return rows


def bytecode_verdict(latency: dict[str, float]) -> str:
    """One sentence per command: which bytecode choice starts faster, and by how much."""
    sentences = []
    for name in ("say-hello", "show-deps"):
        difference = latency[f"{name} (COMPILE=0)"] - latency[name]
        faster = "compiled at build" if difference > 0 else "not compiled"
        sentences.append(
            f"{name} starts faster with bytecode {faster}, by {abs(difference) * 1000:.0f} ms."
        )
    return " ".join(sentences)


def report(results: Results, args: argparse.Namespace) -> str:
    """The text of docs/benchmarks.md."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine_rows = ["| | |", "| --- | --- |"]
    machine_rows += [f"| {key} | {value} |" for key, value in results.machine.items()]
    lines = [
        "# Benchmarks",
        "",
        f"_Written by `inv bench` on {now}; do not edit by hand._",
        "",
        "One run on one machine: the figures move with its load.",
        "",
        "## Machine",
        "",
        *machine_rows,
        "",
        "## Goals",
        "",
        "The ratio is the measured figure over what the goal compares it with.",
        "",
        *goal_rows(results),
        "",
        "## Image size",
        "",
        f"This project is `{args.image}`. Baseline (a) is `bench/baseline-single.Dockerfile` "
        "(one stage, the whole context copied, pip in the image); baseline (b) is "
        "`bench/baseline-two-stage.Dockerfile` (a builder's venv copied onto a fresh base). "
        "Both install the same `requirements.txt` on the same base. Sizes are in MB of 10⁶ "
        "bytes, as docker reports them; compressed is `docker save | gzip -6`. The split comes "
        "from `docker history`: base is the base image's layers (for this project, the "
        "distroless tree: interpreter, standard library, shared libraries); dependencies are "
        "the layers that install or copy the venv; app is what copies the source.",
        "",
        *size_rows(results),
        "",
        "![image size by component](image-size.png)",
        "",
        "## Build times",
        "",
        "Cold builds run with `--no-cache`, which on Docker 20.10 also gives each cache mount "
        "empty, so pip downloads every wheel. The source-only change appends a comment to "
        "`my_project/hello.py` in a copy of the context, and builds it with the cache warm. "
        "The rows of `inv build` time the whole task as a person waits for it, in a committed "
        "copy of the project: the build, the image written with the commit's time, its SBOM "
        "and the import check. After the edit, syft reads only the layers that changed.",
        "",
        *build_rows(results),
        "",
        "## Start latency",
        "",
        f"Median wall time of `docker run --rm` over {results.runs} rounds, after one warm-up "
        "round; each round starts every command once, in turn. The floor is the venv's "
        "interpreter doing nothing (`--entrypoint /opt/venv/bin/python IMAGE -c pass`).",
        "",
        *latency_rows(results),
        "",
        bytecode_verdict(results.latency),
        "",
    ]
    return "\n".join(lines)


def chart(sizes: list[ImageSize], path: Path) -> None:
    """A horizontal stacked bar per image: its base, dependencies and app, in MB."""
    figure, axes = plt.subplots(figsize=(9, 3.6))
    names = [size.name for size in sizes]
    left = [0.0] * len(sizes)
    colors = {"base": "#4c72b0", "dependencies": "#dd8452", "app": "#55a868"}
    for name in COMPONENTS:
        widths = [size.parts[name] / MB for size in sizes]
        axes.barh(names, widths, left=left, label=name, color=colors[name])
        left = [start + width for start, width in zip(left, widths, strict=True)]
    for row, total in enumerate(left):
        axes.text(total, row, f" {total:.0f} MB", va="center")
    axes.invert_yaxis()  # this project on top
    axes.set_xlabel("image size, uncompressed (MB)")
    axes.set_xlim(0, max(left) * 1.15)
    axes.set_title("Image size by component")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)


# --- The run -----------------------------------------------------------------------------------


def remove_images(docker: list[str]) -> None:
    """Remove the images this benchmark made, by their names; nothing else."""
    names = ("cold", "rebuild", "nopyc", "single", "two-stage", "cold-arm64", "cold-amd64",
             VERSION, "latest")  # fmt: skip
    tags = [f"{PREFIX}:{name}" for name in names]
    present = [tag for tag in tags if run([*docker, "image", "inspect", tag]).returncode == 0]
    if present:
        run([*docker, "image", "rm", *present])
        progress(f"removed {', '.join(present)}")


def measure(args: argparse.Namespace, docker: list[str]) -> Results:
    """Every measurement, in an order where none disturbs the next."""
    results = Results(runs=args.runs)
    args.base = args.args["BASE_IMAGE"]
    results.machine = machine(docker, args.base)
    releases(results)  # first: it may rebuild --image, which the rest then measures
    test_overhead(results)
    project_builds(docker, args.args, args.source, args.secret, results)
    build_task(args.source, results)
    foreign = foreign_builds(docker, args.foreign, args.secret, results)
    fresh_engine_build(docker, args.args, args.secret, results)
    baseline_builds(docker, args.base, args.script, args.secret, results)
    for name, ref in (
        ("this project", args.image),
        ("baseline (a): one stage", f"{PREFIX}:single"),
        ("baseline (b): two stages", f"{PREFIX}:two-stage"),
    ):
        results.sizes.append(image_size(docker, name, ref, args.base))
    bases = {
        target.partition("/")[2].replace("/", "-"): build_args["BASE_IMAGE"]
        for target, build_args in args.foreign.items()
    }
    for arch, ref in foreign.items():
        results.sizes.append(image_size(docker, f"this project, {arch}", ref, bases[arch]))
    commands = start_commands(docker, args.image, f"{PREFIX}:nopyc")
    results.latency = start_latency(commands, args.runs)
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docker", default="docker", help="the docker CLI, with BuildKit")
    parser.add_argument("--args", required=True, help="the build's arguments (JSON)")
    parser.add_argument("--source", required=True, help="a module of the app, to edit")
    parser.add_argument("--script", required=True, help="the app's console script")
    parser.add_argument("--image", required=True, help="the project's runtime image, built")
    parser.add_argument(
        "--secret", action="append", default=[], help="passed to every docker build, as is"
    )
    parser.add_argument(
        "--foreign", action="append", default=[], help="PLATFORM=ARGS (JSON): build it too"
    )
    parser.add_argument("--runs", type=int, default=21, help="timed rounds of container starts")
    parser.add_argument("--out", default="docs", help="the folder of the report and chart")
    args = parser.parse_args()
    # Each --secret becomes the pair of arguments that docker build takes.
    args.secret = [flag for secret in args.secret for flag in ("--secret", secret)]
    args.args = json.loads(args.args)
    args.foreign = {
        target: json.loads(build_args)
        for target, build_args in (item.split("=", 1) for item in args.foreign)
    }
    return args


def main() -> None:
    args = parse_args()
    docker = shlex.split(args.docker)
    out = ROOT / args.out  # an absolute --out stays as it is
    try:
        results = measure(args, docker)
    finally:
        remove_images(docker)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.md").write_text(report(results, args))
    chart(results.sizes, out / "image-size.png")
    progress(f"wrote {out / 'benchmarks.md'} and {out / 'image-size.png'}")
    for goal in goals(results):
        progress(f"goal {goal.figure}: {goal.measured} ({goal.goal}): met {yes_no(goal.met)}")


if __name__ == "__main__":
    main()
