"""`python -m scicat_oai_provider`: run the service with settings from the environment."""

from scicat_oai_provider.app import main

main()
