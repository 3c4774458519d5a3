"""The Django admin as the shop operator's daily tool: products, photos, garments and processing.

Catalog data comes from imports and crawls, so products and photos are view-only here; the writes the
admin does offer (import upload, reprocess, re-index) go through the services the commands use, see
``backoffice.views``. List pages read one annotated query per page (``catalog.selectors``) and show
thumbnails rendered once to disk (``catalog.thumbnails``), so they stay fast on large catalogs.
"""

from __future__ import annotations

from functools import partial

from django.contrib import admin
from django.db.models import Prefetch
from django.urls import path, reverse
from django.utils.html import format_html

from backoffice import views as admin_views
from catalog import selectors, thumbnails
from catalog.models import Garment, ImageStatus, Product, ProductImage
from catalog.selectors import ProductState
from search.pipeline.base import PipelineError
from search.query import similar_to_product

STATUS_CLASSES = {
    ImageStatus.PENDING: "pending",
    ImageStatus.PROCESSING: "pending",
    ImageStatus.DONE: "done",
    ImageStatus.FAILED: "failed",
    ProductState.NO_IMAGES: "none",
    ProductState.IN_PROGRESS: "pending",
}


def _badge(value: str, label: str):
    return format_html('<span class="lk-badge lk-{}">{}</span>', STATUS_CLASSES.get(value, value), label)


def _img(url: str, alt: str, size: int, css_class: str = "lk-thumb"):
    return format_html(
        '<img src="{}" alt="{}" class="{}" loading="lazy" style="max-width:{}px;max-height:{}px">',
        url,
        alt,
        css_class,
        size,
        size,
    )


def _garments_prefetch() -> Prefetch:
    """Garment ids per photo (for the overlay cache key), without loading any vector."""
    return Prefetch("garments", queryset=Garment.objects.only("pk", "image_id").order_by())


def _overlay(image: ProductImage, variant: str, size: int):
    garment_ids = [g.pk for g in image.garments.all()]  # prefetched by the callers' querysets
    url = admin_views.image_thumbnail_url(image.pk, variant, garment_ids)
    return _img(url, f"Photo {image.pk} with its garments", size, "lk-thumb lk-overlay")


