"""The mechanics behind tasks.py, one module a job; tasks.py itself holds the workflow."""
