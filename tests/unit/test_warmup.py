"""Models warmed at start: ``manage.py serve`` hands gunicorn a config whose worker hook starts the warm-up,
and the warm-up loads the registry's pipeline in a background thread (a fake pipeline here: no model)."""

from __future__ import annotations

import logging

import pytest

from config import gunicorn_conf
from config.management.commands import serve
from search import warmup


class FakePipeline:
    supports_text = True

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.calls: list[str] = []

    def process_image(self, image):
        if self.fail:
            raise RuntimeError("no model here")
        self.calls.append(f"image {image.size[0]}x{image.size[1]}")
        return []

    def embed_text(self, texts):
        self.calls.append(f"text {texts[0]}")


@pytest.fixture
def fake_pipeline(monkeypatch):
    pipeline = FakePipeline()
    loads = []

    def get_pipeline():
        loads.append(1)
        return pipeline

    monkeypatch.setattr("search.pipeline.registry.get_pipeline", get_pipeline)
    pipeline.loads = loads
    return pipeline


def test_the_background_warm_up_loads_the_pipeline_and_runs_a_photo_and_a_text(settings, fake_pipeline, capsys):
    settings.LOOKALIKE_WARMUP = True
    thread = warmup.warm_up_in_background()
    assert thread is not None and thread.daemon, "a daemon thread: it never holds up the server or its stop"
    thread.join(timeout=30)

    assert not thread.is_alive()
    assert fake_pipeline.loads == [1]
    assert fake_pipeline.calls == ["image 640x480", "text a red t-shirt"]
    assert "Models warmed in" in capsys.readouterr().out


def test_the_warm_up_can_be_switched_off(settings, fake_pipeline):
    settings.LOOKALIKE_WARMUP = False
    assert warmup.warm_up_in_background() is None
    assert fake_pipeline.loads == []


def test_a_failing_warm_up_is_logged_and_the_thread_ends(settings, monkeypatch, caplog):
    settings.LOOKALIKE_WARMUP = True
    monkeypatch.setattr("search.pipeline.registry.get_pipeline", lambda: FakePipeline(fail=True))
    with caplog.at_level(logging.ERROR, logger="search.warmup"):
        thread = warmup.warm_up_in_background()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert "warming the models failed" in caplog.text and "no model here" in caplog.text


def test_serve_gives_gunicorn_the_config_whose_worker_hook_warms_up(monkeypatch):
    spawned = []
    monkeypatch.setattr(serve.Command, "_spawn", lambda self, command: spawned.append(command))
    serve.Command()._start_web("127.0.0.1:8123", 2, 1)

    command = spawned[0]
    config = command[command.index("--config") + 1]
    assert config == "python:config.gunicorn_conf"
    # What gunicorn reads from that module: a post_worker_init hook taking the worker.
    from gunicorn.app.base import Application

    hooks = Application.get_config_from_module_name(None, config.removeprefix("python:"))
    started = []
    monkeypatch.setattr(warmup, "warm_up_in_background", lambda: started.append(1))
    hooks["post_worker_init"](object())
    assert started == [1]
    assert hooks["post_worker_init"] is gunicorn_conf.post_worker_init
