"""my_project.cli and main.py: the commands, in-process through fire and as a real process."""

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from my_project.cli import main


def test_no_command_prints_usage(capsys):
    """Without a command, the usage lists both commands with their descriptions."""
    main([])
    out = capsys.readouterr().out
    assert "show-deps" in out
    assert "say-hello" in out
    assert "Greet NAME." in out


def test_say_hello(capsys):
    main(["say-hello", "--name", "alice"])
    assert capsys.readouterr().out == "Hello alice!\n"


def test_show_deps(capsys):
    main(["show-deps"])
    assert "  red 9\n" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv", [["say-hello"], ["say-hello", "--nme", "alice"], ["no-such-command"]]
)
def test_usage_errors_exit_2(capsys, argv):
    """A missing or unknown argument or command is fire's usage error: exit code 2."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "Usage:" in capsys.readouterr().err


def _main_py(app_root: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, str(app_root / "main.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, **kwargs)


def test_main_py_runs_each_command(app_root):
    """The entry script, as a process: usage, the greeting, and the polars result."""
    usage = _main_py(app_root)
    assert usage.returncode == 0
    assert "COMMAND is one of the following" in usage.stdout
    assert _main_py(app_root, "say-hello", "--name", "alice").stdout == "Hello alice!\n"
    assert "  blue 6\n  red 9\n" in _main_py(app_root, "show-deps").stdout


def test_main_py_keeps_fire_exit_codes(app_root):
    assert _main_py(app_root, "say-hello").returncode == 2


def test_broken_native_runtime_is_one_line(app_root):
    """Forcing a polars runtime that is not installed fails cleanly: one line, exit 1."""
    failed = _main_py(app_root, "show-deps", env={**os.environ, "POLARS_FORCE_PKG": "64"})
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1].startswith("error: polars cannot load its native runtime")
    assert "Traceback" not in failed.stderr


def test_help_never_waits_on_a_pager(app_root):
    """With a terminal for input but a pipe for output, help is printed, not paged."""
    controller, terminal = pty.openpty()
    try:
        # A pager that would hang the test, were fire to start one.
        env = {**os.environ, "PAGER": "sleep 600"}
        shown = _main_py(app_root, "say-hello", "--help", stdin=terminal, env=env)
    finally:
        os.close(controller)
        os.close(terminal)
    assert "POSITIONAL ARGUMENTS" in shown.stdout + shown.stderr


@pytest.mark.skipif(
    not (Path(sys.executable).parent / "my-project").exists(),
    reason="the app is not installed as a distribution here (the image copies its source)",
)
def test_console_script():
    script = Path(sys.executable).parent / "my-project"
    greeted = subprocess.run([script, "say-hello", "--name", "bob"], capture_output=True, text=True)
    assert greeted.stdout == "Hello bob!\n"
