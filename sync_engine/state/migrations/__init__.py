"""Alembic migrations of the state database, shipped with the package (see :mod:`sync_engine.state.migrate`)."""
