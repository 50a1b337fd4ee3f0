"""Connector plugins and the interface the sync engine talks to.

The engine only ever sees :mod:`connectors.base` (records, write operations,
results), :mod:`connectors.errors` and :mod:`connectors.registry`. Everything
about one system — client, auth, paging, webhook verification, emulator — lives
in that system's subpackage.
"""
