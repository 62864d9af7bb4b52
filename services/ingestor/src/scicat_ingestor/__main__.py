"""`python -m scicat_ingestor`: the service on `INGESTOR_HTTP__HOST`:`INGESTOR_HTTP__PORT`."""

from scicat_ingestor.app import main

if __name__ == "__main__":
    main()
