"""shipyard: the task collection that takes a poetry app from a laptop to a small, tested,
signed container image. A project takes it with `inv adopt` (tooling/adoption.py)."""

__version__ = "1.0.0"
