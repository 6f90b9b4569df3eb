"""Image diagnostics against the bundled classifier references (digits, stacked-digits,
stacked-digits4)."""

import io
import shutil

import numpy as np
import pytest

from service.app import create_app
from service.config import REPO_MODELS
from tests.helpers import make_config


@pytest.fixture(scope="module")
def client():
    return create_app(make_config(REPO_MODELS)).test_client()


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's real 8x8 digits in the classifier's range [-1, 1], and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images[:, None] / 8.0 - 1.0).astype(np.float32), data.target


def diagnose(client, batch: np.ndarray, reference: str, filename: str = "x.npy") -> dict:
    buffer = io.BytesIO()
    np.save(buffer, batch)
    form = {"file": (io.BytesIO(buffer.getvalue()), filename), "reference": reference}
    response = client.post("/v1/diagnostics", data=form, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_real_digits_are_healthy(client, digits):
    images, _ = digits
    report = diagnose(client, images, "digits")
    assert report["modes"]["covered"] == 10 and report["modes"]["missing"] == []
    assert report["high_quality_fraction"] > 0.95
    assert report["verdict"]["status"] == "healthy", report["verdict"]


def test_a_removed_class_is_named_missing(client, digits):
    images, labels = digits
    report = diagnose(client, images[labels != 3], "digits")
    assert report["modes"]["missing"] == [3]
    assert report["verdict"]["status"] == "partial_collapse"


def test_blurred_digits_are_low_quality_by_the_classifiers_rule(client, digits):
    """Averages of two digits of different classes are rarely classified confidently; the
    warning names the classifier's rule, not the mixtures' distance rule."""
    images, labels = digits
    partner = [np.flatnonzero(labels == (label + 5) % 10)[0] for label in labels[:400]]
    blurred = 0.5 * (images[:400] + images[partner])
    report = diagnose(client, blurred, "digits")
    assert report["high_quality_fraction"] < 0.5
    (warning,) = [r for r in report["verdict"]["reasons"] if r.startswith("low sample quality")]
    assert "classified with confidence >= 0.99" in warning and "std" not in warning


def test_channels_last_layout_is_accepted(client, digits):
    images, _ = digits
    report = diagnose(client, np.ascontiguousarray(images[:200].transpose(0, 2, 3, 1)), "digits")
    assert report["n_samples"] == 200


def test_stacked_digits_count_base_ten_modes(client, digits):
    """Triples of one digit class per channel land on mode 100 R + 10 G + B."""
    images, labels = digits
    by_class = {d: images[labels == d][:20] for d in range(10)}
    batch = np.concatenate([by_class[1], by_class[2], by_class[3]], axis=1)  # [20, 3, 8, 8]
    report = diagnose(client, batch, "stacked-digits")
    assert report["modes"]["covered"] == 1
    assert report["modes"]["histogram"][123] == report["high_quality_fraction"] * 20


def test_random_triples_cover_what_an_ideal_sampler_covers(client, digits):
    images, _ = digits
    picks = np.random.default_rng(0).integers(0, len(images), size=(600, 3))  # < 500 kB upload
    report = diagnose(client, images[picks][:, :, 0], "stacked-digits")
    expected = report["expected_covered_ideal"]
    assert abs(report["modes"]["covered"] - expected) < 4 * report["expected_covered_ideal_std"] + 5
    assert report["verdict"]["status"] == "healthy", report["verdict"]


def test_four_stacked_digits_count_base_ten_modes_of_10000(client, digits):
    """Stacks of the digits 1, 2, 3, 4 (one class per channel) land on mode 1234 of the
    stacked-digits4 reference; random stacks cover what an exact sampler with as many
    high-quality samples covers."""
    images, labels = digits
    by_class = {d: images[labels == d][:20] for d in range(10)}
    batch = np.concatenate([by_class[1], by_class[2], by_class[3], by_class[4]], axis=1)
    report = diagnose(client, batch, "stacked-digits4")
    assert report["modes"]["total"] == 10_000 and report["modes"]["covered"] == 1
    assert report["modes"]["histogram"][1234] == report["high_quality_fraction"] * 20
    assert report["all_samples"]["covered"] == 1
    picks = np.random.default_rng(0).integers(0, len(images), size=(400, 4))  # < 500 kB
    report = diagnose(client, images[picks][:, :, 0], "stacked-digits4")
    expected = report["expected_covered_same_quality"]
    spread = report["expected_covered_same_quality_std"]
    assert abs(report["modes"]["covered"] - expected) < 4 * spread + 5
    assert report["features"]["manifold"]["coverage"] > 0


def test_a_four_channel_batch_is_drawn_as_a_figure(client, digits):
    images, _ = digits
    picks = np.random.default_rng(1).integers(0, len(images), size=(100, 4))
    buffer = io.BytesIO()
    np.save(buffer, images[picks][:, :, 0])
    form = {"file": (io.BytesIO(buffer.getvalue()), "x.npy"), "reference": "stacked-digits4"}
    response = client.post(
        "/v1/diagnostics",
        data=form,
        content_type="multipart/form-data",
        headers={"Accept": "image/png"},
    )
    assert response.status_code == 200 and response.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_pixels_are_mapped_to_the_classifier_range(client, digits):
    """A zip of PNG digits (8-bit, [0, 1] once parsed) is scaled to [-1, 1] for the classifier."""
    import zipfile

    from PIL import Image

    images, labels = digits
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for index in range(50):
            pixels = np.round((images[index, 0] + 1) / 2 * 255).astype(np.uint8)
            png = io.BytesIO()
            Image.fromarray(pixels).save(png, format="PNG")
            zipped.writestr(f"{index:03d}.png", png.getvalue())
    form = {"file": (io.BytesIO(archive.getvalue()), "digits.zip"), "reference": "digits"}
    report = client.post(
        "/v1/diagnostics", data=form, content_type="multipart/form-data"
    ).get_json()
    histogram = np.asarray(report["modes"]["histogram"])
    assert histogram.sum() >= 45
    assert np.array_equal(np.flatnonzero(histogram), np.unique(labels[:50]))


def test_wrong_image_size_is_422(client):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4, 1, 9, 9), np.float32))
    form = {"file": (io.BytesIO(buffer.getvalue()), "x.npy"), "reference": "digits"}
    response = client.post("/v1/diagnostics", data=form, content_type="multipart/form-data")
    assert response.status_code == 422


