"""The OpenAPI 3.1 document of every route (served at /openapi.json, rendered at /docs).

Built from small helpers so that each operation reads as one line per fact; a test checks that
it validates and that it lists exactly the app's routes.
"""

from typing import Any

from lab.cards import NAME_RULE
from lab.noise import MAX_SEED
from lab.samplers import MAX_CHURN, SAMPLERS
from service.config import ServiceConfig
from service.middleware import is_open

JSON = "application/json"
PROBLEM = "application/problem+json"
NPY = "application/x-npy"


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def problems(*statuses: int) -> dict:
    """Problem+json responses for the given statuses."""
    return {
        str(s): {"description": DESCRIPTIONS[s], "content": {PROBLEM: {"schema": ref("Problem")}}}
        for s in statuses
    }


DESCRIPTIONS = {
    400: "Bad input",
    409: "Conflict (name taken, built in, storage full; a job not finished or cancelled)",
    401: "Missing or wrong API key",
    404: "Unknown model, reference or version",
    405: "The model repository is fixed at start",
    406: "No acceptable response format",
    413: "Upload over a limit",
    415: "Unsupported format",
    422: "Parsed but unusable samples",
    410: "The job expired (JOB_TTL)",
    429: "Jobs full (MAX_JOBS, MAX_JOB_BYTES): Retry-After",
    500: "Internal error",
    503: "Not ready, busy or failed",
    504: "Deadline exceeded",
}


def ok(schema: dict, description: str = "OK", media: str = JSON) -> dict:
    return {"200": {"description": description, "content": {media: {"schema": schema}}}}


def path_param(name: str, description: str, example: str) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
        "example": example,
    }


NAME = path_param("name", "Model name", "ring8-gan")
REFERENCE = path_param("name", "Reference name", "ring8")
VERSION = path_param("version", "Model version (an integer)", "1")
EXEMPLARS_SCHEMA = {
    "type": "array",
    "description": "Discovered modes only: for each missing (starved) mode, the reference rows "
    "nearest its centre",
    "items": {
        "type": "object",
        "properties": {
            "mode": {"type": "integer"},
            "reference_rows": {"type": "array", "items": {"type": "integer"}},
        },
    },
}


def operation(summary: str, tag: str, responses: dict, **extra: Any) -> dict:
    return {"summary": summary, "tags": [tag], "responses": {**responses, **problems(500)}, **extra}


