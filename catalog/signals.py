"""Catalog events other apps may react to; the catalog itself knows nothing about who listens."""

from django.dispatch import Signal

# Sent after the transaction that stored a new ProductImage commits (or the image was requeued).
# Arguments: image_id.
image_needs_processing = Signal()
