"""Registers the SQL interface-table connector under the ``crmsync.connectors`` entry-point group.

No emulator: the real databases (PostgreSQL, MariaDB, SQLite in tests) are the
"emulator"; :mod:`connectors.sql.demo_schema` creates example ERP tables and
simulates the ERP's import job.
"""
from __future__ import annotations

from connectors.base import ConnectorPlugin

from .connector import SqlConnector
from .settings import SqlSettings
from .webhook import SqlWebhookVerifier

plugin = ConnectorPlugin(
    type="sql",
    description="ERP database via SQLAlchemy: reads tables/views, writes interface (staging) tables only",
    settings_model=SqlSettings,
    create=lambda name, settings, observer=None: SqlConnector(name, settings, observer),
    webhook_verifier=lambda name, settings: SqlWebhookVerifier(name, settings),
    emulator_main=None,
)
