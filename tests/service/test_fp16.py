"""FP16: which GAN versions the service runs in float16 (their card's `fp16` graph)."""

import numpy as np
import pytest

from service.app import create_app
from tests.helpers import make_config

NAME = "ring8-gan"


def draw(client) -> np.ndarray:
    response = client.post(f"/v1/models/{NAME}/samples", json={"n": 300, "seed": 5})
    assert response.status_code == 200, response.get_json()
    return np.asarray(response.get_json()["samples"])


@pytest.mark.parametrize(
    ("setting", "precision"), [("auto", "fp32"), ("off", "fp32"), ("on", "fp16")]
)
def test_the_setting_chooses_the_graph(model_repo, setting, precision):
    """On the CPU provider auto means float32 (float16 gains nothing there)."""
    client = create_app(make_config(model_repo, fp16=setting)).test_client()
    model = client.get(f"/v1/models/{NAME}").get_json()
    assert model["ready"] and model["precision"] == {"1": precision}


def test_float16_samples_stay_within_the_card_parity(model_repo):
    full = draw(create_app(make_config(model_repo, fp16="off")).test_client())
    client = create_app(make_config(model_repo, fp16="on")).test_client()
    half = draw(client)
    tolerance = client.get(f"/v1/models/{NAME}").get_json()["card"]["versions"][0]["fp16"]
    assert 0 < np.abs(half - full).max() <= tolerance["parity"]["tolerance"]
    assert np.array_equal(half, draw(client))  # the same seed, the same samples


def test_an_altered_float16_file_makes_the_model_not_ready_only_when_used(repo_copy):
    from service.repository import Repository

    path = repo_copy / NAME / "1" / "model-fp16.onnx"
    path.write_bytes(path.read_bytes() + b"\0")
    assert Repository(repo_copy, "cpu", "off").load().get(NAME).ready
    entry = Repository(repo_copy, "cpu", "on").load().get(NAME)
    assert not entry.ready and "sha256 differs" in entry.error


def test_fp16_setting_is_validated():
    from service.config import ServiceConfig

    with pytest.raises(ValueError, match="FP16"):
        ServiceConfig.from_env({"FP16": "yes"})