def test_uploaded_image_reference_uses_the_classifier(client, digits):
    """The issue's acceptance with a classifier: a reference of real digits is embedded by the
    `digits` classifier; a batch without one class loses coverage, NDB flags bins, the verdict
    is partial_collapse and `missing` names the class."""
    images, labels = digits
    order = np.random.default_rng(0).permutation(len(images))
    half, other = order[: len(order) // 2], order[len(order) // 2 :]
    buffer = io.BytesIO()
    np.save(buffer, images[half])
    form = {"file": (io.BytesIO(buffer.getvalue()), "real.npy"), "name": "my-digits"}
    created = client.post("/v1/references", data=form, content_type="multipart/form-data")
    assert created.status_code == 201
    spec = created.get_json()["reference"]
    assert spec["type"] == "classifier" and spec["classifier"] == "digit-classifier"
    assert spec["classifier_version"] == 1 and spec["channels"] == 1
    assert spec["feature_dim"] == 64 and abs(sum(spec["weights"]) - 1) < 1e-9
    whole = diagnose(client, images[other], "my-digits")
    dropped = diagnose(client, images[other][labels[other] != 3], "my-digits")
    client.delete("/v1/references/my-digits")
    assert whole["verdict"]["status"] == "healthy", whole["verdict"]
    assert dropped["verdict"]["status"] == "partial_collapse"
    assert dropped["modes"]["missing"] == [3]
    coverage = [r["features"]["manifold"]["coverage"] for r in (whole, dropped)]
    assert coverage[1] < coverage[0] - 0.05
    assert dropped["features"]["ndb"]["ndb"] > whole["features"]["ndb"]["ndb"]


def png_upload(client, pixels: np.ndarray, reference: str, filename: str = "x.png"):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    form = {"file": (io.BytesIO(buffer.getvalue()), filename), "reference": reference}
    return client.post("/v1/diagnostics", data=form, content_type="multipart/form-data")


@pytest.mark.parametrize(
    ("pixels", "sent"),
    [
        (np.zeros((28, 28), np.uint8), "28x28 images with 1 channel"),
        # about 12 KB of PNG: 12,288 values per sample, over MAX_UPLOAD_DIM (it was a 413)
        (
            np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8),
            "64x64 images with 3 channels",
        ),
    ],
)
def test_a_wrong_size_png_says_what_was_sent_and_what_the_reference_takes(client, pixels, sent):
    response = png_upload(client, pixels, "digits")
    detail = response.get_json()["detail"]
    assert response.status_code == 422, detail
    assert detail == f"sent {sent}; reference 'digits' takes 8x8 images with 1 channel"


