"""Keyword search kept current by PostgreSQL itself: two generated columns on catalog_product and their GIN indexes.

- ``search_document`` (tsvector): name, SKU and brand weigh most (A), then colour and category (B), shop (C),
  description (D). It uses ``lookalike_keywords``, a copy of the language-neutral ``simple`` configuration
  that folds accents (``unaccent``) before indexing, so "Robe écarlate" and "robe ecarlate" match and no
  language's stemmer mangles another language's names.
- ``search_text`` (text): the short fields, accent-folded and lower-cased, for substring matches served by a
  ``pg_trgm`` index (SKU fragments such as "1042-R").

Both are ``GENERATED ALWAYS ... STORED``: every insert or update through any path (ORM, bulk, raw SQL) keeps
them current, with no Python loop. ``catalog_searchword`` is the lexicon of every word indexed (kept by a
trigger on the same writes, with a trigram GiST index): a query word it does not know is a typo candidate,
corrected to its nearest known word ("sattin" -> "satin") in one small index lookup instead of a trigram
comparison against every product. The columns are not on the Django model on purpose (nothing
writes them); ``catalog.keyword`` reads them. The SQL is written out so the migration stays what it shipped as.
"""

from django.contrib.postgres.operations import TrigramExtension, UnaccentExtension
from django.db import migrations

FORWARD = r"""
CREATE FUNCTION lookalike_unaccent(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$;

CREATE TEXT SEARCH CONFIGURATION lookalike_keywords (COPY = pg_catalog.simple);
ALTER TEXT SEARCH CONFIGURATION lookalike_keywords
    ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part WITH public.unaccent, simple;

ALTER TABLE catalog_product ADD COLUMN search_document tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('lookalike_keywords'::regconfig, name || ' ' || sku || ' ' || brand), 'A')
    || setweight(to_tsvector('lookalike_keywords'::regconfig, colour || ' ' || category), 'B')
    || setweight(to_tsvector('lookalike_keywords'::regconfig, shop), 'C')
    || setweight(to_tsvector('lookalike_keywords'::regconfig, left(description, 20000)), 'D')
) STORED;

ALTER TABLE catalog_product ADD COLUMN search_text text GENERATED ALWAYS AS (
    lower(lookalike_unaccent(name || ' ' || sku || ' ' || brand || ' ' || colour || ' ' || category))
) STORED;

CREATE INDEX catalog_product_search_document ON catalog_product USING gin (search_document);
CREATE INDEX catalog_product_search_text_trgm ON catalog_product USING gin (search_text gin_trgm_ops);
CREATE INDEX catalog_product_sku_folded ON catalog_product (lower(lookalike_unaccent(sku)));

CREATE TABLE catalog_searchword (word text PRIMARY KEY);
CREATE INDEX catalog_searchword_trgm ON catalog_searchword USING gist (word gist_trgm_ops);
CREATE FUNCTION catalog_product_remember_words() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog_searchword (word)
        SELECT unnest(tsvector_to_array(NEW.search_document)) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER catalog_product_remember_words
    AFTER INSERT OR UPDATE OF name, sku, brand, colour, category, shop, description ON catalog_product
    FOR EACH ROW EXECUTE FUNCTION catalog_product_remember_words();
INSERT INTO catalog_searchword (word)
    SELECT DISTINCT unnest(tsvector_to_array(search_document)) FROM catalog_product ON CONFLICT DO NOTHING;
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS catalog_product_remember_words ON catalog_product;
DROP FUNCTION IF EXISTS catalog_product_remember_words();
DROP TABLE IF EXISTS catalog_searchword;
DROP INDEX IF EXISTS catalog_product_sku_folded;
ALTER TABLE catalog_product DROP COLUMN IF EXISTS search_text;
ALTER TABLE catalog_product DROP COLUMN IF EXISTS search_document;
DROP TEXT SEARCH CONFIGURATION IF EXISTS lookalike_keywords;
DROP FUNCTION IF EXISTS lookalike_unaccent(text);
"""


class Migration(migrations.Migration):
    dependencies = [("catalog", "0002_halfvec_hnsw_indexes")]

    operations = [
        TrigramExtension(),
        UnaccentExtension(),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
