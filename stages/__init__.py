"""The `cvflow` stage commands (Typer): thin wrappers that read params, call the library, write outputs."""
