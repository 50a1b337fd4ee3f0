"""SQL interface-table ERP connector (any SQLAlchemy database). See README.md in this folder."""
