"""Shortest float32 decimals for JSON (service/floats.py)."""

import io
import json

import numpy as np
import pytest

from service.floats import SMALL, float32_decimals, json_bytes


def batches() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 20_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    wide = rng.standard_normal(20_000) * 10.0 ** rng.integers(-44, 38, 20_000)
    return {
        "samples": rng.standard_normal((5_000, 2)).astype(np.float32),
        "every bit pattern": bits[np.isfinite(bits)],
        "every magnitude": wide.astype(np.float32),
        "edges": np.array(
            [0.0, -0.0, 0.1, 1e-45, -3.4028235e38, 1.1754944e-38, 1000.0, 9.999999e-6, 16777217],
            np.float32,
        ).repeat(500),
    }


@pytest.mark.parametrize("size", [None, 100])  # both searches: digit by digit, all at once
@pytest.mark.parametrize("name", list(batches()))
def test_decimals_round_trip_exactly_and_are_numpys_shortest(name, size):
    values = batches()[name][:size]
    assert (values.size > SMALL) == (size is None)
    texts = json.loads(json.dumps(float32_decimals(values).tolist()))
    back = np.asarray(texts, np.float64).astype(np.float32)
    np.testing.assert_array_equal(back.view(np.uint32), values.view(np.uint32))  # -0.0 too
    written = [repr(v) for v in float32_decimals(values).ravel().tolist()]
    shortest = [repr(float(str(v))) for v in values.ravel()]  # numpy's float32 repr (Dragon4)
    assert [len(w) for w in written] == [len(s) for s in shortest]


@pytest.mark.parametrize("name", list(batches()))
def test_json_bytes_writes_the_numbers_of_float32_decimals(name):
    """orjson's float32 arrays read back as exactly the doubles float32_decimals gives (the
    shortest decimals), in the array's shape."""
    values = batches()[name]
    values = values[: values.size // 2 * 2].reshape(-1, 2)
    written = json.loads(json_bytes({"samples": values}))["samples"]
    assert written == float32_decimals(values).tolist()


def test_json_bytes_sorts_keys_and_writes_nan_as_null():
    values = np.array([np.nan, np.inf, -np.inf, 0.5], np.float32)
    assert json_bytes({"b": values, "a": 1}) == b'{"a":1,"b":[null,null,null,0.5]}\n'


def test_shape_is_kept():
    values = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 10
    assert float32_decimals(values).shape == (2, 3, 4)
    assert float32_decimals(values)[0, 0, 1] == 0.1


def test_samples_json_round_trips_and_is_shorter(client):
    """The JSON samples, parsed into float32, equal the NPY answer bit for bit, in fewer bytes
    than float64's reprs of the same values."""
    body, url = {"n": 500, "seed": 5}, "/v1/models/ring8-gan/samples"
    answer = client.post(url, json=body)
    npy = client.post(url, json=body, headers={"Accept": "application/x-npy"})
    exact = np.load(io.BytesIO(npy.data), allow_pickle=False)
    samples = np.asarray(answer.get_json()["samples"], np.float64).astype(np.float32)
    np.testing.assert_array_equal(samples, exact)
    assert len(answer.data) < 0.8 * len(json.dumps(exact.tolist()))
