"""bench/bare.py's model_app (the load baseline "Flask + the model, nothing else") answers what
the service answers: the same samples for the same request, so the two rows of `bench.load
--baseline` do the same model work."""

import shutil
from pathlib import Path

from bench.bare import model_app
from service.app import create_app
from tests.helpers import make_config

BUNDLED = Path(__file__).resolve().parents[2] / "models"


def test_model_app_answers_the_services_samples(tmp_path: Path):
    for model in ("ring8-gan", "ring8"):  # the gan and the reference its card names
        shutil.copytree(BUNDLED / model, tmp_path / model)
    service = create_app(make_config(tmp_path)).test_client()
    bare = model_app.test_client()
    for n, seed in ((64, 7), (3, 0)):
        body = {"n": n, "seed": seed}
        expected = service.post("/v1/models/ring8-gan/samples", json=body).get_json()
        answer = bare.post("/v1/models/ring8-gan/samples", json=body).get_json()
        assert answer["shape"] == expected["shape"] == [n, 2]
        assert answer["samples"] == expected["samples"]
