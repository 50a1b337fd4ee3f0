"""Kingdee K/3 Cloud (金蝶云星空) WebAPI connector and its local emulator.

Modules: ``settings`` (config model), ``protocol`` (wire constants), ``session``
(login, cookies, single-flight re-login), ``client`` (one call path with
retries), ``responses`` (``ResponseStatus`` and the wrapped query error),
``paging`` (watermark paging safe against concurrent edits), ``objects``
(rows <-> record data <-> Save models), ``writes`` (Save/BatchSave, Submit,
Audit, Delete -> per-record results), ``discovery``, ``connector``, ``plugin``;
``emulator*`` are the simulator.
"""
