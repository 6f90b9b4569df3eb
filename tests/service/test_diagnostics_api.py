"""POST /v1/diagnostics: uploads in every format, known-truth batches, and bad input."""

import io
import json

import numpy as np
import pytest

from tests.helpers import draw_mixture

PROBLEM = "application/problem+json"


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def encode(array: np.ndarray, fmt: str) -> bytes:
    if fmt == "npy":
        return npy_bytes(array)
    if fmt == "csv":
        return ("x,y\n" + "\n".join(f"{a!r},{b!r}" for a, b in array.tolist())).encode()
    return json.dumps({"samples": array.tolist()}).encode()


def upload(client, data: bytes, filename: str = "samples.npy", reference: str = "ring8", **kwargs):
    form = {"file": (io.BytesIO(data), filename), "reference": reference}
    return client.post("/v1/diagnostics", data=form, content_type="multipart/form-data", **kwargs)


@pytest.mark.parametrize("fmt", ["npy", "csv", "json"])
def test_three_of_eight_modes_reported_missing(client, ring8_reference, fmt):
    batch = draw_mixture(ring8_reference, 2500, modes=[0, 3, 5])
    response = upload(client, encode(batch, fmt), filename=f"batch.{fmt}")
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert report["modes"]["covered"] == 3
    assert report["modes"]["missing"] == [1, 2, 4, 6, 7]
    assert report["n_samples"] == 2500 and report["reference"] == "ring8"
    assert report["verdict"]["status"] != "healthy"


def test_exact_draw_is_healthy(client, ring8_reference):
    report = upload(client, npy_bytes(draw_mixture(ring8_reference, 2500, None))).get_json()
    assert report["verdict"]["status"] == "healthy"
    assert report["modes"]["covered"] == 8 and report["high_quality_fraction"] > 0.95


def test_one_point_is_collapsed(client, ring8_reference):
    batch = np.repeat(np.asarray(ring8_reference["centres"][:1]), 2500, axis=0)
    report = upload(client, npy_bytes(batch)).get_json()
    assert report["verdict"]["status"] == "collapsed"


def test_service_samples_round_trip(client):
    """Samples drawn from the service can be uploaded back as they came (JSON and NPY)."""
    drawn = client.post("/v1/models/ring8-gan/samples", json={"n": 100, "seed": 0})
    report = upload(client, drawn.data, filename="samples.json").get_json()
    assert report["n_samples"] == 100 and sum(report["modes"]["histogram"]) <= 100


@pytest.mark.parametrize(
    ("data", "filename", "status", "fragment"),
    [
        (npy_bytes(np.array([{"a": 1}], dtype=object)), "x.npy", 400, "not numeric"),
        (npy_bytes(np.zeros((10, 2)))[:-16], "x.npy", 400, "truncated"),
        (b"\x93NUMPY garbage", "x.npy", 400, "not a valid .npy"),
        (b"1,2\n3,abc\n", "x.csv", 400, "line 2: 'abc' is not a number"),
        (b"1,2\n3\n", "x.csv", 400, "line 2: expected 2 values, got 1"),
        (b"[[1, 2], [3]]", "x.json", 400, "rectangular"),
        (b'{"points": []}', "x.json", 400, "'samples'"),
        (b"\xff\xfe[[1,2]]", "x.json", 400, "not UTF-8"),
        (b"", "x.npy", 400, "empty"),
        (b"GIF89a", "x.gif", 415, "cannot tell the format"),
        (npy_bytes(np.zeros((10, 3))), "x.npy", 422, "sent vectors of 3 values; reference 'ring8'"),
        (npy_bytes(np.zeros((0, 2))), "x.npy", 422, ""),
        (npy_bytes(np.array([[0.0, np.nan]])), "x.npy", 422, ""),
        (npy_bytes(np.array([[0.0, np.inf]])), "x.npy", 422, ""),
    ],
)
def test_bad_uploads_get_problem_json(client, data, filename, status, fragment):
    response = upload(client, data, filename=filename)
    assert response.status_code == status, response.get_json()
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status and fragment in body["detail"]


def test_unknown_reference_is_404(client, ring8_reference):
    response = upload(client, npy_bytes(np.zeros((3, 2))), reference="ring9")
    assert response.status_code == 404 and "ring9" in response.get_json()["detail"]


def test_missing_fields_are_400(client):
    response = client.post(
        "/v1/diagnostics", data={"reference": "ring8"}, content_type="multipart/form-data"
    )
    assert response.status_code == 400 and "'file'" in response.get_json()["detail"]


def test_not_multipart_is_415(client):
    response = client.post("/v1/diagnostics", json={"samples": [[0, 0]]})
    assert response.status_code == 415 and "multipart/form-data" in response.get_json()["detail"]


