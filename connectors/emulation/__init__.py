"""Shared parts of the system emulators: fault switches, call counting, the
``/_admin`` API, realistic seed data and a loopback server runner.

The emulators themselves (``connectors/<system>/emulator.py``) own everything
about their system's API contract; this package only holds what is the same in all.
"""