def schemas(config: ServiceConfig) -> dict:
    number_rows = {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}
    return {
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail", "error"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "error": {"type": "string", "description": "Same as detail (KServe)"},
                "request_id": {"type": "string"},
            },
        },
        "Card": {
            "type": "object",
            "description": "A model card (lab/schemas/card.schema.json)",
        },
        "Model": {
            "type": "object",
            "required": ["name", "ready", "versions"],
            "properties": {
                "name": {"type": "string"},
                "kind": {
                    "type": ["string", "null"],
                    "description": "gan, vae, score, ensemble, classifier or embedding (null: "
                    "unreadable card)",
                    "examples": ["gan", "classifier"],
                },
                "ready": {"type": "boolean"},
                "error": {"type": ["string", "null"]},
                "provider": {"type": ["string", "null"]},
                "versions": {"type": "array", "items": {"type": "integer"}},
                "precision": {
                    "type": "object",
                    "description": "per version: fp32, or fp16 when its float16 graph is served",
                    "additionalProperties": {"enum": ["fp32", "fp16"]},
                },
                "card": {"type": ["object", "null"]},
            },
        },
        "ModelSummary": {
            "type": "object",
            "required": ["name", "kind", "ready", "versions", "provider"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "kind": {"type": ["string", "null"]},
                "ready": {"type": "boolean"},
                "versions": {"type": "array", "items": {"type": "integer"}},
                "provider": {"type": ["string", "null"]},
            },
        },
        "RepositoryIndex": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "state", "reason"],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "state": {"enum": ["READY", "UNAVAILABLE"]},
                    "reason": {"type": "string"},
                },
            },
        },
        "SampleRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "n": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": config.max_samples,
                    "default": config.default_samples,
                    "description": f"Up to {config.max_job_samples} (MAX_JOB_SAMPLES) in a "
                    "samples job (Prefer: respond-async)",
                },
                "seed": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": MAX_SEED,
                    "description": "Same seed, same samples. Random when absent, drawn "
                    "below 2^53 so that JavaScript numbers hold it exactly; seeds up to "
                    "2^63 - 1 are accepted (a JavaScript client must send those as exact "
                    "integers, not Number)",
                },
                "version": {"type": "integer", "minimum": 1},
                "steps": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": config.max_steps,
                    "description": "Score models only (400 for GANs): sampler steps; "
                    "default the card's sampler.steps",
                },
                "sampler": {
                    "enum": list(SAMPLERS),
                    "description": "Score models only (400 for GANs): euler (steps network "
                    "evaluations) or heun (2 steps - 1); default the card's sampler.name",
                },
                "churn": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": MAX_CHURN,
                    "default": 0,
                    "description": "Score models only: EDM's S_churn (0 = deterministic); "
                    "the churn noise is drawn from the seed too",
                },
                "weights": {
                    "type": "array",
                    "items": {"type": "number", "minimum": 0, "maximum": 1},
                    "description": "Ensembles only (400 for other models): one weight per "
                    "member, summing to 1, instead of the card's (docs/ensembles.md)",
                },
                "labels": {
                    "oneOf": [
                        {"type": "integer", "minimum": 0},
                        {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    ],
                    "description": "Class-conditional models only (400 for others): one class "
                    "for every sample, or a list of n classes, each in 0..classes-1 "
                    "(docs/conditional.md)",
                },
                "class_mix": {
                    "type": "array",
                    "items": {"type": "number", "minimum": 0, "maximum": 1},
                    "description": "Class-conditional models only: one weight per class, "
                    "summing to 1; each sample's class is drawn from it by the seed (default: "
                    "the card's conditional.weights). Not with labels",
                },
            },
        },
        "Samples": {
            "type": "object",
            "required": ["model", "version", "seed", "shape", "samples"],
            "properties": {
                "model": {"type": "string"},
                "version": {"type": "integer"},
                "seed": {"type": "integer"},
                "shape": {"type": "array", "items": {"type": "integer"}},
                "samples": number_rows,
                "steps": {"type": "integer", "description": "Score models"},
                "sampler": {"type": "string", "description": "Score models"},
                "network_evaluations": {"type": "integer", "description": "Score models"},
                "churn": {"type": "number", "description": "Score models, when not 0"},
                "members": {
                    "type": "array",
                    "description": "Ensembles: the version's members (model, version, weight) "
                    "in draw order (docs/ensembles.md)",
                    "items": {"type": "object"},
                },
                "labels": {
                    "oneOf": [
                        {"type": "integer"},
                        {"type": "array", "items": {"type": "integer"}},
                    ],
                    "description": "Conditional models, when the request set labels (as sent)",
                },
                "class_mix": {
                    "type": "array",
                    "items": {"type": "number"},
                    "description": "Conditional models, when the request set a class mix",
                },
            },
        },
        "DiagnosticsUpload": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {
                    "type": "string",
                    "contentMediaType": "application/octet-stream",
                    "description": ".npy, .csv or .json batch [N, d]",
                },
                "reference": {"type": "string"},
                "key": {"type": "string", "description": "Array name in a .npz"},
            },
        },
        "ReferenceUpload": {
            "type": "object",
            "required": ["file", "name"],
            "properties": {
                "file": {
                    "type": "string",
                    "contentMediaType": "application/octet-stream",
                    "description": "A batch of real samples (any upload format)",
                },
                "name": {"type": "string", "pattern": NAME_RULE},
                "key": {"type": "string", "description": "Array name in a .npz"},
                "classifier": {
                    "type": "string",
                    "description": "A classifier model of the repository (kind classifier) "
                    "that classifies and embeds the images: modes are its classes, stacked in "
                    "base n_classes when the samples hold several of its inputs along the "
                    "channels; the batch must be images of its input's size (422 otherwise). "
                    "Not with `embedding` (400). Default: a built-in classifier reference's "
                    "classifier when the images fit one, else raw vectors or pixels",
                    "examples": ["digit-classifier"],
                },
                "embedding": {
                    "type": "string",
                    "description": "An embedding model of the repository (kind embedding) "
                    "whose features the reference keeps; a diagnosis against the reference "
                    "embeds its batch with the same model and version. Not with `classifier`",
                    "examples": ["my-embedding"],
                },
                "modes": {
                    "type": "string",
                    "default": "auto",
                    "pattern": "^(auto|none|[0-9]+)$",
                    "description": "How a features reference's modes are discovered: 'auto' "
                    "(K-means, K by the best silhouette over 2..30), an integer K in 2..100, "
                    "or 'none' (no mode counts). See docs/diagnostics.md",
                },
            },
        },
        "Report": {
            "type": "object",
            "required": [
                "reference",
                "n_samples",
                "modes",
                "high_quality_fraction",
                "kl",
                "reverse_kl",
                "expected_covered_ideal",
                "verdict",
            ],
            "description": "See docs/diagnostics.md",
            "properties": {
                "reference": {"type": "string"},
                "n_samples": {"type": "integer"},
                "modes": {
                    "type": ["object", "null"],
                    "properties": {
                        "total": {"type": "integer"},
                        "covered": {"type": "integer"},
                        "missing": {"type": "array", "items": {"type": "integer"}},
                        "starved": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "description": "Covered modes with fewer than a quarter of the "
                            "high-quality samples an exact sampler puts there, beyond chance "
                            "(docs/diagnostics.md, the starved rule)",
                        },
                        "histogram": {"type": "array", "items": {"type": "integer"}},
                        "missing_exemplars": EXEMPLARS_SCHEMA,
                        "starved_exemplars": EXEMPLARS_SCHEMA,
                    },
                },
                "high_quality_fraction": {"type": ["number", "null"]},
                "kl": {"type": ["number", "null"]},
                "reverse_kl": {"type": ["number", "null"]},
                "expected_covered_ideal": {"type": ["number", "null"]},
                "expected_covered_same_quality": {
                    "type": ["number", "null"],
                    "description": "Modes an exact sampler covers with the batch's number of "
                    "high-quality samples: what the coverage rules compare with",
                },
                "all_samples": {
                    "type": ["object", "null"],
                    "description": "Classifier references: every sample counted by its argmax "
                    "mode, confident or not (the Stacked-MNIST papers' protocol)",
                    "properties": {
                        "covered": {"type": "integer"},
                        "missing": {"type": "array", "items": {"type": "integer"}},
                        "kl": {"type": ["number", "null"]},
                        "kl_expected_ideal": {"type": "number"},
                        "kl_expected_ideal_std": {"type": "number"},
                    },
                },
                "ensemble": {
                    "type": "object",
                    "description": "Ensembles with a reference that has modes: members (each "
                    "member's n, covered modes, histogram), covered_by (per mode, the members "
                    "with a high-quality sample there) and why (docs/ensembles.md)",
                },
                "classes": {
                    "type": "object",
                    "description": "Class-conditional models (mixture and classifier "
                    "references): count, healthy and per_class (each class's n, its own modes, "
                    "high_quality_fraction, on_class_fraction, kl, verdict; "
                    "docs/conditional.md)",
                },
                "duplicates": {"type": "object"},
                "features": {
                    "type": "object",
                    "description": "manifold (precision, recall, "
                    "density, coverage), ndb, vendi, skipped",
                },
                "verdict": {
                    "type": "object",
                    "properties": {
                        "status": {
                            "enum": ["healthy", "partial_collapse", "collapsed", "inconclusive"]
                        },
                        "reasons": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
        "Tensor": {
            "type": "object",
            "required": ["name", "shape", "datatype"],
            "properties": {
                "name": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer"}},
                "datatype": {"type": "string"},
                "parameters": {"type": "object"},
                "data": {"type": "array"},
            },
        },
        "InferRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "inputs": {"type": "array", "items": ref("Tensor")},
                "outputs": {"type": "array", "items": {"type": "object"}},
            },
        },
        "InferResponse": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "outputs": {"type": "array", "items": ref("Tensor")},
            },
        },
        "Job": job_schema(),
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "versions", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": ref("Tensor")},
                "outputs": {"type": "array", "items": ref("Tensor")},
            },
        },
    }


