"""lab.sampling.file_sampler (the export's diagnostics, the benchmarks) draws what the service
serves: the same bytes for the same request, whichever way the version's graphs choose, since
both go through lab.sampling.score_drawer."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

from lab.samplers import NO_CHURN
from lab.sampling import FUSED, NUMPY, STEPPED, SamplingSettings, file_sampler, sampling_path
from service.app import create_app
from tests.helpers import make_config

NAME = "grid25-edm"


def served_and_drawn(repo: Path, body: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """(the service's NPY samples for `body`, file_sampler's for the same request, the way)."""
    card = json.loads((repo / NAME / "card.json").read_text())
    steps = body.get("steps", card["sampler"]["steps"])
    sampler = body.get("sampler", card["sampler"]["name"])
    client = create_app(make_config(repo)).test_client()
    response = client.post(
        f"/v1/models/{NAME}/samples",
        json={"n": 30, "seed": 9, **body},
        headers={"Accept": "application/x-npy"},
    )
    assert response.status_code == 200, response.get_json()
    version = card["versions"][-1]
    way = sampling_path(version, steps, sampler, NO_CHURN, SamplingSettings())
    drawn = file_sampler(repo / NAME, card, version, steps, sampler)(30, 9)
    return np.load(io.BytesIO(response.data)), drawn, way


@pytest.mark.parametrize(
    ("body", "expected"),
    [({}, FUSED), ({"steps": 5, "sampler": "euler"}, STEPPED)],
    ids=["fused", "step-graphs"],
)
def test_file_sampler_equals_the_service(model_repo, body, expected):
    served, drawn, way = served_and_drawn(model_repo, body)
    assert way == expected
    assert served.tobytes() == drawn.tobytes() and served.shape == drawn.shape


def test_without_sampler_graphs_both_step_in_numpy(repo_copy):
    path = repo_copy / NAME / "card.json"
    card = json.loads(path.read_text())
    for version in card["versions"]:
        del version["step_graphs"], version["fused"]
    path.write_text(json.dumps(card))
    served, drawn, way = served_and_drawn(repo_copy, {"steps": 3})
    assert way == NUMPY and served.tobytes() == drawn.tobytes()
