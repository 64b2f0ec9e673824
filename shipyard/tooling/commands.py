"""Running commands for the tasks: quiet probes, one-line failures, and user text split safely."""

import shlex
import sys

from invoke import Context, Exit, Result
from invoke.exceptions import CommandTimedOut


def probe(c: Context, command: str, timeout: int = 30) -> Result:
    """Run a read-only COMMAND quietly, even under --dry; failure is an answer, not an error."""
    try:
        return c.run(command, hide=True, warn=True, dry=False, in_stream=False, timeout=timeout)
    except CommandTimedOut as timed_out:
        return timed_out.result


# How many of a hidden command's last lines are shown where it fails.
TAIL = 5


def ok(result: Result, what: str, fix: str) -> Result:
    """Pass RESULT on; when its command failed, end with one line: WHAT failed, how to FIX it.
    Where the command's errors were hidden, its own last lines come first, and the line
    names the last of them: the cause is the command's to say, not a guess of ours."""
    if result.failed:
        said = shown(result)
        raise Exit(f"error: {what} failed (exit {result.exited}){said}. {fix}", code=result.exited)
    return result


def shown(result: Result) -> str:
    """Where RESULT's command failed with its errors hidden: its last lines, written to stderr
    now, and ": THE LAST ONE" for the line that ends the task; else ""."""
    hidden = result.hide or ()
    if "stderr" not in hidden or not result.failed:
        return ""
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    sys.stderr.write("".join(f"{line}\n" for line in lines[-TAIL:]))
    return f": {lines[-1].strip().rstrip('.')}" if lines else ""


def split(cmd: str, what: str = "--cmd") -> list[str]:
    """Split user text (WHAT names it in an error) into arguments like a shell would, without
    ever running one."""
    try:
        return shlex.split(cmd)
    except ValueError as error:
        raise Exit(f"error: cannot split {what} {cmd!r}: {error}. Balance its quotes.") from None


def confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise Exit(f"error: {question} needs an answer, and there is no terminal. Add --yes.")
    return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}
