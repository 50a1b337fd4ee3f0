"""Zoho CRM: the connector (OAuth refresh grant, records, notifications, discovery)
and a local emulator of the REST API (:mod:`connectors.zoho.emulator`).

Only :mod:`connectors.zoho.plugin` is imported by the engine; it keeps imports light
so that listing plugins never loads FastAPI or the emulator.
"""