class ReadOnlyAdminMixin:
    """Catalog rows come from imports, crawls and the pipeline: edited at the source and re-imported,
    never by hand here, so no add, change or delete (the services stay the only writers)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AdminMedia:
    css = {"all": ["backoffice/admin.css"]}


class ProductStateFilter(admin.SimpleListFilter):
    title = "processing state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return ProductState.choices

    def queryset(self, request, queryset):
        return queryset.filter(state=self.value()) if self.value() else queryset


class ProductImageInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ProductImage
    fields = ("overlay", "position", "status_badge", "attempts", "error", "processed_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related(_garments_prefetch())

    @admin.display(description="photo and garments")
    def overlay(self, image):
        return _overlay(image, "overlay", 360)

    @admin.display(description="status")
    def status_badge(self, image):
        return _badge(image.status, image.get_status_display())


@admin.register(Product)
class ProductAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "thumbnail",
        "name",
        "sku",
        "price_display",
        "category",
        "shop",
        "images",
        "state_badge",
    )
    list_display_links = ("thumbnail", "name")
    list_filter = ("shop", "category", ProductStateFilter)
    search_fields = ("name", "sku", "=external_id", "brand")
    list_per_page = 50
    inlines = [ProductImageInline]
    fieldsets = [
        (None, {"fields": ("name", "shop", "brand", "category", "colour", "availability")}),
        ("Price", {"fields": ("price", "currency")}),
        ("Identifiers", {"fields": ("external_id", "sku", "gtin", "mpn", "source_url")}),
        ("Description", {"fields": ("description",), "classes": ("collapse",)}),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    ]
    change_list_template = "admin/catalog/product/change_list.html"
    change_form_template = "admin/catalog/product/change_form.html"
    Media = AdminMedia

    def get_queryset(self, request):
        return selectors.products_for_admin()

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "import/", view(partial(admin_views.import_products, model_admin=self)), name="catalog_product_import"
            ),
            path("reindex/", view(partial(admin_views.reindex_all, model_admin=self)), name="catalog_product_reindex"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self._detail_context(obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def _detail_context(self, product: Product) -> dict:
        garments = list(selectors.garments_of_product(product.pk))
        ranks: dict[int, int] = {}
        for garment in garments:  # ordered by photo, then id: the rank gives the overlay's colour
            rank = ranks[garment.image_id] = ranks.get(garment.image_id, -1) + 1
            garment.colour = "#{:02x}{:02x}{:02x}".format(*thumbnails.garment_colour(rank))
            garment.overlay_url = admin_views.garment_thumbnail_url(garment, "overlay")
            garment.cutout_url = admin_views.garment_thumbnail_url(garment, "cutout") if garment.cutout else ""
        neighbours, neighbours_error = [], ""
        try:
            neighbours = similar_to_product(product.pk, k=8)
        except PipelineError as exc:  # e.g. the configured model cannot load: the page still shows
            neighbours_error = str(exc)
        neighbours = [
            {
                "match": match,
                "thumb_url": admin_views.image_thumbnail_url(match.image.pk, "thumb"),
                "admin_url": reverse("admin:catalog_product_change", args=[match.product.pk]),
            }
            for match in neighbours
        ]
        return {"garments": garments, "neighbours": neighbours, "neighbours_error": neighbours_error}

    @admin.display(description="photo")
    def thumbnail(self, product):
        if not product.first_image_id:
            return "-"
        return _img(admin_views.image_thumbnail_url(product.first_image_id, "thumb"), product.name, 64)

    @admin.display(description="price", ordering="price")
    def price_display(self, product):
        return "-" if product.price is None else f"{product.price} {product.currency}"

    @admin.display(description="photos", ordering="image_count")
    def images(self, product):
        return product.image_count

    @admin.display(description="processing", ordering="state")
    def state_badge(self, product):
        state = ProductState(product.state)
        if state == ProductState.FAILED:
            label = f"{product.images_failed} of {product.image_count} failed"
        elif state == ProductState.IN_PROGRESS:
            label = f"{product.images_done} of {product.image_count} done"
        else:
            label = state.label
        return _badge(state, label)


class GarmentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Garment
    fields = ("label", "score", "box_display", "overlay", "cutout_preview", "space")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return selectors.garments_for_display().select_related("space")

    @admin.display(description="box (x0, y0, x1, y1)")
    def box_display(self, garment):
        return ", ".join(map(str, garment.box))

    @admin.display(description="mask and box")
    def overlay(self, garment):
        return _img(admin_views.garment_thumbnail_url(garment, "overlay"), garment.label, 240, "lk-thumb lk-overlay")

    @admin.display(description="cutout")
    def cutout_preview(self, garment):
        if not garment.cutout:
            return "-"
        return _img(admin_views.garment_thumbnail_url(garment, "cutout"), f"{garment.label} cutout", 200)


@admin.register(ProductImage)
class ProductImageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "thumbnail",
        "id",
        "product_link",
        "position",
        "status_badge",
        "attempts",
        "garment_count",
        "error_short",
        "processed_at",
    )
    list_display_links = ("thumbnail", "id")
    list_filter = ("status",)
    search_fields = ("=id", "product__name", "product__sku")
    list_per_page = 50
    actions = ["reprocess_selected"]
    inlines = [GarmentInline]
    fieldsets = [
        (None, {"fields": ("overlay", "product_link", "original")}),
        ("Processing", {"fields": ("status_badge", "attempts", "error", "processing_started_at", "processed_at")}),
        ("File", {"fields": ("source_url", "sha256", "width", "height", "position", "created_at")}),
    ]
    readonly_fields = ("overlay", "product_link", "original", "status_badge")
    change_list_template = "admin/catalog/productimage/change_list.html"
    Media = AdminMedia

    def get_queryset(self, request):
        return selectors.images_for_admin().prefetch_related(_garments_prefetch())

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "overview/",
                view(partial(admin_views.processing_overview, model_admin=self)),
                name="catalog_productimage_overview",
            ),
            path(
                "reprocess-failed/",
                view(partial(admin_views.reprocess_failed, model_admin=self)),
                name="catalog_productimage_reprocess_failed",
            ),
            path(
                "thumbs/<int:image_id>/<slug:variant>/",
                view(partial(admin_views.image_thumbnail, model_admin=self), cacheable=True),
                name="catalog_productimage_thumb",
            ),
            path(
                "thumbs/garment/<int:garment_id>/<slug:variant>/",
                view(partial(admin_views.garment_thumbnail, model_admin=self), cacheable=True),
                name="catalog_garment_thumb",
            ),
            *super().get_urls(),
        ]

    def has_reprocess_permission(self, request):
        return request.user.has_perm("catalog.change_productimage")

    @admin.action(description="Reprocess selected photos", permissions=["reprocess"])
    def reprocess_selected(self, request, queryset):
        admin_views.reprocess_images(request, list(queryset.values_list("pk", flat=True)))

    @admin.display(description="photo")
    def thumbnail(self, image):
        return _overlay(image, "overlay-small", 96)

    @admin.display(description="photo with garments")
    def overlay(self, image):
        return _overlay(image, "overlay-large", 900)

    @admin.display(description="original")
    def original(self, image):
        return format_html(
            '<a href="{}">{} ({}&times;{} px)</a>', image.file.url, image.file.name, image.width, image.height
        )

    @admin.display(description="product", ordering="product__name")
    def product_link(self, image):
        url = reverse("admin:catalog_product_change", args=[image.product_id])
        return format_html('<a href="{}">{}</a>', url, image.product.name)

    @admin.display(description="status", ordering="status")
    def status_badge(self, image):
        return _badge(image.status, image.get_status_display())

    @admin.display(description="garments", ordering="garment_count")
    def garment_count(self, image):
        return image.garment_count

    @admin.display(description="error")
    def error_short(self, image):
        return image.error if len(image.error) <= 120 else image.error[:119] + "\u2026"
