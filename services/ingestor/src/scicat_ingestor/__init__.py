"""scicat-ingestor service."""
