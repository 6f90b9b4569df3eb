"""Fixtures for the trainer tests: a tiny config, a trained tiny run, the card validator."""

import json
from pathlib import Path

import jsonschema
import pytest

from lab.cards import SCHEMA_PATH
from trainer.config import TrainConfig
from trainer.training_loop import training_loop


@pytest.fixture(scope="session")
def tiny_config() -> TrainConfig:
    """A config that trains in well under a second: small nets, 20 steps, evaluated twice."""
    return TrainConfig(
        dataset="ring8",
        g_hidden=32,
        g_depth=2,
        d_hidden=32,
        d_depth=2,
        batch_size=64,
        steps=20,
        log_every=5,
        eval_every=10,
        snapshot_every=10,
        eval_samples=500,
    )


@pytest.fixture(scope="session")
def trained_run(tiny_config: TrainConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory trained once with tiny_config (shared, treat as read-only)."""
    run_dir = tmp_path_factory.mktemp("run")
    training_loop(tiny_config, run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="session")
def card_validator() -> jsonschema.protocols.Validator:
    """The repository's card schema (draft 2020-12), for validating every card we write."""
    schema = json.loads(SCHEMA_PATH.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)
