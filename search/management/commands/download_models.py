"""manage.py download_models [--to DIR]: save the full profile's models for an air-gapped machine."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from search.pipeline.base import ModelLoadError


def folder_name(source: str) -> str:
    """ "florence-community/Florence-2-base" -> "florence-community--Florence-2-base"; a folder keeps its name."""
    name = Path(source).expanduser().name if source.startswith(("/", ".", "~")) else source.replace("/", "--")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


class Command(BaseCommand):
    help = (
        "Download (or copy) the detector, segmenter and embedder models named by LOOKALIKE_DETECTOR_MODEL, "
        "LOOKALIKE_SEGMENTER_MODEL and LOOKALIKE_EMBEDDER_MODEL into DIR with save_pretrained, so a machine "
        "without network can point those settings at DIR. The offline embedder needs no download."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--to", dest="target", default=str(settings.BASE_DIR / ".models"), help="folder to save into (.models/)"
        )

    def handle(self, *args, target: str, **options):
        from transformers import (
            CLIPModel,
            CLIPProcessor,
            Florence2ForConditionalGeneration,
            Florence2Processor,
            Sam2Model,
        )

        from search.pipeline.loading import load_pretrained, model_id_for, write_marker

        # (setting, what, classes to save): SAM 2's processor needs torchvision and the pipeline does its
        # preprocessing itself, so only its model is saved.
        plan = [
            ("LOOKALIKE_DETECTOR_MODEL", "detector", [Florence2ForConditionalGeneration, Florence2Processor]),
            ("LOOKALIKE_SEGMENTER_MODEL", "segmenter", [Sam2Model]),
            ("LOOKALIKE_EMBEDDER_MODEL", "embedder", [CLIPModel, CLIPProcessor]),
        ]
        root = Path(target).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        lines = []
        for setting, what, classes in plan:
            source = getattr(settings, setting)
            destination = root / folder_name(source)
            self.stdout.write(f"{what}: {source} -> {destination}")
            try:
                for cls in classes:
                    load_pretrained(cls, source, what=what, setting=setting).save_pretrained(destination)
            except ModelLoadError as exc:
                raise CommandError(f"{exc} (download_models needs network access to the Hugging Face hub.)") from exc
            write_marker(destination, model_id_for(source))
            lines.append(f"{setting}={destination}")
        self.stdout.write(self.style.SUCCESS("Saved. On the offline machine set:"))
        for line in lines:
            self.stdout.write(f"  {line}")
        self.stdout.write("  LOOKALIKE_PROFILE=full")
