"""Why a record could not be mapped — precise enough to dead-letter it with a reason."""
from __future__ import annotations

from collections.abc import Sequence

Path = tuple[str | int, ...]


class MappingError(Exception):
    """A record cannot be mapped: the engine dead-letters it with this reason.

    ``code`` is one of :data:`CODES`; ``yaml_path`` is the key path of the mapping
    rule in the config file (e.g. ``('entities', 'account', 'systems', 'zoho',
    'fields', 'industry')``) so the message can point the admin at the line to fix.
    ``others`` holds further problems found in the same record.
    """

    def __init__(
        self,
        entity: str,
        system: str,
        field: str | None,
        code: str,
        message: str,
        yaml_path: Path = (),
        others: Sequence[MappingError] = (),
    ) -> None:
        self.entity = entity
        self.system = system
        self.field = field
        self.code = code
        self.message = message
        self.yaml_path = tuple(yaml_path)
        self.others = list(others)
        super().__init__(self.describe())

    def describe(self) -> str:
        where = f"{self.entity}.{self.field}" if self.field else self.entity
        text = f"{where} ({self.system}): {self.message} [{self.code}]"
        if self.others:
            text += f" (+{len(self.others)} more: " + "; ".join(o.describe() for o in self.others) + ")"
        return text

    def as_dict(self) -> dict[str, object]:
        """For the dead-letter table and the audit log."""
        return {
            "entity": self.entity,
            "system": self.system,
            "field": self.field,
            "code": self.code,
            "message": self.message,
            "yaml_path": ".".join(str(p) for p in self.yaml_path),
            "others": [o.as_dict() for o in self.others],
        }


#: Error codes a MappingError carries.
CODES = {
    "required": "a required field has no value",
    "unmapped_value": "a value has no entry in its value map and the map's policy is 'error'",
    "conversion": "a system value has the wrong shape for its converter (not a number, not a date…)",
    "transform": "a transform failed at run time",
    "invalid_value": "the value does not fit the canonical field's type",
}
