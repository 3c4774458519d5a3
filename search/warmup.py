"""Warm the models at start, so the first shopper's search is not the one that loads them (7-8 s on CPU)."""

from __future__ import annotations


def warm_up() -> None:
    """Load the configured pipeline and run one small photo (and a text query, with a text tower) through it.
    Meant for the serve command before it accepts requests; errors propagate so the caller decides."""
    from search.management.commands.warmup_models import sample_photo
    from search.pipeline.registry import get_pipeline

    pipeline = get_pipeline()
    pipeline.process_image(sample_photo())
    if pipeline.supports_text:
        pipeline.embed_text(["a red t-shirt"])