def v1_paths() -> dict:
    samples_body = {
        "required": False,
        "content": {JSON: {"schema": ref("SampleRequest"), "example": {"n": 16, "seed": 1}}},
    }
    samples_ok = {
        "200": {
            "description": "Samples (format by Accept)",
            "content": {
                JSON: {"schema": ref("Samples")},
                NPY: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
    upload = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": ref("DiagnosticsUpload"),
                "example": {"reference": "ring8"},  # and a file: samples.npy, batch.csv, ...
            }
        },
    }
    reference_upload = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": ref("ReferenceUpload"),
                "example": {"name": "my-data", "modes": "auto"},
            }
        },
    }
    return {
        **jobs_paths(),
        "/v1/models": {
            "get": operation(
                "List models",
                "models",
                {
                    **ok(
                        {
                            "type": "object",
                            "properties": {
                                "models": {
                                    "type": "array",
                                    "items": {"anyOf": [ref("Model"), ref("ModelSummary")]},
                                }
                            },
                        },
                        "Models: with their cards, or without (view=compact)",
                    ),
                    **problems(400),
                },
                operationId="listModels",
                parameters=[
                    {
                        "name": "view",
                        "in": "query",
                        "required": False,
                        "description": "full: each model with its card; compact: name, kind, "
                        "ready, versions and provider only",
                        "schema": {"enum": ["full", "compact"], "default": "full"},
                    }
                ],
            )
        },
        "/v1/models/{name}": {
            "parameters": [NAME],
            "get": operation(
                "Describe a model",
                "models",
                {**ok(ref("Model")), **problems(404)},
                operationId="getModel",
            ),
        },
        "/v1/models/{name}/samples": {
            "parameters": [NAME],
            "post": operation(
                "Draw samples",
                "models",
                {**samples_ok, **accepted(), **problems(400, 404, 406, 413, 429, 503, 504)},
                operationId="drawSamples",
                requestBody=samples_body,
                parameters=[PREFER],
            ),
        },
        "/v1/models/{name}/diagnose": {
            "parameters": [NAME],
            "post": operation(
                "Generate and diagnose in one call",
                "models",
                {**ok(ref("Report")), **accepted(), **problems(400, 404, 429, 503, 504)},
                operationId="diagnoseModel",
                requestBody=samples_body,
                parameters=[PREFER],
            ),
        },
        "/v1/references": {
            "get": operation(
                "List references",
                "references",
                ok(
                    {
                        "type": "object",
                        "properties": {
                            "references": {"type": "array", "items": {"type": "object"}}
                        },
                    }
                ),
                operationId="listReferences",
            ),
            "post": operation(
                "Build a reference from a batch of real samples",
                "references",
                {
                    "201": {"description": "Created", "content": {JSON: {"schema": ref("Card")}}},
                    **problems(400, 404, 409, 413, 415, 422, 503),
                },
                operationId="createReference",
                requestBody=reference_upload,
            ),
        },
        "/v1/references/{name}": {
            "parameters": [REFERENCE],
            "get": operation(
                "A reference card",
                "references",
                {**ok(ref("Card")), **problems(404, 503)},
                operationId="getReference",
            ),
            "delete": operation(
                "Delete an uploaded reference",
                "references",
                {"204": {"description": "Deleted"}, **problems(404, 409)},
                operationId="deleteReference",
            ),
        },
        "/v1/diagnostics": {
            "post": operation(
                "Diagnose an uploaded batch",
                "diagnostics",
                {
                    **ok(ref("Report")),
                    **accepted(),
                    **problems(400, 404, 413, 415, 422, 429, 503, 504),
                },
                operationId="diagnose",
                requestBody=upload,
                parameters=[PREFER],
            )
        },
    }


