"""Catalog events other apps may react to; the catalog itself knows nothing about who listens."""

from django.dispatch import Signal

# Sent after the transaction that stored new ProductImages commits (or images were requeued), once for
# all the images of that transaction, so a listener can queue them in bulk. Arguments: image_ids (a list).
images_need_processing = Signal()