@pytest.mark.parametrize(
    ("array", "reference", "detail"),
    [
        (
            np.zeros((4, 1, 9, 9)),
            "digits",
            "sent 9x9 images with 1 channel; reference 'digits' takes 8x8 images with 1 channel",
        ),
        (
            np.zeros((4, 2)),
            "stacked-digits",
            "sent vectors of 2 values; reference 'stacked-digits' takes 8x8 images with 3 channels",
        ),
        (
            np.zeros((4, 8, 8)),
            "ring8",
            "sent 8x8 images with 1 channel; reference 'ring8' takes vectors of 2 values",
        ),
        (
            np.zeros((4, 5000)),
            "ring8",
            "sent vectors of 5000 values; reference 'ring8' takes vectors of 2 values",
        ),
    ],
)
def test_a_batch_that_does_not_fit_the_reference_is_422_in_words(client, array, reference, detail):
    buffer = io.BytesIO()
    np.save(buffer, array)
    form = {"file": (io.BytesIO(buffer.getvalue()), "x.npy"), "reference": reference}
    response = client.post("/v1/diagnostics", data=form, content_type="multipart/form-data")
    assert response.status_code == 422 and response.get_json()["detail"] == detail


def test_values_beyond_float32_are_422_not_500(client):
    """The classifier runs in float32: 1e40 is inf there (it was a 500)."""
    buffer = io.BytesIO()
    np.save(buffer, np.full((4, 1, 8, 8), 1e40))
    form = {"file": (io.BytesIO(buffer.getvalue()), "x.npy"), "reference": "digits"}
    response = client.post("/v1/diagnostics", data=form, content_type="multipart/form-data")
    assert response.status_code == 422 and "float32" in response.get_json()["detail"]


def test_a_reference_uploaded_before_classifier_models_still_diagnoses(client, digits):
    """Uploads stored by the previous layout name the built-in reference whose classifier
    embedded them ("classifier": "digits", with its input and value range): they are diagnosed
    by that reference's classifier, as references naming digit-classifier are."""
    import json

    images, _ = digits
    buffer = io.BytesIO()
    np.save(buffer, images[:300])
    form = {"file": (io.BytesIO(buffer.getvalue()), "real.npy"), "name": "new-layout"}
    spec = client.post("/v1/references", data=form, content_type="multipart/form-data")
    spec = spec.get_json()["reference"]
    store = client.application.extensions["references"]
    old = shutil.copytree(store.root / "new-layout", store.root / "old-layout")
    card = json.loads((old / "card.json").read_text())
    del card["reference"]["classifier_version"]
    card["name"] = "old-layout"
    card["reference"] |= {
        "classifier": "digits",
        "input": {"name": "images", "dtype": "float32", "shape": [-1, 1, 8, 8]},
        "value_range": [-1.0, 1.0],
    }
    (old / "card.json").write_text(json.dumps(card))
    reports = [diagnose(client, images[300:700], name) for name in ("new-layout", "old-layout")]
    client.delete("/v1/references/new-layout")
    client.delete("/v1/references/old-layout")
    assert reports[1] == {**reports[0], "reference": "old-layout"}
