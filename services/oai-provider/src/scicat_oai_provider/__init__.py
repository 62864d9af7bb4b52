"""scicat-oai-provider service."""
