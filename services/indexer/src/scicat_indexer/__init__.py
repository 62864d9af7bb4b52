"""scicat-indexer service."""
