"""Staff REST API with the admin's model permissions: start a crawl (queued for the worker), follow its progress."""

from __future__ import annotations

from django.db import transaction
from rest_framework import generics, serializers, status
from rest_framework.permissions import DjangoModelPermissions, IsAdminUser
from rest_framework.response import Response
from rest_framework.reverse import reverse

from scraping import services
from scraping.models import CrawlPage, CrawlRun, PageStatus
from scraping.options import CrawlOptions, OptionsError
from scraping.tasks import enqueue_crawl

MAX_SEED_URLS = 1000


class CrawlRunPermissions(DjangoModelPermissions):
    """The admin's permissions on CrawlRun: view to follow runs, add to start one (a staff account without
    them gets 403, as in the admin)."""

    perms_map = {**DjangoModelPermissions.perms_map, "GET": ["%(app_label)s.view_%(model_name)s"]}
    perms_map["HEAD"] = perms_map["GET"]


# Staff status and the model permission, both: a user with a permission but no staff status stays out too.
CRAWL_PERMISSIONS = [IsAdminUser, CrawlRunPermissions]


class CrawlPageSerializer(serializers.ModelSerializer):
    class Meta:
        model = CrawlPage
        fields = ["url", "final_url", "status", "http_status", "error", "product", "images_failed", "image_errors"]


class CrawlRunSerializer(serializers.ModelSerializer):
    problems = serializers.SerializerMethodField(help_text="Pages that failed, were refused or lost images.")
    url = serializers.SerializerMethodField()

    class Meta:
        model = CrawlRun
        fields = [
            "id",
            "url",
            "status",
            "seed_urls",
            "options",
            "resumed_from",
            "created_at",
            "started_at",
            "finished_at",
            "stop_reason",
            "error",
            *services.RUN_COUNTERS,
            "crawl_seconds",
            "slices",
            "problems",
        ]
        read_only_fields = fields

    def get_url(self, run: CrawlRun) -> str:
        return reverse("scraping:crawl-detail", args=[run.pk], request=self.context.get("request"))

    def get_problems(self, run: CrawlRun) -> list[dict]:
        pages = run.pages.filter(status__in=[PageStatus.FAILED, PageStatus.REFUSED]) | run.pages.filter(
            images_failed__gt=0
        )
        return CrawlPageSerializer(pages.order_by("id")[:200], many=True).data


class StartCrawlSerializer(serializers.Serializer):
    urls = serializers.ListField(child=serializers.URLField(max_length=2000), min_length=1, max_length=MAX_SEED_URLS)
    follow = serializers.BooleanField(required=False)
    link_selector = serializers.CharField(required=False, allow_blank=True, max_length=500)
    next_selector = serializers.CharField(required=False, allow_blank=True, max_length=500)
    max_depth = serializers.IntegerField(required=False)
    max_pages = serializers.IntegerField(required=False)
    concurrency = serializers.IntegerField(required=False)
    delay = serializers.FloatField(required=False)

    def validate(self, attrs):
        try:
            attrs["seed_urls"] = services.clean_seeds(attrs.pop("urls"))
        except services.SeedError as exc:
            raise serializers.ValidationError({"urls": str(exc)}) from exc
        try:
            attrs["options"] = CrawlOptions.build(**attrs_without(attrs, "seed_urls"))
        except OptionsError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return attrs


def attrs_without(attrs: dict, *names: str) -> dict:
    return {key: value for key, value in attrs.items() if key not in names}


class CrawlRunListCreateView(generics.ListCreateAPIView):
    """GET: recent runs. POST ``{"urls": [...], "follow": true, ...}``: queue a crawl (202 with its status URL)."""

    permission_classes = CRAWL_PERMISSIONS
    queryset = CrawlRun.objects.all()

    def get_serializer_class(self):
        return StartCrawlSerializer if self.request.method == "POST" else CrawlRunSerializer

    def create(self, request, *args, **kwargs):
        start = StartCrawlSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        with transaction.atomic():
            run = services.create_run(
                seed_urls=start.validated_data["seed_urls"],
                options=start.validated_data["options"],
                requested_by=request.user,
            )
        enqueue_crawl(run)
        run.refresh_from_db()
        data = CrawlRunSerializer(run, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


class CrawlRunDetailView(generics.RetrieveAPIView):
    """A run with its counters and the pages that need attention."""

    permission_classes = CRAWL_PERMISSIONS
    queryset = CrawlRun.objects.all()
    serializer_class = CrawlRunSerializer
