"""scicat-pipeline: the CLI, the embedded stack and the local stand-ins of outside services."""
