"""Errors of the state store that a user can act on. Their text is safe to print: no password, no traceback needed."""
from __future__ import annotations


class StateStoreError(Exception):
    """Base class; ``str(error)`` is a complete, user-facing message."""


class StateStoreConfigError(StateStoreError):
    """The state URL is malformed or names a database crmsync does not support."""


class StateStoreUnavailable(StateStoreError):
    """The state database cannot be reached or opened (down, wrong host, bad credentials, missing directory)."""


class MigrationError(StateStoreError):
    """The schema cannot be brought to the requested revision (unknown revision, newer database…)."""
