"""JSON Schema of the configuration file, for editor completion (yaml-language-server).

System blocks are a ``oneOf`` over the installed connector plugins, each with its
``type`` fixed, so an editor completes the right settings for ``type: zoho``.
"""
from __future__ import annotations

from typing import Any

from connectors import registry

from .schema import CrmsyncConfig


def config_json_schema() -> dict[str, Any]:
    schema = CrmsyncConfig.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.setdefault("$defs", {})
    variants = []
    for type_name, plugin in sorted(registry.plugins().items()):
        sub = plugin.settings_model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        sub.setdefault("properties", {})
        sub["properties"] = {"type": {"const": type_name, "description": plugin.description}, **sub["properties"]}
        sub["required"] = ["type", *sub.get("required", [])]
        sub["title"] = f"{type_name} system"
        key = f"system_{type_name}"
        defs[key] = sub
        variants.append({"$ref": f"#/$defs/{key}"})
    schema["properties"]["systems"] = {
        "type": "object",
        "description": "Named system instances; `type` picks the connector.",
        "additionalProperties": {"oneOf": variants} if variants else {"type": "object"},
    }
    defs.pop("SystemConfig", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "crmsync configuration"
    return schema
