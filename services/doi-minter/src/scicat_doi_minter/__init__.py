"""scicat-doi-minter service."""