def test_too_many_samples_is_413(model_repo):
    from service.app import create_app
    from tests.helpers import make_config

    client = create_app(make_config(model_repo, max_upload_samples=10)).test_client()
    response = upload(client, npy_bytes(np.zeros((11, 2))))
    assert response.status_code == 413 and "MAX_UPLOAD_SAMPLES" in response.get_json()["detail"]


def test_too_many_bytes_is_413(model_repo):
    from service.app import create_app
    from tests.helpers import make_config

    client = create_app(make_config(model_repo, max_upload_bytes=1000)).test_client()
    response = upload(client, npy_bytes(np.zeros((500, 2))))
    assert response.status_code == 413 and "MAX_UPLOAD_BYTES" in response.get_json()["detail"]


@pytest.mark.parametrize("shape", [(100, 2), (100, 5), (20, 1, 8, 8)], ids=["2-D", "5-D", "images"])
def test_figure_without_a_reference(client, shape):
    """No reference: the figure still draws (the samples, or the images), never a 500."""
    batch = np.random.default_rng(0).standard_normal(shape)
    response = upload(client, npy_bytes(batch), reference="", headers={"Accept": "image/png"})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "image/png" and response.data.startswith(b"\x89PNG")


def forged_npy(shape: tuple) -> bytes:
    """A .npy header declaring `shape` (float64), and no data."""
    header = repr({"descr": "<f8", "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


# Inputs that were a 500 (found by fuzzing the parsers with structural extremes), each with
# the 4xx it gets now.
EXTREME_UPLOADS = {
    "JSON nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "x.json", 400, "nested"),
    "JSON integer beyond float64": (b"[[1" + b"0" * 400 + b", 0]]", "x.json", 422, "Inf"),
    "JSON integer of 5,000 digits": (b"[[" + b"9" * 5000 + b", 0]]", "x.json", 422, "Inf"),
    ".npy declaring a negative dimension": (forged_npy((-1, 2)), "x.npy", 400, "negative"),
    ".npy holding one number (0-d)": (npy_bytes(np.array(3.0)), "x.npy", 400, "one number"),
}


@pytest.mark.parametrize("case", EXTREME_UPLOADS, ids=list(EXTREME_UPLOADS))
@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/v1/diagnostics", {"reference": "ring8"}),
        ("/v1/diagnostics", {}),
        ("/v1/references", {"name": "extreme"}),
    ],
)
def test_structural_extremes_get_a_4xx_problem(client, case, path, fields):
    data, filename, status, fragment = EXTREME_UPLOADS[case]
    form = {"file": (io.BytesIO(data), filename), **fields}
    response = client.post(path, data=form, content_type="multipart/form-data")
    assert response.status_code == status and response.mimetype == PROBLEM, response.get_json()
    assert fragment in response.get_json()["detail"]


@pytest.mark.parametrize(
    ("batch", "reference"),
    [
        (np.random.default_rng(0).normal(size=(200, 2)), ""),  # 2-D, no reference to draw
        (np.random.default_rng(0).normal(size=(20, 1, 2, 2, 2)), ""),  # 5-D: no image grid
        (np.random.default_rng(0).uniform(size=(20, 2, 8, 8)), ""),  # 2 channels: no RGB
    ],
)
def test_report_figure_of_any_parsed_batch_is_a_png(client, batch, reference):
    response = upload(
        client, npy_bytes(batch), reference=reference, headers={"Accept": "image/png"}
    )
    assert response.status_code == 200 and response.mimetype == "image/png", response.data[:300]


@pytest.mark.parametrize("accept", ["application/json", "image/png"])
@pytest.mark.parametrize("reference", ["ring8", ""])
def test_values_whose_distances_overflow_are_422(client, accept, reference):
    """1e200: finite, but squared distances overflow to inf (the manifold radii then looped
    forever; the figure's axes overflowed)."""
    batch = np.random.default_rng(0).normal(size=(300, 2)) * 1e200
    response = upload(client, npy_bytes(batch), reference=reference, headers={"Accept": accept})
    assert response.status_code == 422 and "rescale" in response.get_json()["detail"]


def test_values_just_under_the_magnitude_limit_get_a_figure(client):
    batch = np.random.default_rng(0).normal(size=(300, 2)) * 1e149
    response = upload(client, npy_bytes(batch), reference="", headers={"Accept": "image/png"})
    assert response.status_code == 200 and response.mimetype == "image/png"


def test_the_samples_json_answer_uploads_as_its_npy_answer(client):
    """The JSON answer holds float32 shortest decimals; uploaded back it is the same batch as
    the NPY answer, so the reports are equal (a float64 reading changed near pairs)."""
    body = {"n": 2500, "seed": 0}
    as_json = client.post("/v1/models/ring8-gan/samples", json=body)
    as_npy = client.post(
        "/v1/models/ring8-gan/samples", json=body, headers={"Accept": "application/x-npy"}
    )
    from_json = upload(client, as_json.data, filename="samples.json").get_json()
    from_npy = upload(client, as_npy.data, filename="samples.npy").get_json()
    assert from_json == from_npy
