"""Alembic migrations of the case database (:mod:`rules.db`); :func:`rules.db.connect` runs them.

A change to a table in :mod:`rules.db` comes with a revision here, so a database made by an
earlier forewarn is upgraded on open instead of refused. To write one (from the repository root)::

    alembic -c rules/migrations/alembic.ini revision --autogenerate -m "what changed"

then read the generated file in ``versions/`` (it is a draft: check types and defaults) and name
it ``NNNN_what.py`` after the last one. See docs/rules.md, "Case database".
"""
