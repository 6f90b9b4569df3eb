"""Shared fixtures: a tiny model repository really trained and exported by the trainer."""

import json
import shutil
from pathlib import Path

import pytest

from service.app import create_app
from tests.helpers import make_config, train_and_export, train_and_export_score
from trainer.config import TrainConfig


@pytest.fixture(scope="session")
def tiny_image_config() -> TrainConfig:
    """A DCGAN on stacked digits that trains in about a second, evaluated on 1,000 samples."""
    return TrainConfig(
        dataset="stacked-digits",
        arch="dcgan",
        latent_dim=8,
        conv_width=8,
        batch_size=16,
        steps=6,
        log_every=3,
        eval_every=6,
        snapshot_every=3,
        eval_samples=1000,
    )


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/ with the references ring8 and grid25, a tiny ring8 GAN (`ring8-gan`) and a tiny
    grid25 score model (`grid25-edm`)."""
    from trainer.export import export_reference

    root = tmp_path_factory.mktemp("repo")
    models = root / "models"
    for dataset in ("ring8", "grid25"):
        export_reference(dataset, models)
    train_and_export(root / "runs", models, "ring8", "ring8-gan")
    train_and_export_score(root / "runs", models, "grid25", "grid25-edm")
    return models


@pytest.fixture
def repo_copy(model_repo: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny repository, for tests that break it."""
    return Path(shutil.copytree(model_repo, tmp_path / "models"))


@pytest.fixture
def app(model_repo: Path):
    return create_app(make_config(model_repo))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def ring8_reference(model_repo: Path) -> dict:
    return json.loads((model_repo / "ring8" / "card.json").read_text())["reference"]
