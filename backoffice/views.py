"""Admin pages beyond list and detail: processing overview, import upload, re-index, thumbnails.

Every write here calls the same code as the management commands (``catalog.importers``,
``catalog.services.requeue_images``, ``search.tasks.enqueue_reindex``), so the admin cannot drift from
what ``import_products`` and ``index`` do. The views are mounted by ``backoffice.admin`` through
``AdminSite.admin_view``, which sends anyone who is not active staff to the login page.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from catalog import importers, selectors, services, thumbnails
from catalog.models import Garment, ImageStatus, ProductImage
from search.tasks import enqueue_reindex

MAX_ROW_ERRORS_SHOWN = 50
LATEST_ERRORS_SHOWN = 20


def _require(request, *perms: str) -> None:
    if not request.user.has_perms(perms):
        raise PermissionDenied


def _context(request, model_admin, title: str, **extra) -> dict:
    return {**model_admin.admin_site.each_context(request), "title": title, "opts": model_admin.opts, **extra}


def _queued_message(count: int) -> str:
    if settings.LOOKALIKE_PROCESS_ON_UPLOAD:
        return f"{count} photo(s) queued for processing; the worker (manage.py qcluster) picks them up."
    return (
        f"{count} photo(s) set back to pending. Background processing is off (LOOKALIKE_PROCESS_ON_UPLOAD=0): "
        "run manage.py index to process them."
    )


# --- processing ---------------------------------------------------------------------------------


def queue_length() -> int | None:
    """Tasks waiting in django-q2's broker (ORM or Redis); None when the broker cannot be asked."""
    from django_q.brokers import get_broker

    try:
        return get_broker().queue_size()
    except Exception:  # a Redis outage must not take the overview page down with it
        return None


def processing_overview(request, model_admin):
    """Where processing stands: counts by status, queue, last hour's throughput and the latest errors."""
    _require(request, "catalog.view_productimage")
    since = timezone.now() - timedelta(hours=1)
    counts = selectors.status_counts()
    context = _context(
        request,
        model_admin,
        "Processing overview",
        status_counts=[(ImageStatus(status).label, status, n) for status, n in counts.items()],
        total_images=sum(counts.values()),
        queue_length=queue_length(),
        last_hour=selectors.images_finished_since(since),
        latest_errors=selectors.latest_failed_images(LATEST_ERRORS_SHOWN),
        process_on_upload=settings.LOOKALIKE_PROCESS_ON_UPLOAD,
        can_reprocess=request.user.has_perm("catalog.change_productimage"),
    )
    return TemplateResponse(request, "admin/lookalike/processing_overview.html", context)


def reprocess_images(request, image_ids) -> int:
    """The admin's "reprocess": the service the index command uses, with its on-commit announcement."""
    count = services.requeue_images(image_ids)
    messages.success(request, _queued_message(count))
    return count


@require_POST
def reprocess_failed(request, model_admin):
    _require(request, "catalog.change_productimage")
    image_ids = selectors.image_ids_by_status(ImageStatus.FAILED)
    if image_ids:
        reprocess_images(request, image_ids)
    else:
        messages.info(request, "No failed photos to reprocess.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("admin:catalog_productimage_changelist")
    return HttpResponseRedirect(target)


def reindex_all(request, model_admin):
    """Confirm, then requeue every photo for the current model (``manage.py index --all``, queued)."""
    _require(request, "catalog.change_productimage")
    if request.method == "POST":
        count = enqueue_reindex(all_images=True)
        messages.success(request, f"Re-index started: {count} photo(s) queued for the current model.")
        return HttpResponseRedirect(reverse("admin:catalog_productimage_overview"))
    context = _context(request, model_admin, "Re-index every photo", total_images=ProductImage.objects.count())
    return TemplateResponse(request, "admin/lookalike/reindex_confirm.html", context)


# --- import -------------------------------------------------------------------------------------


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        help_text="A products.json or CSV file, the same format as manage.py import_products. "
        "Images must be http(s) URLs (an uploaded file has no folder to hold photos)."
    )
    shop = forms.CharField(
        required=False, max_length=200, help_text="Shop for rows that do not name one (like --shop)."
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        suffix = Path(upload.name).suffix.lower()
        if suffix not in {".json", ".csv"}:
            raise forms.ValidationError(f"Unsupported file type {suffix or '(none)'}: upload a .json or .csv file.")
        if upload.size > settings.MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"The file is larger than {settings.MAX_UPLOAD_BYTES:,} bytes.")
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError(f"The file is not UTF-8 text (byte {exc.start} cannot be read).") from exc
        try:
            self.records = importers.parse_records(text, suffix=suffix)
        except importers.ImportFileError as exc:
            raise forms.ValidationError(f"Nothing was imported: {exc}") from exc
        return upload


