"""`python -m scicat_doi_minter`: run the service with settings from `DOI_MINTER_*`."""

from scicat_doi_minter.app import main

main()
