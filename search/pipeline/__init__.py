"""The vision pipeline: photo -> garments (box, mask, cutout) -> vectors. The only torch/transformers code.

``registry.get_pipeline()`` builds the configured stages once per process; ``base`` holds the light types.
"""
