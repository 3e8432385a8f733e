"""Automations logic that needs no database: Jinja templates of actions (``templates``).

A pure package: it imports neither ``deputy.db`` nor ``deputy.services``, so the wire models
(``deputy.schemas.actions``) and, later, the engine can both use it.
"""
