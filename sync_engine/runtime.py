"""Everything one process needs to sync: the config, the state store, the
connectors and the compiled mappings — built once, shared by every flow, webhook
job and ops route (so each system's rate-limit budget is shared too).
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path

from config.schema import CrmsyncConfig, FlowConfig
from connectors import registry
from connectors.base import Connector, WebhookVerifier
from connectors.errors import ConnectorConfigError
from mapping.compiler import MappingSet

from .derive import compile_triggers
from .metrics import Metrics
from .state import migrate
from .state.db import StateStore
from .token_cache import StateTokenCache

log = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        config: CrmsyncConfig,
        *,
        store: StateStore | None = None,
        connectors: Mapping[str, Connector] | None = None,
        metrics: Metrics | None = None,
        base_dir: str | Path | None = None,
        migrate_on_start: bool = True,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.store = store or StateStore.open(config.state.url)
        if migrate_on_start:
            migrate.upgrade(self.store.engine)
        self.mappings = MappingSet.from_config(config, base_dir=base_dir)
        self.triggers = compile_triggers(config)
        self.connectors: dict[str, Connector] = dict(connectors or {})
        for name, system in config.systems.items():
            if name not in self.connectors:
                plugin = registry.get(system.type)
                self.connectors[name] = plugin.create(name, system.settings, observer=self.metrics)
        self.token_cache = StateTokenCache.for_store(self.store)
        if self.token_cache is not None:
            owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            for connector in self.connectors.values():
                connector.share_tokens(self.token_cache, owner)
        self._verifiers: dict[str, WebhookVerifier | None] = {}
        self._opened = False

    # -- life cycle ----------------------------------------------------
    async def open(self) -> None:
        if not self._opened:
            for connector in self.connectors.values():
                await connector.open()
            self._opened = True

    async def close(self) -> None:
        if self._opened:
            for connector in self.connectors.values():
                try:
                    await connector.close()
                except Exception:  # noqa: BLE001 - closing must not hide the real outcome
                    log.exception("closing %s failed", connector.name)
            self._opened = False
        if self.token_cache is not None:
            self.token_cache.close()

    async def __aenter__(self) -> Runtime:
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- lookups ---------------------------------------------------------
    def connector(self, system: str) -> Connector:
        return self.connectors[system]

    def flow(self, name: str) -> FlowConfig:
        return self.config.flows[name]

    def flows_in_order(self, names: list[str] | None = None) -> list[str]:
        """Enabled flows, referenced entities first (partners before accounts before contacts…)."""
        wanted = [n for n, f in self.config.flows.items() if f.enabled and (names is None or n in names)]
        order = self.mappings.dependency_order({self.config.flows[n].entity for n in wanted})
        rank = {entity: i for i, entity in enumerate(order)}
        return sorted(wanted, key=lambda n: (rank.get(self.config.flows[n].entity, 99), n))

    def flows_for(self, system: str, object: str) -> list[str]:
        """Webhook-enabled flows that read ``object`` of ``system``."""
        out = []
        for name, flow in self.config.flows.items():
            if not flow.enabled or not flow.webhooks or system not in flow.systems:
                continue
            if flow.direction == "one_way" and flow.source != system:
                continue
            try:
                mapper = self.mappings.mapper(flow.entity, system)
            except KeyError:
                continue
            if mapper.object == object:
                out.append(name)
        return out

    def verifier(self, system: str) -> WebhookVerifier | None:
        if system not in self._verifiers:
            spec = self.config.systems.get(system)
            plugin = registry.plugins().get(spec.type) if spec else None
            try:
                self._verifiers[system] = (
                    plugin.webhook_verifier(system, spec.settings) if plugin and plugin.webhook_verifier else None
                )
            except ConnectorConfigError as exc:
                # A system set up for polling only (e.g. Fxiaoke without notifications): no receiver, so 404.
                log.info("no webhook receiver for %s: %s", system, exc)
                self._verifiers[system] = None
        return self._verifiers[system]
