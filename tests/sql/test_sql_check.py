"""check(): credentials, reachability and configuration problems as typed errors, never leaking the password."""
from __future__ import annotations

import os

import pytest
from sqlalchemy.engine import make_url

from connectors.base import PullRequest
from connectors.emulation.server import free_port
from connectors.errors import AuthError, ConnectorConfigError, TransientError
from connectors.sql.connector import SqlConnector
from connectors.sql.demo_schema import demo_settings
from connectors.sql.settings import SqlSettings

SECRET = "Sup3r-Secret-pw"


def connector_for(url: str, **overrides) -> SqlConnector:
    return SqlConnector("erp", SqlSettings.model_validate(demo_settings(url, connect_timeout_seconds=3, **overrides)))


def assert_no_secret(exc: Exception) -> None:
    assert SECRET not in str(exc) and SECRET not in exc.message and SECRET not in repr(exc.args)


async def test_check_passes_on_a_good_configuration(connector):
    await connector.check()
    assert connector.status()["last_error"] is None
    assert connector.status()["calls"]["calls"] > 0


async def test_missing_table_and_column_are_config_errors(make_connector, erp):
    with pytest.raises(ConnectorConfigError, match="v_no_such_view"):
        await make_connector(objects={"customer": {"table": "v_no_such_view"}}).check()
    with pytest.raises(ConnectorConfigError, match="credit_score"):
        await make_connector(objects={"customer": {"columns": ["cust_no", "credit_score"]}}).check()


@pytest.mark.postgres
async def test_postgres_bad_credentials_unreachable_and_unknown_database():
    server = os.environ.get("CRMSYNC_TEST_DATABASE_URL") or pytest.skip("CRMSYNC_TEST_DATABASE_URL is not set")
    base = make_url(server)
    bad_user = base.set(username="crmsync_no_such_role", password=SECRET).render_as_string(hide_password=False)
    connector = connector_for(bad_user)
    with pytest.raises(AuthError) as caught:
        await connector.check()
    assert_no_secret(caught.value)
    assert "crmsync_no_such_role@127.0.0.1" in caught.value.message
    assert SECRET not in str(connector.status())
    await connector.close()

    nowhere = base.set(host="127.0.0.1", port=free_port(), password=SECRET).render_as_string(hide_password=False)
    connector = connector_for(nowhere)
    with pytest.raises(ConnectorConfigError, match="cannot reach") as caught:
        await connector.check()
    assert_no_secret(caught.value)
    with pytest.raises(TransientError):  # outside check(), an outage is worth retrying
        await anext(aiter(connector.pull(PullRequest(object="customer"))))
    await connector.close()

    missing = base.set(database="crmsync_no_such_database").render_as_string(hide_password=False)
    connector = connector_for(missing)
    with pytest.raises(ConnectorConfigError, match="does not exist"):
        await connector.check()
    await connector.close()


@pytest.mark.mariadb
async def test_mariadb_bad_credentials():
    server = os.environ.get("CRMSYNC_TEST_MYSQL_URL") or pytest.skip("CRMSYNC_TEST_MYSQL_URL is not set")
    bad = make_url(server).set(username="crmsync_nobody", password=SECRET).render_as_string(hide_password=False)
    connector = connector_for(bad)
    with pytest.raises(AuthError, match="refused the login") as caught:
        await connector.check()
    assert_no_secret(caught.value)
    await connector.close()


async def test_sqlite_file_that_cannot_be_opened(tmp_path):
    connector = connector_for(f"sqlite:///{tmp_path}/no/such/dir/erp.db")
    with pytest.raises(ConnectorConfigError, match="cannot reach"):
        await connector.check()
    await connector.close()


async def test_missing_driver_is_a_config_error():
    connector = connector_for("mssql+pyodbc://erp@127.0.0.1/erp?driver=ODBC+Driver+18")
    with pytest.raises(ConnectorConfigError, match="driver"):
        await connector.check()
