"""Local stand-ins of the outside services the pipeline calls, for development and tests.

They speak the real wire protocol (so the production client is what gets tested) and add small,
clearly separated test hooks under `/_standin/` (fault injection, a log of received requests).
"""