PREFER = {
    "name": "Prefer",
    "in": "header",
    "required": False,
    "description": "respond-async (RFC 7240): validate, then answer 202 with Location: "
    "/v1/jobs/{job_id} and run the request as a job (no deadline; samples up to "
    "MAX_JOB_SAMPLES); the result is fetched from /v1/jobs/{job_id}/result",
    "schema": {"type": "string"},
    "example": "respond-async",
}
JOB_ID = path_param("job_id", "Job id (from the 202's Location)", "9oZ7XK0HbDmikUUBPJEhAg")


def accepted() -> dict:
    """The 202 of a request sent with Prefer: respond-async."""
    headers = {
        name: {"description": text, "schema": {"type": "string"}}
        for name, text in (
            ("Location", "/v1/jobs/{job_id}: the job's status"),
            ("Preference-Applied", "respond-async"),
            ("Retry-After", "seconds before the first poll"),
        )
    }
    return {
        "202": {
            "description": "Accepted as a job (Prefer: respond-async)",
            "headers": headers,
            "content": {JSON: {"schema": ref("Job")}},
        }
    }


def job_schema() -> dict:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "type": "object",
        "required": ["id", "state", "created", "progress", "request", "links"],
        "properties": {
            "id": {"type": "string"},
            "state": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "created": {"type": "string", "format": "date-time"},
            "started": nullable_time,
            "finished": nullable_time,
            "expires": {**nullable_time, "description": "finished + JOB_TTL"},
            "progress": {
                "type": "object",
                "description": "rows through the model's runs (samples; samples x steps when "
                "a score model steps); a diagnosis reports 0 of 1 until its report is done",
                "properties": {
                    "done": {"type": "integer"},
                    "total": {"type": ["integer", "null"]},
                    "fraction": {"type": "number"},
                },
            },
            "cancel_requested": {"type": "boolean"},
            "request": {
                "type": "object",
                "description": "method, path, media_type of the result, and body: the "
                "request's fields (the seed drawn when none was sent)",
            },
            "error": {"anyOf": [ref("Problem"), {"type": "null"}]},
            "result": {
                "type": ["object", "null"],
                "properties": {"media_type": {"type": "string"}, "bytes": {"type": "integer"}},
            },
            "links": {
                "type": "object",
                "properties": {"self": {"type": "string"}, "result": {"type": "string"}},
            },
        },
    }