def import_products(request, model_admin):
    """Upload form for ``manage.py import_products``: a file-level problem refuses the whole file (nothing
    written); row problems are listed one message each while the good rows land."""
    _require(request, "catalog.add_product", "catalog.add_productimage")
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        report = importers.import_records(form.records, base_dir=None, default_shop=form.cleaned_data["shop"])
        level = messages.WARNING if report.errors else messages.SUCCESS
        messages.add_message(request, level, f"Import of {form.cleaned_data['file'].name}: {report.summary()}.")
        for error in report.errors[:MAX_ROW_ERRORS_SHOWN]:
            messages.error(request, str(error))
        if len(report.errors) > MAX_ROW_ERRORS_SHOWN:
            messages.error(request, f"... and {len(report.errors) - MAX_ROW_ERRORS_SHOWN} more row(s) with errors.")
        return HttpResponseRedirect(reverse("admin:catalog_product_import"))
    context = _context(request, model_admin, "Import products", form=form, max_bytes=settings.MAX_UPLOAD_BYTES)
    return TemplateResponse(request, "admin/lookalike/import_products.html", context)


# --- thumbnails ---------------------------------------------------------------------------------


def _file_response(path: Path, *, content_type: str, immutable: bool) -> FileResponse:
    response = FileResponse(path.open("rb"), content_type=content_type)
    # The URL names the exact rendering (photo id, garment set), so browsers may keep it for good.
    response["Cache-Control"] = "private, max-age=31536000, immutable" if immutable else "private, no-cache"
    return response


def image_thumbnail(request, model_admin, image_id: int, variant: str):
    """A photo's thumbnail or overlay, rendered on first request and served from disk afterwards."""
    _require(request, "catalog.view_productimage")
    spec = thumbnails.IMAGE_VARIANTS.get(variant)
    if spec is None:
        raise Http404("unknown thumbnail variant")
    image = get_object_or_404(ProductImage, pk=image_id)
    garments = list(selectors.garments_for_display().filter(image=image)) if spec.overlay else []
    try:
        path = thumbnails.image_thumbnail(image, variant, garments)
    except thumbnails.ThumbnailUnavailable as exc:
        raise Http404(str(exc)) from exc
    current = not spec.overlay or request.GET.get("v") == thumbnails.garments_key([g.pk for g in garments])
    return _file_response(path, content_type="image/jpeg", immutable=current)


def garment_thumbnail(request, model_admin, garment_id: int, variant: str):
    _require(request, "catalog.view_productimage")
    if variant not in thumbnails.GARMENT_VARIANTS:
        raise Http404("unknown thumbnail variant")
    garment = get_object_or_404(selectors.garments_for_display().select_related("image"), pk=garment_id)
    rank = Garment.objects.filter(image_id=garment.image_id, pk__lt=garment.pk).count()
    try:
        path = thumbnails.garment_thumbnail(garment, variant, colour_index=rank)
    except thumbnails.ThumbnailUnavailable as exc:
        raise Http404(str(exc)) from exc
    content_type = "image/png" if path.suffix == ".png" else "image/jpeg"
    return _file_response(path, content_type=content_type, immutable=True)


def image_thumbnail_url(image_id: int, variant: str, garment_ids=()) -> str:
    url = reverse("admin:catalog_productimage_thumb", args=[image_id, variant])
    if thumbnails.IMAGE_VARIANTS[variant].overlay:
        url += f"?v={thumbnails.garments_key(list(garment_ids))}"
    return url


def garment_thumbnail_url(garment: Garment | int, variant: str) -> str:
    pk = garment if isinstance(garment, int) else garment.pk
    return reverse("admin:catalog_garment_thumb", args=[pk, variant])
