"""Service settings: one frozen dataclass holds the defaults; the environment overrides them."""

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from lab.sampling import DEFAULT_MAX_BATCH, SamplingSettings

REPO_MODELS = Path(__file__).resolve().parents[1] / "models"


@dataclass(frozen=True, repr=False)
class ServiceConfig:
    """Everything the app factory needs. Tests build one directly; gunicorn uses `from_env()`."""

    model_repository: Path = REPO_MODELS  # MODEL_REPOSITORY: folder of <name>/card.json
    device: str = "auto"  # DEVICE: auto (CUDA when it works, else CPU) | cuda | cpu
    max_samples: int = 100_000  # MAX_SAMPLES: largest n a generation request may ask for
    max_batch: int = (
        DEFAULT_MAX_BATCH  # MAX_BATCH: generation runs in batches of at most this many rows
    )
    max_steps: int = 256  # MAX_STEPS: largest `steps` a score-model request may ask for
    # FUSED_SAMPLER: "on" runs a version's fused trajectory graph (the whole sampler as one
    # ONNX graph) for score requests that match it (same sampler and steps, no churn), "off"
    # always steps in numpy. The samples are the same (the card's fused parity); the fused
    # graph was faster on the CPU (docs/performance.md) and keeps the state on a GPU.
    fused_sampler: str = "on"
    # STEP_GRAPHS: "on" runs the other score requests through the version's step graphs (one
    # Euler or Heun step per run, the state kept in the device's memory between steps), "off"
    # steps in numpy (the state on the host). The samples are the same (the card's parity).
    step_graphs: str = "on"
    # FP16: "auto" runs a GAN version's float16 graph (card `versions[].fp16`, written where
    # parity allows) when the session is on CUDA, "on" wherever it runs (the CPU gains nothing),
    # "off" never. Its samples differ from float32 by at most the card's fp16 parity.
    fp16: str = "auto"
    default_samples: int = (
        2_500  # DEFAULT_SAMPLES: n when a request does not say (papers' protocol)
    )
    max_upload_bytes: int = 64 * 2**20  # MAX_UPLOAD_BYTES: request bodies beyond this get 413
    # MAX_UPLOAD_SAMPLES: rows one diagnosis may have (uploaded or generated); the k-NN metrics
    # cost O(N^2), and 50k x 50k is what fits REQUEST_DEADLINE on a 2-core machine.
    max_upload_samples: int = 50_000
    max_upload_dim: int = 4_096  # MAX_UPLOAD_DIM: values per row in one diagnostics upload
    max_image_pixels: int = 1 << 20  # MAX_IMAGE_PIXELS: width x height of one uploaded image
    max_zip_files: int = 50_000  # MAX_ZIP_FILES: members of one uploaded .zip or .npz
    max_decompressed_bytes: int = 256 << 20  # MAX_DECOMPRESSED_BYTES: an archive, unpacked
    data_dir: Path = Path("data")  # DATA_DIR: writable; uploaded references live here
    max_references: int = 32  # MAX_REFERENCES: uploaded references stored at once
    # MAX_REFERENCE_BYTES: bytes all uploaded references may hold on DATA_DIR's volume (one of
    # 50,000 x 4,096 float64 features is 1.6 GB); size the volume above it.
    max_reference_bytes: int = 8 * 2**30
    max_reference_samples: int = 50_000  # MAX_REFERENCE_SAMPLES: rows of one uploaded reference
    # Jobs (Prefer: respond-async; service/jobs.py): work past REQUEST_DEADLINE, results kept on
    # DATA_DIR for every worker. MAX_JOB_SAMPLES: largest n of a samples job (a diagnose job
    # keeps MAX_UPLOAD_SAMPLES); MAX_JOBS stored at once, holding MAX_JOB_BYTES together;
    # JOB_TTL seconds a finished job is kept; JOB_WORKERS threads per worker run them, at the
    # lower priority JOB_NICE (0-19) so that synchronous requests get the CPU first.
    max_job_samples: int = 200_000
    max_jobs: int = 64
    max_job_bytes: int = 4 * 2**30
    job_ttl: float = 86_400.0
    job_workers: int = 1
    job_nice: int = 10
    max_in_flight: int = 4  # MAX_IN_FLIGHT: heavy requests computing at once per worker; 503 beyond
    # Dynamic batching (service/batching.py). BATCHING: "on" merges concurrent requests of at
    # most BATCH_MAX_ROWS samples to one gan version (and /v2 inferences of one version) in one
    # worker into one onnxruntime run, each request getting exactly the samples it gets alone;
    # "off" runs each request on its own. BATCH_WINDOW_US: microseconds the first request of a
    # batch waits for others to join (0: none; requests that arrive while a batch runs still
    # form the next one). BATCH_QUEUE: requests waiting per model version and worker; a request
    # beyond it gets the 503 of /problems/busy. A merged run takes one MAX_IN_FLIGHT slot.
    # BATCH_LARGE_QUEUE: of those, requests above BATCH_MAX_ROWS (up to MAX_BATCH samples: one
    # run each, never merged) that may wait their turn, a 503 beyond; 0 runs them on their own
    # (a 503 when every MAX_IN_FLIGHT slot is taken, as with BATCHING off). Any request still
    # waiting at REQUEST_DEADLINE leaves the queue with a 504.
    batching: str = "on"
    batch_window_us: int = 0
    batch_max_rows: int = 1024
    batch_queue: int = 64
    batch_large_queue: int = 16
    # REFERENCE_PASS_ENTRIES: references whose own k-NN sweep and K-means each worker keeps
    # (lab/diagnostics/reference_passes.py: about 3 MB each at 50,000 rows; the next report
    # against the same rows skips them, same values); 0 keeps none.
    reference_pass_entries: int = 8
    request_deadline: float = 60.0  # REQUEST_DEADLINE: seconds before a heavy request gets 504
    api_key: str = ""  # API_KEY: when set, required as `Authorization: Bearer` (not on probes)
    log_level: str = "INFO"  # LOG_LEVEL
    # LOG_FORMAT: "text" (one readable line per record) or "json" (one JSON object per line:
    # time, level, logger, message, pid, and the request id and trace id while serving)
    log_format: str = "text"
    # GZIP: "on" compresses JSON and NPY answers over GZIP_MIN_BYTES when the request's
    # Accept-Encoding allows gzip; "off" never (e.g. when a proxy in front compresses).
    gzip: str = "on"
    gzip_min_bytes: int = 1024  # GZIP_MIN_BYTES: smaller bodies are sent as they are
    # CORS_ORIGINS: "" (no CORS headers at all), "*", or a comma list of origins
    # (https://a.example,https://b.example) whose browsers may call the API
    cors_origins: str = ""

    def __repr__(self) -> str:  # never print the API key
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        return f"ServiceConfig({shown}, api_key={'set' if self.api_key else 'unset'})"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "ServiceConfig":
        """Defaults overridden by upper-case environment variables of the same names."""
        environ = os.environ if environ is None else environ
        config = cls()
        overrides = {}
        for field in fields(cls):
            raw = environ.get(field.name.upper())
            if raw is None or raw == "":
                continue
            default = getattr(config, field.name)
            try:
                overrides[field.name] = type(default)(raw)
            except ValueError as error:
                raise ValueError(f"{field.name.upper()}={raw!r}: {error}") from None
        return replace(config, **overrides).validated()

    def validated(self) -> "ServiceConfig":
        """Return self, or raise ValueError naming the first setting out of range."""
        if self.device not in ("auto", "cuda", "cpu"):
            raise ValueError(f"DEVICE must be auto, cuda or cpu, not {self.device!r}")
        for name in ("fused_sampler", "step_graphs", "gzip", "batching"):
            if getattr(self, name) not in ("on", "off"):
                raise ValueError(f"{name.upper()} must be on or off, not {getattr(self, name)!r}")
        if self.log_format not in ("text", "json"):
            raise ValueError(f"LOG_FORMAT must be text or json, not {self.log_format!r}")
        if self.fp16 not in ("auto", "on", "off"):
            raise ValueError(f"FP16 must be auto, on or off, not {self.fp16!r}")
        for name in (
            "max_samples",
            "max_batch",
            "max_steps",
            "default_samples",
            "max_upload_bytes",
            "max_upload_samples",
            "max_upload_dim",
            "max_in_flight",
            "max_image_pixels",
            "max_zip_files",
            "max_decompressed_bytes",
            "max_references",
            "max_reference_bytes",
            "max_reference_samples",
            "gzip_min_bytes",
            "max_job_samples",
            "max_jobs",
            "max_job_bytes",
            "job_workers",
            "batch_max_rows",
            "batch_queue",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.upper()} must be >= 1")
        for name in ("batch_large_queue", "reference_pass_entries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name.upper()} must be >= 0")
        if not 0 <= self.batch_window_us <= 1_000_000:
            raise ValueError("BATCH_WINDOW_US must be between 0 and 1000000 (one second)")
        if not self.request_deadline > 0:
            raise ValueError("REQUEST_DEADLINE must be > 0")
        if not self.job_ttl > 0:
            raise ValueError("JOB_TTL must be > 0")
        if not 0 <= self.job_nice <= 19:
            raise ValueError("JOB_NICE must be between 0 and 19")
        if self.default_samples > self.max_samples:
            raise ValueError("DEFAULT_SAMPLES must be <= MAX_SAMPLES")
        origins = self.allowed_origins()
        if "*" in origins and len(origins) > 1:
            raise ValueError("CORS_ORIGINS is either * or a list of origins, not both")
        for origin in origins - {"*"}:
            if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise ValueError(f"CORS_ORIGINS: {origin!r} is not scheme://host[:port]")
        return self

    def allowed_origins(self) -> frozenset[str]:
        """CORS_ORIGINS as a set ("*" alone, or origins without a trailing slash); empty: off."""
        return frozenset(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())

    def sampling(self) -> SamplingSettings:
        """FUSED_SAMPLER, STEP_GRAPHS and MAX_BATCH as the core's sampling reads them."""
        return SamplingSettings(
            fused_sampler=self.fused_sampler == "on",
            step_graphs=self.step_graphs == "on",
            max_batch=self.max_batch,
        )
