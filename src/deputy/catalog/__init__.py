"""The catalogs a fresh server offers, taken from Prefect's own distribution (the ``ui`` extra).

Prefect 3.9.1 ships some of its catalogs as data files (the collection block types, the worker
metadata view) and builds the rest from its Python classes at start (its system block types
and the blocks in the SDK's registry). deputy reads the files where they lie
(:mod:`~deputy.catalog.files`), and has the rest written once by a subprocess that imports
Prefect (:mod:`~deputy.catalog.generate`, cached under ``DEPUTY_HOME`` by
:mod:`~deputy.catalog.cache`): deputy's own process never imports ``prefect``. Pure: no
database here (``services/blocks/catalog.py`` registers the block catalog).
"""
