"""Suite-wide rules.

In CI (``CI=true``) a test that needs PostgreSQL or MariaDB must run: a skip of
such a test is turned into a failure, so a missing database cannot pass as green.
"""
from __future__ import annotations

import os

import pytest

DB_MARKERS = ("postgres", "mariadb")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and any(item.get_closest_marker(m) for m in DB_MARKERS):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: database test skipped in CI ({report.longrepr})"
