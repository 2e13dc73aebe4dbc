"""Verification codes: policy (pure), codes and HMACs, stores, and the service around them.

Module per concept: ``_config`` (settings and their loader), ``_codes`` (codes and keyed HMACs),
``_message`` (the SMS text), ``_policy`` (decisions as pure functions of state and time),
``_engine`` (the policy run over a transactional hash store), ``_stores`` (memory, SQLite),
``_redis`` (Redis, one Lua script per decision), ``_service`` (:class:`VerificationService`),
``_cli`` (``globesms verify``).
"""
