"""The ``voiceseal`` command line (typer)."""