def jobs_paths() -> dict:
    job = {JSON: {"schema": ref("Job")}}
    result = {
        "200": {
            "description": "The answer the request would have had: samples or report, in the "
            "format asked at submission (a failed job: its problem, with its status)",
            "content": {
                JSON: {"schema": {"anyOf": [ref("Samples"), ref("Report")]}},
                NPY: {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
    jobs_list = {"type": "object", "properties": {"jobs": {"type": "array", "items": ref("Job")}}}
    return {
        "/v1/jobs": {
            "get": operation(
                "List stored jobs (newest first)", "jobs", ok(jobs_list), operationId="listJobs"
            )
        },
        "/v1/jobs/{job_id}": {
            "parameters": [JOB_ID],
            "get": operation(
                "A job's status and progress",
                "jobs",
                {**ok(ref("Job")), **problems(404, 410)},
                operationId="getJob",
            ),
            "delete": operation(
                "Delete a finished job, or cancel an unfinished one",
                "jobs",
                {
                    "202": {
                        "description": "Cancel requested: it stops at its next checkpoint",
                        "content": job,
                    },
                    "204": {"description": "Deleted"},
                    **problems(404, 410),
                },
                operationId="deleteJob",
            ),
        },
        "/v1/jobs/{job_id}/result": {
            "parameters": [JOB_ID],
            "get": operation(
                "A job's result",
                "jobs",
                {**result, **problems(400, 404, 409, 410, 422, 503)},
                operationId="getJobResult",
            ),
        },
    }


def v2_paths() -> dict:
    infer = {
        "required": True,
        "content": {
            JSON: {
                "schema": ref("InferRequest"),
                "example": {  # G(z) of two latents for ring8-gan (latent_dim 2)
                    "inputs": [
                        {
                            "name": "z",
                            "shape": [2, 2],
                            "datatype": "FP32",
                            "data": [0.1, -0.3, 1.2, 0.5],
                        }
                    ]
                },
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    infer_ok = {
        "200": {
            "description": "Outputs (binary after the JSON header when asked)",
            "content": {
                JSON: {"schema": ref("InferResponse")},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
    ready = ok({"type": "object"}, "Ready")
    v2_ready = {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean"}},
    }
    paths = {
        "/v2": {
            "get": operation(
                "Server metadata", "v2", ok({"type": "object"}), operationId="v2ServerMetadata"
            )
        },
        "/v2/health/live": {"get": operation("Server live", "v2", ready, operationId="v2Live")},
        "/v2/health/ready": {
            "get": operation(
                "Server ready",
                "v2",
                {
                    "200": {"description": "Ready", "content": {JSON: {"schema": v2_ready}}},
                    "503": {"description": "Not ready", "content": {JSON: {"schema": v2_ready}}},
                },
                operationId="v2Ready",
            )
        },
    }
    index_body = {
        "required": False,
        "content": {
            JSON: {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"ready": {"type": "boolean", "default": False}},
                },
                "example": {"ready": True},
            }
        },
    }
    paths["/v2/repository/index"] = {
        "post": operation(
            "Model repository index (Triton's model repository extension, read-only)",
            "v2",
            {**ok(ref("RepositoryIndex")), **problems(400)},
            operationId="v2RepositoryIndex",
            requestBody=index_body,
        )
    }
    for action in ("load", "unload"):
        paths[f"/v2/repository/models/{{name}}/{action}"] = {
            "parameters": [NAME],
            "post": operation(
                f"{action.capitalize()} a model: refused, the repository is fixed at start",
                "v2",
                problems(405),
                operationId=f"v2Repository{action.capitalize()}",
            ),
        }
    for prefix, params, suffix in (
        ("/v2/models/{name}", [NAME], ""),
        ("/v2/models/{name}/versions/{version}", [NAME, VERSION], "Version"),
    ):
        paths[prefix] = {
            "parameters": params,
            "get": operation(
                "Model metadata",
                "v2",
                {**ok(ref("ModelMetadata")), **problems(404, 503)},
                operationId=f"v2ModelMetadata{suffix}",
            ),
        }
        paths[f"{prefix}/ready"] = {
            "parameters": params,
            "get": operation(
                "Model ready",
                "v2",
                {**ready, **problems(404, 503)},
                operationId=f"v2ModelReady{suffix}",
            ),
        }
        paths[f"{prefix}/infer"] = {
            "parameters": params,
            "post": operation(
                "Infer",
                "v2",
                {**infer_ok, **problems(400, 404, 503, 504)},
                operationId=f"v2Infer{suffix}",
                requestBody=infer,
            ),
        }
    return paths


def operations_paths() -> dict:
    text = {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}
    return {
        "/": {
            "get": operation(
                "Redirect to /docs",
                "operations",
                {"302": {"description": "To the docs page (Location: /docs)"}},
                operationId="index",
            )
        },
        "/healthz": {
            "get": operation(
                "Liveness", "operations", ok({"type": "object"}), operationId="healthz"
            )
        },
        "/readyz": {
            "get": operation(
                "Readiness",
                "operations",
                {**ok({"type": "object"}), **problems(503)},
                operationId="readyz",
            )
        },
        "/metrics": {
            "get": operation("Prometheus metrics", "operations", text, operationId="metrics")
        },
        "/openapi.json": {
            "get": operation(
                "This document", "operations", ok({"type": "object"}), operationId="openapi"
            )
        },
    }


def pages_paths() -> dict:
    """The two pages the service serves to browsers, and their files."""
    return {
        "/docs": {"get": page("Human-readable API documentation (Swagger UI)", "docs")},
        "/docs/{asset}": {
            "get": page_asset(
                "A file of the docs page (Swagger UI's script, style sheet, icon)",
                "docsAsset",
                "swagger-ui.css",
            )
        },
        "/ui": {
            "get": page(
                "The upload page: generate and diagnose, or upload a batch, and see the "
                "verdict, key numbers and figure",
                "uploadPage",
            )
        },
        "/ui/{asset}": {
            "get": page_asset(
                "A file of the upload page (its script, style sheet)", "uiAsset", "upload.js"
            )
        },
    }


def page(summary: str, operation_id: str) -> dict:
    """An HTML page's GET operation."""
    html = {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
    return operation(summary, "operations", {"200": html}, operationId=operation_id)


def page_asset(summary: str, operation_id: str, example: str) -> dict:
    """The GET operation of a page's file, `example` one of its names."""
    return operation(
        summary,
        "operations",
        {"200": {"description": "The file"}, **problems(404)},
        operationId=operation_id,
        parameters=[path_param("asset", "The file's name", example)],
    )


def openapi_document(config: ServiceConfig, version: str) -> dict:
    """The whole OpenAPI 3.1 document for this service and its limits."""
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "collapse-lab",
            "version": version,
            "description": "Generate samples from GANs and score models and diagnose mode "
            "collapse. In a browser: the [upload page](ui).",
        },
        "paths": {**operations_paths(), **pages_paths(), **v1_paths(), **v2_paths()},
        "components": {"schemas": schemas(config)},
    }
    if config.api_key:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
        for path, item in document["paths"].items():
            if is_open(path):  # the templates /docs/{asset}, /ui/{asset} are open files
                for method in ("get", "post"):
                    if method in item:
                        item[method]["security"] = []
    return document
