"""Fxiaoke (纷享销客 / ShareCRM) OpenAPI connector and its local emulator.

Modules: ``settings`` (config model), ``auth`` (both token generations), ``client``
(envelope, errorCode classification, retries, rate limits), ``paging`` (offset →
keyset and incremental walks), ``writes`` (create/update/changeOwner/invalid+delete),
``discovery``, ``connector`` (the :class:`~connectors.base.Connector`),
``push_open_platform`` / ``push_apl`` (change notifications), ``emulator*`` and
``plugin``. See README.md in this folder.
"""
