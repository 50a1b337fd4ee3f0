"""Find every secret value in a loaded configuration (for log redaction)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr


def iter_secrets(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, SecretBytes):
        yield value.get_secret_value().decode("utf-8", "replace")
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from iter_secrets(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_secrets(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from iter_secrets(item)
    elif isinstance(value, str) and "://" in value and "@" in value:
        # A database URL with a password: redact the password part.
        from sqlalchemy.engine import make_url

        try:
            password = make_url(value).password
        except Exception:  # noqa: BLE001 - not a URL after all
            return
        if password:
            yield str(password)
