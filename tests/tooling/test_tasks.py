"""tasks.py: the exact commands each task composes, pinned with invoke's MockContext.

What the commands then do is tested for real elsewhere (test_image.py and its siblings);
here the point is what runs, with which arguments, and what does not run at all.
"""

import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from unittest.mock import Mock

import pytest
from invoke import Config, Exit, MockContext, Result
from support import ROOT

import tasks

PIP_CERT = f"{sys.executable} -m pip config get global.cert"
ENGINE = "docker version --format '{{.Server.Version}}'"


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """Tasks read and write under a copy of the files they use, never the real tree."""
    for name in ("pyproject.toml", "poetry.lock", "requirements.txt", "requirements-test.txt"):
        shutil.copy2(ROOT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    for variable in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_INDEX_URL"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


def context(run: dict, **config) -> MockContext:
    """A MockContext with the project's defaults (plus CONFIG) that answers RUN's commands."""
    overrides = tasks.ns.configuration()
    for key, value in config.items():
        area, _, name = key.partition("_")
        overrides[area] = {**overrides.get(area, {}), name: value}
    return MockContext(config=Config(overrides=overrides), run=run)


def commands(c: MockContext) -> list[str]:
    return [call.args[0] for call in c.run.call_args_list]


def failed(code: int = 1, stdout: str = "", stderr: str = "") -> Result:
    return Result(exited=code, stdout=stdout, stderr=stderr)


# --- The local flow --------------------------------------------------------------------------


VENV_COMMANDS = [
    "rm -rf .venv",
    "python3.11 -m venv .venv",
    "python3.11 -m venv .venv/poetry",
    ".venv/poetry/bin/pip install --quiet "
    "poetry==2.5.1 poetry-plugin-export==1.10.1 poetry-plugin-pypi-mirror==0.6.5",
]


def test_venv_makes_both_environments_and_pins_poetry():
    """.venv from the configured Python, then poetry, pinned, in an environment of its own."""
    c = context(dict.fromkeys(VENV_COMMANDS, True))
    tasks.venv(c, force=True)
    assert commands(c) == VENV_COMMANDS


def test_venv_keeps_the_mirror_url_off_the_command_line():
    """A mirror URL may hold credentials: it reaches pip through the environment only."""
    mirror = "https://user:secret@mirror.invalid/simple"
    c = context(dict.fromkeys(VENV_COMMANDS, True), pypi_mirror=mirror)
    tasks.venv(c, force=True)
    assert not any(mirror in command for command in commands(c))
    assert c.run.call_args_list[-1].kwargs["env"] == {"PIP_INDEX_URL": mirror}


def test_venv_is_a_no_op_when_done(capsys, workdir):
    """Made before with the same Python and pins: nothing runs."""
    (workdir / ".venv" / "bin").mkdir(parents=True)
    (workdir / ".venv" / "bin" / "python").touch()
    c = context({})
    tasks._record(c, "venv", f"python3.11 {c.poetry.requirements}")
    tasks.venv(c)
    assert commands(c) == []
    assert "nothing to do" in capsys.readouterr().out


def test_venv_names_a_missing_python(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(Exit, match=r"python3\.9 is not on PATH.*INVOKE_PYTHON_VERSION"):
        tasks.venv(context({}, python_version="3.9"), force=True)


POETRY = ".venv/poetry/bin/poetry"


def test_lock_runs_poetry_lock_only_when_the_check_fails():
    c = context({f"{POETRY} check --lock": failed(), f"{POETRY} lock": Result()})
    tasks.lock(c)
    assert commands(c) == [f"{POETRY} check --lock", f"{POETRY} lock"]
    # Done: the same inputs again run nothing, not even the check.
    tasks.lock(c)
    assert len(commands(c)) == 2


def test_lock_goes_through_the_mirror_when_one_is_set():
    c = context({f"{POETRY} check --lock": Result()}, pypi_mirror="https://mirror.invalid/simple")
    tasks.lock(c)
    env = c.run.call_args.kwargs["env"]
    assert env["POETRY_PYPI_MIRROR_URL"] == "https://mirror.invalid/simple"
    assert env["VIRTUAL_ENV"] == str(ROOT / ".venv")


def test_a_failing_lock_ends_in_one_line():
    c = context({f"{POETRY} check --lock": failed(), f"{POETRY} lock": failed(1)})
    with pytest.raises(Exit, match=r"^error: poetry lock failed \(exit 1\)\. Fix what poetry"):
        tasks.lock(c)


def test_install_syncs_the_core_test_and_dev_groups():
    c = context({f"{POETRY} sync --with test,dev": Result()})
    tasks.install(c)
    tasks.install(c)  # in sync already: runs nothing
    assert commands(c) == [f"{POETRY} sync --with test,dev"]


PYTEST = (
    ".venv/bin/python -m pytest -s --tb=native --cov=my_project --cov-report term-missing"
    " --cov-report html:htmlcov tests"
)


def test_test_runs_the_reference_command_without_the_docker_tests():
    full = f"{PYTEST} -m 'not docker and not slow' --cov-fail-under=100"
    c = context({full: Result()})
    tasks.test(c)
    assert commands(c) == [full]


def test_test_all_runs_everything_and_passes_extra_arguments():
    c = context({f"{PYTEST} -k 'cli and not slow' -x": Result()})
    c._set(remainder="-k 'cli and not slow' -x")
    tasks.test(c, all=True)
    assert commands(c) == [f"{PYTEST} -k 'cli and not slow' -x"]


def test_test_says_when_no_test_ran():
    c = context({f"{PYTEST} -m 'not docker and not slow' -k nothing_matches": failed(5)})
    c._set(remainder="-k nothing_matches")
    with pytest.raises(Exit, match="no test ran") as exit_:
        tasks.test(c)
    assert exit_.value.code == 5


def test_test_changed_skips_a_green_run_with_the_same_inputs(workdir):
    for folder in ("my_project", "tests"):
        shutil.copytree(ROOT / folder, workdir / folder)
    for name in ("main.py", "tasks.py"):
        shutil.copy2(ROOT / name, workdir / name)
    c = context({f"{PYTEST} -m 'not docker and not slow' --cov-fail-under=100": Result()})
    tasks.test(c, changed=True)
    tasks.test(c, changed=True)
    assert len(commands(c)) == 1
    (workdir / "my_project" / "hello.py").write_text("# changed\n")
    tasks.test(c, changed=True)
    assert len(commands(c)) == 2


def export_of(group: str) -> str:
    return f"{POETRY} export --only {group}"


def test_export_rewrites_only_what_changed(workdir, capsys):
    body = "fire==0.7.1 \\\n    --hash=sha256:00\n"
    (workdir / "requirements-test.txt").write_text(tasks._export_header() + body)
    c = context({export_of("main"): Result(stdout=body), export_of("test"): Result(stdout=body)})
    tasks.export(c)
    assert (workdir / "requirements.txt").read_text() == tasks._export_header() + body
    out = capsys.readouterr().out
    assert "wrote requirements.txt" in out
    assert "requirements-test.txt matches poetry.lock: unchanged" in out


def test_export_check_names_the_stale_file_and_writes_nothing(workdir):
    before = (workdir / "requirements.txt").read_text()
    stale = Result(stdout="new==1.0\n")
    current = Result(stdout=(workdir / "requirements-test.txt").read_text().split("\n", 1)[1])
    c = context({export_of("main"): stale, export_of("test"): current})
    with pytest.raises(Exit, match=r"^error: requirements\.txt out of date with poetry\.lock"):
        tasks.export(c, check=True)
    assert (workdir / "requirements.txt").read_text() == before


def test_lint_runs_ruff_and_hadolint():
    lint = [
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/hadolint --failure-threshold warning Dockerfile",
    ]
    c = context(dict.fromkeys(lint, True))
    tasks.lint(c)
    assert commands(c) == lint


# --- The container flow ----------------------------------------------------------------------


def docker_context(run: dict, **config) -> MockContext:
    """A MockContext whose engine answers and whose CLI has BuildKit."""
    return context(
        {
            ENGINE: Result(stdout="20.10.24\n"),
            "docker buildx version": failed(),
            "docker version --format '{{.Client.Version}}'": Result(stdout="20.10.24+dfsg1\n"),
            **run,
        },
        **config,
    )


def test_no_engine_ends_in_one_line_that_says_what_to_do():
    daemon_down = "Cannot connect to the Docker daemon at unix:///x.sock. Is it running?"
    c = context({ENGINE: failed(stderr=daemon_down)})
    with pytest.raises(
        Exit, match=r"^error: no Docker Engine answers \(Cannot connect.*DOCKER_HOST"
    ):
        tasks.run(c)


def test_a_cli_without_buildkit_is_told_the_fix():
    c = docker_context({"docker version --format '{{.Client.Version}}'": Result(stdout="28.2.2")})
    with pytest.raises(Exit, match=r"client 28\.2\.2.*buildx.*INVOKE_DOCKER_COMMAND"):
        tasks.build(c)


def test_buildx_is_enough():
    c = docker_context({"docker buildx version": Result(stdout="v0.29")})
    tasks._buildkit(c)


@pytest.fixture
def build_context(monkeypatch):
    """A context for `build`, with the base, git and the SBOM answered without commands."""
    monkeypatch.setattr(tasks, "_base", lambda c: "my-project-base:bookworm")
    monkeypatch.setattr(tasks, "_git", lambda c, *args: "" if args[0] == "status" else "abc123")
    monkeypatch.setattr(tasks, "_sbom", lambda c: "my-project.sbom=dist/x.cdx.json sha256:00")
    inspect = "docker image inspect --format"
    c = docker_context(
        {
            f"{inspect} '{{{{.Id}}}}' my-project:0.1.0": [
                Result(stdout="sha256:old"),
                Result(stdout="sha256:new"),
            ],
            f"{inspect} '{{{{.Size}}}}' my-project:0.1.0": Result(stdout="178600000"),
            re.compile(r"^docker build "): Result(),
            PIP_CERT: failed(),  # pip has no cert setting here
        }
    )
    seen = {}
    mock = c.run

    def run(command, **kwargs):
        # The secrets' files exist only while the build runs: read them then.
        for flag in shlex.split(command):
            if flag.startswith("id=pip_index_url,src="):
                seen["index_url"] = Path(flag.split("src=")[1]).read_text()
        return mock(command, **kwargs)

    c._set(run=Mock(wraps=run))
    return c, seen


BUILD = [
    "docker", "build", "--target", "runtime", "--label", "my-project.role=runtime",
    "--label", "my-project.sbom=dist/x.cdx.json sha256:00",
    "--tag", "my-project:0.1.0", "--tag", "my-project:latest",
    "--build-arg", "BASE_IMAGE=my-project-base:bookworm",
    "--build-arg", "RUNTIME=distroless",
    "--build-arg", "STRIP=1",
    "--build-arg", "VERSION=0.1.0",
    "--build-arg", "REVISION=abc123",
    "--build-arg", "CREATED=abc123",
    "--build-arg", f"SOURCE={tasks.PROJECT['urls']['Source']}",
]  # fmt: skip


def test_build_composes_one_buildkit_command(build_context, capsys):
    c, _ = build_context
    tasks.build(c)
    build = [command for command in commands(c) if command.startswith("docker build ")]
    assert build == [shlex.join([*BUILD, "."])]
    call = next(call for call in c.run.call_args_list if call.args[0] == build[0])
    assert call.kwargs["env"] == {"DOCKER_BUILDKIT": "1"}
    assert "my-project:0.1.0 and my-project:latest: built, 179 MB" in capsys.readouterr().out


def test_build_hands_the_ca_bundle_and_mirror_over_as_secrets(build_context, monkeypatch):
    """The command names the secrets' files, not the mirror URL, which may hold a token."""
    c, seen = build_context
    mirror = "https://user:token@mirror.invalid/simple"
    c.config.pypi.mirror = mirror
    monkeypatch.setenv("PIP_CERT", "/etc/hostname")  # any file will do
    tasks.build(c)
    build = next(command for command in commands(c) if command.startswith("docker build "))
    assert "--secret id=pip_cert,src=/etc/hostname" in build
    assert "--secret id=pip_index_url,src=" in build
    assert mirror not in build
    assert seen["index_url"] == mirror


def test_build_refuses_a_missing_ca_bundle(build_context, monkeypatch):
    c, _ = build_context
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    c.set_result_for("run", PIP_CERT, failed())
    with pytest.raises(Exit, match=r"CA bundle /nonexistent/ca\.pem \(from SSL_CERT_FILE\)"):
        tasks.build(c)


def test_build_refuses_exports_older_than_the_lock(build_context, workdir):
    c, _ = build_context
    (workdir / "poetry.lock").write_text("# changed\n")
    with pytest.raises(Exit, match=r"requirements\.txt and requirements-test\.txt not exported"):
        tasks.build(c)
    assert not any(command.startswith("docker build ") for command in commands(c))


RUN = "docker run --rm --pull never --label my-project.role=run my-project:0.1.0"
HAVE_IMAGE = "docker image inspect --format '{{.Id}}' my-project:0.1.0"


def test_run_passes_cmd_as_arguments_never_to_a_shell():
    """Shell syntax in --cmd is quoted on the way, so that it reaches the app as text."""
    hostile = "say-hello --name '$(touch /tmp/x); `id` | cat'"
    expected = f"{RUN} say-hello --name '$(touch /tmp/x); `id` | cat'"
    c = docker_context({HAVE_IMAGE: Result(stdout="sha256:1"), expected: Result()})
    tasks.run(c, cmd=hostile)
    assert commands(c)[-1] == expected


def test_run_exits_with_the_container_code():
    c = docker_context({HAVE_IMAGE: Result(stdout="sha256:1"), f"{RUN} say-hello": failed(2)})
    with pytest.raises(Exit) as exit_:
        tasks.run(c, cmd="say-hello")
    assert exit_.value.code == 2


def test_run_rejects_unbalanced_quotes_before_any_command():
    c = docker_context({})
    with pytest.raises(Exit, match=r"cannot split --cmd .*No closing quotation"):
        tasks.run(c, cmd="say-hello --name 'alice")
    assert commands(c) == []


def test_run_without_an_image_says_to_build_and_pulls_nothing():
    c = docker_context({HAVE_IMAGE: failed()})
    with pytest.raises(Exit, match=r"no image my-project:0\.1\.0 here yet\. Build it first"):
        tasks.run(c)
    assert not any("pull" in command or "docker run" in command for command in commands(c))


DEV = "docker container inspect --format '{{index .Config.Labels \"my-project.role\"}} {{.State.Running}}' my-project-dev"  # noqa: E501


def test_explore_starts_runs_and_removes_its_container(monkeypatch):
    monkeypatch.setattr(tasks, "_base", lambda c: "my-project-base:bookworm")
    start = (
        "docker run --detach --name my-project-dev --label my-project.role=dev"
        f" --volume {ROOT}:/project:ro --workdir /project my-project-base:bookworm sleep infinity"
    )
    c = docker_context(
        {
            DEV: failed(stderr="No such container"),
            start: Result(),
            "docker exec my-project-dev python3 -V": Result(stdout="Python 3.11.2"),
            "docker container rm --force --volumes my-project-dev": Result(),
        }
    )
    tasks.explore(c, cmd="python3 -V")
    assert commands(c)[-3:] == [
        start,
        "docker exec my-project-dev python3 -V",
        "docker container rm --force --volumes my-project-dev",
    ]


def test_explore_removes_its_container_when_interrupted(monkeypatch):
    monkeypatch.setattr(tasks, "_base", lambda c: "my-project-base:bookworm")
    c = docker_context(
        {
            DEV: failed(),
            re.compile(r"^docker run --detach"): Result(),
            "docker container rm --force --volumes my-project-dev": Result(),
        }
    )
    mock = c.run

    def interrupted(command, **kwargs):
        if command.startswith("docker exec"):
            raise KeyboardInterrupt
        return mock(command, **kwargs)

    c._set(run=Mock(wraps=interrupted))
    with pytest.raises(KeyboardInterrupt):
        tasks.explore(c)
    assert commands(c)[-1] == "docker container rm --force --volumes my-project-dev"


def test_explore_joins_a_running_dev_container_and_leaves_it():
    c = docker_context(
        {DEV: Result(stdout="dev true"), "docker exec my-project-dev true": Result()}
    )
    tasks.explore(c, cmd="true")
    assert not any(" rm " in command for command in commands(c))


def test_explore_leaves_a_stranger_of_the_same_name_alone():
    """A container the project did not make is never touched: no rm, no exec."""
    c = docker_context({DEV: Result(stdout=" true")})
    with pytest.raises(Exit, match=r"my-project-dev exists, and my-project did not make it"):
        tasks.explore(c)
    assert commands(c)[-1] == DEV


def test_clean_removes_by_label_only():
    ls = "docker container ls --all"
    stopped = " ".join(f"--filter status={state}" for state in ("created", "exited", "dead"))
    c = docker_context(
        {
            f"{ls} --filter label=my-project.role=dev --quiet": Result(stdout="c1\n"),
            f"{ls} --filter label=my-project.role=run {stopped} --quiet": Result(stdout="c2\n"),
            "docker container rm --force --volumes c1 c2": Result(),
            "docker image ls --filter label=my-project.role --quiet": Result(stdout="i1\ni2\ni1\n"),
            "docker image ls --filter label=my-project.role=base --quiet": Result(stdout="i2\n"),
            "docker image rm --force i1": Result(),
        }
    )
    tasks.clean(c)
    assert (
        commands(c)[-5:]
        == [
            f"{ls} --filter label=my-project.role=dev --quiet",
            f"{ls} --filter label=my-project.role=run {stopped} --quiet",
            "docker container rm --force --volumes c1 c2",
            "docker image ls --filter label=my-project.role --quiet",
            "docker image ls --filter label=my-project.role=base --quiet",
        ]
        or commands(c)[-1] == "docker image rm --force i1"
    )
    assert commands(c)[-1] == "docker image rm --force i1"


def test_clean_build_cache_asks_and_needs_yes_without_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    c = docker_context({re.compile(r"^docker (container|image) ls"): Result()})
    with pytest.raises(Exit, match=r"needs an answer, and there is no terminal\. Add --yes"):
        tasks.clean(c, build_cache=True)
    assert not any("prune" in command for command in commands(c))
    c.set_result_for("run", "docker builder prune --force", Result())
    tasks.clean(c, build_cache=True, yes=True)
    assert commands(c)[-1] == "docker builder prune --force"


def test_build_without_strip_keeps_the_symbols(build_context):
    c, _ = build_context
    c.config.docker.strip = False
    tasks.build(c)
    build = next(command for command in commands(c) if command.startswith("docker build "))
    assert "--build-arg STRIP=0" in build


def test_push_tags_pushes_pulls_back_by_digest_and_smoke_tests(monkeypatch):
    monkeypatch.setattr(tasks, "_git", lambda c, *args: "" if args[0] == "status" else "abc1234")
    repository = "127.0.0.1:5000/team/my-project"
    digest = "sha256:" + "ab" * 32
    pushed = Result(stdout=f"latest: digest: {digest} size: 1234\n")
    throwaway = f"my-project-verify:{os.getpid()}"
    smoke_run = f"docker run --rm --pull never --label my-project.role=run {throwaway}"
    c = docker_context(
        {
            HAVE_IMAGE: Result(stdout="sha256:1"),
            re.compile(r"^docker (tag|push) "): pushed,
            f"docker pull {repository}@{digest}": Result(),
            f"docker image inspect --format '{{{{.Id}}}}' {throwaway}": Result(stdout="sha256:1"),
            f"{smoke_run} say-hello --name alice": Result(stdout="Hello alice!\n"),
            f"{smoke_run} show-deps": Result(stdout="polars 2.1.0\n  blue 6\n  red 9\n"),
            f"docker image rm {throwaway}": Result(),
        },
        registry_url="127.0.0.1:5000/team",
    )
    assert tasks._push(c) == f"{repository}@{digest}"
    published = [
        command for command in commands(c) if command.split()[1] in {"tag", "push", "pull"}
    ]
    assert published == [
        f"docker tag my-project:0.1.0 {repository}:0.1.0",
        f"docker push {repository}:0.1.0",
        f"docker tag my-project:0.1.0 {repository}:abc1234",
        f"docker push {repository}:abc1234",
        f"docker tag my-project:0.1.0 {repository}:latest",
        f"docker push {repository}:latest",
        f"docker pull {repository}@{digest}",
        f"docker tag {repository}@{digest} {throwaway}",
    ]
    assert commands(c)[-1] == f"docker image rm {throwaway}"
