"""The command-line interface: each command of the app, exposed through python-fire."""

import fire

from my_project.deps import show_deps
from my_project.hello import say_hello

COMMANDS = {"show-deps": show_deps, "say-hello": say_hello}


def main(argv: list[str] | None = None) -> None:
    """Run the command that ARGV (default: sys.argv[1:]) names; without one, print usage."""
    # Fire pages help only when stdin and stdout are both terminals; it never waits on a pipe.
    fire.Fire(COMMANDS, command=argv, name="my-project")
