"""Search-quality evaluation: labelled photos -> the product's own query path -> metrics and a report.

``dataset`` reads a labelled folder, a CSV or the catalog; ``index`` keeps the evaluation's vectors in a
PostgreSQL schema of their own, so the live catalog and its index are never touched; ``runner`` embeds,
indexes and queries one pipeline's configurations; ``session`` runs them all; ``metrics`` is pure
arithmetic; ``report`` writes the JSON and renders the HTML page.
"""
