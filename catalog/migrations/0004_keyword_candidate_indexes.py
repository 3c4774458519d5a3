"""Indexes for keyword search on large catalogs (issue 13, measured in bench/text_search.py on 100k products).

- ``catalog_product_name_document``: GIN over the full-text vector of the heaviest fields alone (name, SKU,
  brand: the ``A`` part of ``search_document``). A common word ("dress") matches thousands of products; the
  ranking takes a capped set of candidates, name matches first, from this index and ``search_document``'s.
- ``catalog_product_name_folded``: the folded name, so an exact name hit is found by the index however many
  products share its words (the cap must never drop it).
- ``catalog_searchword_trgm`` is rebuilt over the words without digits: the numbers of SKUs were 99.8 % of
  the lexicon at 100k products and made a typo lookup scan them all (300 ms for "sattin"); typos are
  corrected among words, and SKU fragments are matched by the substring index instead.

The expressions are written exactly as ``catalog.keyword`` writes them, so the planner can use them.
"""

from django.db import migrations

FORWARD = r"""
CREATE INDEX catalog_product_name_document ON catalog_product USING gin (
    to_tsvector('lookalike_keywords'::regconfig, name || ' ' || sku || ' ' || brand)
);
CREATE INDEX catalog_product_name_folded ON catalog_product (lower(lookalike_unaccent(name)));
DROP INDEX catalog_searchword_trgm;
CREATE INDEX catalog_searchword_trgm ON catalog_searchword USING gist (word gist_trgm_ops) WHERE word !~ '[0-9]';
"""

BACKWARD = r"""
DROP INDEX IF EXISTS catalog_product_name_document;
DROP INDEX IF EXISTS catalog_product_name_folded;
DROP INDEX IF EXISTS catalog_searchword_trgm;
CREATE INDEX catalog_searchword_trgm ON catalog_searchword USING gist (word gist_trgm_ops);
"""


class Migration(migrations.Migration):
    dependencies = [("catalog", "0003_product_keyword_search")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
