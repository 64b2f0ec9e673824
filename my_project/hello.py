"""The app's everyday command: it must start fast, so it imports nothing heavy."""


def say_hello(name: str) -> None:
    """Greet NAME."""
    print(f"Hello {name}!")
