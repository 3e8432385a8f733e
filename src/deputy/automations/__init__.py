"""Automations logic that needs no database: Jinja templates of actions (``templates``), and
the evaluation core of triggers: which events an event trigger sees (``matching``), its
counting buckets (``buckets``), compound and sequence triggers (``composites``) and the
firings they produce (``firings``).

A pure package: it imports neither ``deputy.db`` nor ``deputy.services``, and reads no clock
(every time is passed in), so the wire models (``deputy.schemas.actions``) and the engine can
both use it.
"""
