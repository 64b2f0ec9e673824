"""my-project: a small command-line app whose dependencies are native code."""
