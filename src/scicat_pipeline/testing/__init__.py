"""Test helpers shared by every package's tests: embedded servers as fixtures, condition waits.

Loaded as a pytest plugin (`pytest11` entry point), so any test in the workspace can ask for
`kafka`, `kafka_settings`, `mongo_uri`, `database_name`, `opensearch_url`.
"""

from scicat_pipeline.polling import wait_for

__all__ = ["wait_for"]
