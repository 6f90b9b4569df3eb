"""Uploaded references (POST/DELETE /v1/references) and self-diagnosis of a model."""

import io
import os

import numpy as np
import pytest

from lab.diagnostics.reference_passes import REFERENCE_PASSES
from service.app import create_app
from service.references import CARD_BYTES
from tests.helpers import make_config

PROBLEM = "application/problem+json"
PNG = {"Accept": "image/png"}


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def post_file(
    client,
    path: str,
    data: bytes,
    filename: str = "batch.npy",
    headers: dict | None = None,
    **fields,
):
    form = {"file": (io.BytesIO(data), filename), **fields}
    return client.post(path, data=form, content_type="multipart/form-data", headers=headers)


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 1,797 real 8x8 digits (shipped inside the package), [N, 1, 8, 8] in [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images[:, None] / 16.0, data.target


def test_create_list_get_delete(client):
    points = np.random.default_rng(0).normal(size=(200, 3))
    created = post_file(client, "/v1/references", npy(points), name="my-ref")
    assert created.status_code == 201 and created.headers["Location"] == "/v1/references/my-ref"
    card = created.get_json()
    assert card["reference"]["embedding"] == "raw" and card["reference"]["n"] == 200
    listed = {r["name"]: r for r in client.get("/v1/references").get_json()["references"]}
    assert listed["my-ref"]["source"] == "upload" and listed["ring8"]["source"] == "builtin"
    assert client.get("/v1/references/my-ref").get_json() == card
    assert client.delete("/v1/references/my-ref").status_code == 204
    assert client.get("/v1/references/my-ref").status_code == 404
    assert client.delete("/v1/references/my-ref").status_code == 404


def test_uploaded_reference_is_seen_by_another_worker(model_repo, tmp_path):
    """Two app instances (two gunicorn workers) sharing DATA_DIR see the same references."""
    first, second = (
        create_app(make_config(model_repo, data_dir=tmp_path)).test_client() for _ in range(2)
    )
    post_file(first, "/v1/references", npy(np.ones((50, 2)) * np.arange(50)[:, None]), name="r")
    assert second.get("/v1/references/r").status_code == 200
    assert second.delete("/v1/references/r").status_code == 204
    assert first.get("/v1/references/r").status_code == 404


@pytest.mark.parametrize(
    ("name", "status"), [("ring8", 409), ("Bad Name", 400), ("../escape", 400), ("", 400)]
)
def test_bad_reference_names(client, name, status):
    response = post_file(client, "/v1/references", npy(np.zeros((10, 2))), name=name)
    assert response.status_code == status and response.mimetype == PROBLEM


def test_name_taken_is_409(client):
    post_file(client, "/v1/references", npy(np.eye(10)), name="twice")
    again = post_file(client, "/v1/references", npy(np.eye(10)), name="twice")
    assert again.status_code == 409 and "exists" in again.get_json()["detail"]


def test_caps_on_count_and_size(model_repo):
    client = create_app(
        make_config(model_repo, max_references=1, max_reference_samples=20)
    ).test_client()
    assert post_file(client, "/v1/references", npy(np.eye(10)), name="a").status_code == 201
    full = post_file(client, "/v1/references", npy(np.eye(10)), name="b")
    assert full.status_code == 409 and "MAX_REFERENCES" in full.get_json()["detail"]
    client.delete("/v1/references/a")
    big = post_file(client, "/v1/references", npy(np.zeros((21, 2))), name="c")
    assert big.status_code == 413 and "MAX_REFERENCE_SAMPLES" in big.get_json()["detail"]


def test_cap_on_stored_bytes(model_repo, tmp_path):
    """Room for one reference of np.eye(10) (800 bytes of float64 features + CARD_BYTES), not
    for a second beside its stored files."""
    room = np.eye(10).nbytes + CARD_BYTES + 500
    config = make_config(model_repo, data_dir=tmp_path, max_reference_bytes=room)
    client = create_app(config).test_client()
    assert post_file(client, "/v1/references", npy(np.eye(10)), name="a").status_code == 201
    full = post_file(client, "/v1/references", npy(np.eye(10)), name="b")
    assert full.status_code == 409 and "MAX_REFERENCE_BYTES" in full.get_json()["detail"]
    assert client.delete("/v1/references/a").status_code == 204
    assert post_file(client, "/v1/references", npy(np.eye(10)), name="b").status_code == 201


def test_built_in_reference_cannot_be_deleted(client):
    assert client.delete("/v1/references/ring8").status_code == 409


def test_nan_reference_is_422(client):
    response = post_file(client, "/v1/references", npy(np.full((10, 2), np.nan)), name="nan")
    assert response.status_code == 422


def test_digits_with_one_class_removed_is_partial_collapse(client, digits):
    """The issue's acceptance: a reference of real digits, a batch missing one class."""
    images, labels = digits
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    reference, batch = order[: len(order) // 2], order[len(order) // 2 :]
    post_file(client, "/v1/references", npy(images[reference]), name="digits-real")
    whole = post_file(
        client, "/v1/diagnostics", npy(images[batch]), reference="digits-real"
    ).get_json()
    without_3 = batch[labels[batch] != 3]
    dropped = post_file(
        client, "/v1/diagnostics", npy(images[without_3]), reference="digits-real"
    ).get_json()
    assert whole["verdict"]["status"] == "healthy", whole["verdict"]
    assert dropped["verdict"]["status"] == "partial_collapse", dropped["verdict"]
    coverage = [r["features"]["manifold"]["coverage"] for r in (whole, dropped)]
    assert coverage[1] < coverage[0] - 0.05
    assert dropped["features"]["ndb"]["ndb"] > whole["features"]["ndb"]["ndb"]
    # discovered modes in pixel space mix some classes, so the 3s' mode is starved, not empty
    assert whole["modes"]["total"] == dropped["modes"]["total"] == 10
    starved = [
        k
        for k, (before, after) in enumerate(
            zip(whole["modes"]["histogram"], dropped["modes"]["histogram"], strict=True)
        )
        if after < 0.2 * before
    ]
    assert len(starved) == 1


def test_images_in_channels_last_layout_fit_the_reference(client, digits):
    images, _ = digits
    post_file(client, "/v1/references", npy(images[:300]), name="d300")
    last = np.ascontiguousarray(images[300:400].transpose(0, 2, 3, 1))  # [N, 8, 8, 1]
    report = post_file(client, "/v1/diagnostics", npy(last), reference="d300")
    assert report.status_code == 200 and report.get_json()["n_samples"] == 100


def test_images_of_another_size_are_422(client, digits):
    images, _ = digits
    post_file(client, "/v1/references", npy(images[:100]), name="d100")
    response = post_file(client, "/v1/diagnostics", npy(np.zeros((10, 1, 9, 9))), reference="d100")
    detail = "sent 9x9 images with 1 channel; reference 'd100' takes 8x8 images with 1 channel"
    assert response.status_code == 422 and response.get_json()["detail"] == detail


def test_self_diagnosis_equals_sampling_then_uploading(client):
    report = client.post("/v1/models/ring8-gan/diagnose", json={"n": 500, "seed": 3}).get_json()
    drawn = client.post(
        "/v1/models/ring8-gan/samples",
        json={"n": 500, "seed": 3},
        headers={"Accept": "application/x-npy"},
    )
    uploaded = post_file(
        client, "/v1/diagnostics", drawn.data, filename="s.npy", reference="ring8"
    ).get_json()
    assert report["model"] == "ring8-gan" and report["seed"] == 3
    assert {k: v for k, v in report.items() if k not in ("model", "version", "seed")} == uploaded


@pytest.mark.parametrize("kind", ["mixture", "images", "vectors"])
def test_report_figure_is_a_png(client, digits, ring8_reference, kind):
    from PIL import Image

    from tests.helpers import draw_mixture

    if kind == "mixture":
        response = post_file(
            client,
            "/v1/diagnostics",
            npy(draw_mixture(ring8_reference, 500, [0, 1, 2])),
            reference="ring8",
            headers=PNG,
        )
    else:
        batch = (
            digits[0][:200] if kind == "images" else np.random.default_rng(1).normal(size=(300, 5))
        )
        post_file(client, "/v1/references", npy(batch), name=f"fig-{kind}")
        response = post_file(
            client, "/v1/diagnostics", npy(batch[:150]), reference=f"fig-{kind}", headers=PNG
        )
    assert response.status_code == 200
    with Image.open(io.BytesIO(response.data)) as image:
        assert image.format == "PNG" and image.size == (1200, 550)


def test_without_a_reference_only_vendi_and_duplicates(client, digits):
    images, _ = digits
    report = post_file(client, "/v1/diagnostics", npy(images[:300])).get_json()
    assert report["reference"] is None and report["modes"] is None
    assert report["features"]["manifold"] is None and report["features"]["vendi"] > 2
    assert report["verdict"]["status"] == "healthy"
    copies = np.repeat(images[:1], 300, axis=0)
    copies += np.random.default_rng(0).normal(scale=1e-6, size=copies.shape)
    collapsed = post_file(client, "/v1/diagnostics", npy(copies)).get_json()
    assert collapsed["verdict"]["status"] == "collapsed"
    assert collapsed["verdict"]["reasons"][0].startswith("near-identical outputs")


def ring8_points(n: int, seed: int, modes: list[int] | None = None) -> np.ndarray:
    from tests.diagnostics.conftest import ring8_reference
    from tests.helpers import draw_mixture

    return draw_mixture(ring8_reference(), n, modes, seed)


@pytest.fixture(scope="module")
def ring8_upload(model_repo, tmp_path_factory):
    """(data dir, card) of a reference of 2,000 real ring8 points uploaded with no centres."""
    data_dir = tmp_path_factory.mktemp("cluster-modes")
    client = create_app(make_config(model_repo, data_dir=data_dir)).test_client()
    created = post_file(client, "/v1/references", npy(ring8_points(2000, 1)), name="ring8-real")
    assert created.status_code == 201, created.get_json()
    return data_dir, created.get_json()


def test_uploaded_points_get_discovered_modes(ring8_upload):
    data_dir, card = ring8_upload
    modes = card["reference"]["modes"]
    assert modes["k"] == 8 and modes["k_rule"] == "silhouette" and len(modes["radii"]) == 8
    assert modes["n_fit"] == 1600 and modes["n_held_out"] == 400
    folder = data_dir / "references" / "ring8-real"
    assert sorted(p.name for p in folder.iterdir()) == [
        "card.json",
        "centres.npy",
        "exemplars.npy",
        "features.npy",
        "passes.npz",
    ]
    assert np.load(folder / "exemplars.npy").shape == (8, 4, 2)


def test_stored_passes_spare_each_worker_the_reference_sweeps(model_repo, ring8_upload):
    """The reference's k-NN sweep and K-means are stored with it: another worker's first
    report against it computes neither, and says what a fresh computation says."""
    data_dir, _ = ring8_upload
    with np.load(data_dir / "references" / "ring8-real" / "passes.npz") as stored:
        assert sorted(stored.files) == ["bin_centres", "bin_inertia", "bin_labels", "neighbours"]
        assert stored["neighbours"].shape == (2000, 6) and stored["bin_centres"].shape == (100, 2)
    batch = npy(ring8_points(1000, 5))
    REFERENCE_PASSES.clear()  # a fresh worker: only what it reads from disk
    client = create_app(make_config(model_repo, data_dir=data_dir)).test_client()
    report = post_file(client, "/v1/diagnostics", batch, reference="ring8-real").get_json()
    assert (REFERENCE_PASSES.hits, REFERENCE_PASSES.misses) == (2, 0)
    fresh = create_app(make_config(model_repo, data_dir=data_dir, reference_pass_entries=0))
    recomputed = post_file(fresh.test_client(), "/v1/diagnostics", batch, reference="ring8-real")
    assert recomputed.get_json() == report
    REFERENCE_PASSES.entries = 8
    REFERENCE_PASSES.clear()


def test_unusable_stored_passes_are_computed_instead(model_repo, tmp_path, capsys):
    client = create_app(make_config(model_repo, data_dir=tmp_path)).test_client()
    points = ring8_points(400, 3)
    assert post_file(client, "/v1/references", npy(points), name="r").status_code == 201
    expected = post_file(client, "/v1/diagnostics", npy(points[::-1]), reference="r").get_json()
    folder = tmp_path / "references" / "r"
    np.savez(folder / "passes.npz", neighbours=np.zeros((3, 6)))  # rows of another reference
    os.utime(folder / "card.json")  # the card changed: the workers read the reference again
    REFERENCE_PASSES.clear()
    other = create_app(make_config(model_repo, data_dir=tmp_path)).test_client()
    capsys.readouterr()
    report = post_file(other, "/v1/diagnostics", npy(points[::-1]), reference="r")
    assert report.get_json() == expected
    assert "passes.npz does not fit its features" in "".join(capsys.readouterr())


def test_another_worker_names_the_missing_modes(model_repo, ring8_upload):
    """A second app (another gunicorn worker) reads the stored clustering from disk."""
    data_dir, card = ring8_upload
    client = create_app(make_config(model_repo, data_dir=data_dir)).test_client()
    batch = ring8_points(1000, 5, modes=[0, 1, 2, 3, 5, 7])
    report = post_file(client, "/v1/diagnostics", npy(batch), reference="ring8-real").get_json()
    assert report["verdict"]["status"] == "partial_collapse"
    centres = np.load(data_dir / "references" / "ring8-real" / "centres.npy")
    missing = report["modes"]["missing"]
    angles = np.round(np.arctan2(centres[missing, 1], centres[missing, 0]) / (np.pi / 4)) % 8
    assert sorted(angles.tolist()) == [4.0, 6.0]
    rows = card["reference"]["modes"]["exemplar_rows"]
    assert report["modes"]["missing_exemplars"] == [
        {"mode": k, "reference_rows": rows[k]} for k in missing
    ]
    figure = post_file(client, "/v1/diagnostics", npy(batch), reference="ring8-real", headers=PNG)
    assert figure.status_code == 200 and figure.mimetype == "image/png"


@pytest.mark.parametrize("value", ["abc", "1", "101", "-3", "2.5", "\u0661\u0660"])  # Arabic 10
def test_modes_field_out_of_range_is_400(client, value):
    response = post_file(
        client, "/v1/references", npy(ring8_points(200, 0)), name="bad-modes", modes=value
    )
    body = response.get_json()
    assert response.status_code == 400 and response.mimetype == PROBLEM
    assert "'auto', 'none' or an integer from 2 to 100" in body["detail"]
    assert client.get("/v1/references/bad-modes").status_code == 404


def test_modes_field_none_and_k(client):
    points = ring8_points(300, 2)
    none = post_file(client, "/v1/references", npy(points), name="no-modes", modes="none")
    spec = none.get_json()["reference"]
    assert none.status_code == 201 and spec["modes"] is None and "modes=none" in spec["modes_note"]
    four = post_file(client, "/v1/references", npy(points), name="four-modes", modes="4")
    assert four.status_code == 201 and four.get_json()["reference"]["modes"]["k"] == 4
    assert four.get_json()["reference"]["modes"]["k_rule"] == "user"


def test_too_many_modes_for_the_rows_is_422(client):
    response = post_file(client, "/v1/references", npy(ring8_points(100, 0)), name="m", modes="9")
    detail = response.get_json()["detail"]
    assert response.status_code == 422 and "2 <= K <= 8 for 100 reference rows" in detail
    assert "upload at least 113 rows" in detail


def test_too_few_rows_for_auto_modes_stores_no_modes(client):
    created = post_file(client, "/v1/references", npy(np.eye(10)), name="tiny").get_json()
    assert created["reference"]["modes"] is None and "too few" in created["reference"]["modes_note"]


def test_image_reference_figure_shows_missing_modes(client, digits):
    images, labels = digits
    post_file(client, "/v1/references", npy(images[:600]), name="d600", modes="10")
    keep = np.flatnonzero(labels[600:] != 0) + 600  # 0s form a clean pixel-space cluster
    batch = npy(images[keep].astype(np.float32))  # < 500 kB: larger test-client bodies spool
    # to a temporary file that is left unclosed (a ResourceWarning, an error under pytest)
    report = post_file(client, "/v1/diagnostics", batch, reference="d600").get_json()
    assert report["modes"]["missing"] and report["modes"]["missing_exemplars"]
    shown = report["modes"]["missing_exemplars"][0]["reference_rows"]
    assert np.all(labels[shown] == 0)
    figure = post_file(client, "/v1/diagnostics", batch, reference="d600", headers=PNG)
    assert figure.status_code == 200 and figure.mimetype == "image/png"


def test_upload_cut_off_midway_stores_nothing(model_repo, tmp_path):
    client = create_app(make_config(model_repo, data_dir=tmp_path)).test_client()
    form = {"file": (io.BytesIO(npy(ring8_points(500, 0))), "b.npy"), "name": "cut"}
    whole = client.post("/v1/references", data=form, content_type="multipart/form-data")
    assert whole.status_code == 201 and client.delete("/v1/references/cut").status_code == 204
    data = npy(ring8_points(500, 0))
    cut = post_file(client, "/v1/references", data[: len(data) // 2], name="cut")
    assert cut.status_code == 400
    assert list((tmp_path / "references").iterdir()) == []


def test_failure_while_writing_leaves_nothing_half_written(model_repo, tmp_path, monkeypatch):
    import service.references

    client = create_app(make_config(model_repo, data_dir=tmp_path)).test_client()
    real_save = np.save

    def save(path, array, allow_pickle=True):
        if str(path).endswith("exemplars.npy"):
            raise OSError("disk full")
        real_save(path, array, allow_pickle=allow_pickle)

    data = npy(ring8_points(500, 0))
    monkeypatch.setattr(service.references.np, "save", save)
    failed = post_file(client, "/v1/references", data, name="half")
    assert failed.status_code == 500 and failed.mimetype == PROBLEM
    assert list((tmp_path / "references").iterdir()) == []
    monkeypatch.undo()
    assert client.get("/v1/references/half").status_code == 404
