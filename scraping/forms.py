"""The admin's "Start a crawl" form."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from scraping import services
from scraping.options import CrawlOptions, OptionsError


class StartCrawlForm(forms.Form):
    urls = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "cols": 100}),
        help_text="One URL a line; lines starting with # are ignored.",
    )
    follow = forms.BooleanField(required=False, help_text="Follow links of listing pages to product pages.")
    link_selector = forms.CharField(required=False, help_text="CSS selector of product links (default: all links).")
    next_selector = forms.CharField(required=False, help_text="CSS selector of the next-page link (default: rel=next).")
    max_pages = forms.IntegerField(required=False, min_value=1, help_text="Default and cap: CRAWL_MAX_PAGES.")
    concurrency = forms.IntegerField(required=False, min_value=1, help_text="Browsers at once (CRAWL_CONCURRENCY).")
    delay = forms.FloatField(required=False, min_value=0, help_text="Seconds between requests to one host.")

    def clean_urls(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["urls"].splitlines()]
        try:
            return services.clean_seeds(line for line in lines if line and not line.startswith("#"))
        except services.SeedError as exc:
            raise ValidationError(str(exc)) from exc

    def clean(self):
        cleaned = super().clean()
        given = {
            key: cleaned.get(key)
            for key in ("follow", "link_selector", "next_selector", "max_pages", "concurrency", "delay")
        }
        try:
            cleaned["options"] = CrawlOptions.build(**given)
        except OptionsError as exc:
            raise ValidationError(str(exc)) from exc
        return cleaned
