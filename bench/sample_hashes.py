"""Fingerprints of what the real gunicorn serves: sha256 of every bundled model's samples for
fixed seeds (each score model through its fused graph, its step graphs and the numpy sampler:
FUSED_SAMPLER / STEP_GRAPHS on and off; ensembles too) and of one diagnosis report per
reference kind.

A refactor that changes no behaviour leaves every line the same. Usage:

    python -m bench.sample_hashes --write docs/sample-hashes.json   # before
    python -m bench.sample_hashes --check docs/sample-hashes.json   # after: exit 1 on a change

The hashes are of the exact bytes (NPY samples, the report's JSON), so they hold on one machine;
another CPU's BLAS may change a report's last digit (docs/performance.md).
"""

import argparse
import hashlib
import json
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench.server import running_server
from lab.cards import LATENT_KINDS, SERVABLE_KINDS
from service.config import REPO_MODELS

SEEDS = (0, 7)
GAN_ROWS, SCORE_ROWS, DIAGNOSE_ROWS = 64, 16, 500
# Score requests: the card's default (the fused graph when the version has one), other steps
# and sampler (the step graphs, or numpy with STEP_GRAPHS=off), and churn (never fused).
SCORE_CASES = {
    "default": {},
    "euler-5": {"steps": 5, "sampler": "euler"},
    "heun-4-churn": {"steps": 4, "sampler": "heun", "churn": 0.5},
}
# Server settings whose paths give the same samples by contract: each is hashed on its own.
SETTINGS = {
    "graphs": {"FUSED_SAMPLER": "on", "STEP_GRAPHS": "on"},
    "numpy": {"FUSED_SAMPLER": "off", "STEP_GRAPHS": "off"},
}


def post(url: str, body: dict, accept: str) -> bytes:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": accept},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.read()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def served_models(url: str) -> list[dict]:
    """The ready generators (gan, score, ensemble) /v1/models lists (it lists classifiers
    too)."""
    with urllib.request.urlopen(f"{url}/v1/models", timeout=60) as response:
        models = json.load(response)["models"]
    return [m for m in models if m["ready"] and m["kind"] in SERVABLE_KINDS]


def model_hashes(url: str, model: dict) -> dict[str, str]:
    """{"<model>/<case>/seed<k>": sha256 of the NPY samples} for one model."""
    name, hashes = model["name"], {}
    cases = SCORE_CASES if model["kind"] == "score" else {"default": {}}
    rows = SCORE_ROWS if model["kind"] == "score" else GAN_ROWS
    for case, extra in cases.items():
        for seed in SEEDS:
            body = {"n": rows, "seed": seed, **extra}
            npy = post(f"{url}/v1/models/{name}/samples", body, "application/x-npy")
            hashes[f"{name}/{case}/seed{seed}"] = sha(npy)
    return hashes


def diagnosis_hashes(url: str, models: list[dict]) -> dict[str, str]:
    """{"<model>/diagnose": sha256 of the report JSON} for the first GAN of each reference, and
    the first class-conditional one (its report has the classes section)."""
    hashes, seen = {}, set()
    for model in models:
        key = (model["card"]["reference"], "conditional" in model["card"])
        if model["kind"] in LATENT_KINDS and key not in seen:
            seen.add(key)
            body = {"n": DIAGNOSE_ROWS, "seed": 0}
            report = post(f"{url}/v1/models/{model['name']}/diagnose", body, "application/json")
            hashes[f"{model['name']}/diagnose"] = sha(report)
    return hashes


def measure() -> dict[str, str]:
    """Every fingerprint, each server setting in its own gunicorn."""
    hashes = {}
    with tempfile.TemporaryDirectory() as folder:
        for setting, environment in SETTINGS.items():
            log = Path(folder) / f"{setting}.log"
            with running_server(REPO_MODELS, log, **environment) as (url, _):
                models = served_models(url)
                for model in models:
                    found = model_hashes(url, model)
                    hashes |= {f"{setting}:{key}": value for key, value in found.items()}
                if setting == "graphs":
                    hashes |= diagnosis_hashes(url, models)
    return dict(sorted(hashes.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", type=Path, help="write the fingerprints to this JSON file")
    action.add_argument("--check", type=Path, help="compare with this JSON file; 1 on a change")
    args = parser.parse_args()
    hashes = measure()
    if args.write:
        args.write.write_text(json.dumps(hashes, indent=1) + "\n")
        print(f"{len(hashes)} fingerprints written to {args.write}")
        return 0
    expected = json.loads(args.check.read_text())
    changed = sorted(k for k in expected.keys() | hashes.keys() if expected.get(k) != hashes.get(k))
    print(f"{'fingerprint':<60} same")
    for key in sorted(expected.keys() | hashes.keys()):
        print(f"{key:<60} {'yes' if key not in changed else 'NO'}")
    print(f"{len(hashes) - len(changed)} of {len(expected.keys() | hashes.keys())} the same")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
