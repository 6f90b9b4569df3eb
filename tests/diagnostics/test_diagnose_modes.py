"""diagnose_modes: the mode keys of diagnose() alone, the same numbers."""

import numpy as np
import pytest

from lab.diagnostics import DiagnosticsError, diagnose, diagnose_modes
from lab.diagnostics.classifier import softmax
from tests.helpers import draw_mixture
from trainer.datasets import get_dataset


def test_mixture_modes_equal_the_full_report():
    reference = get_dataset("grid25").reference_spec()
    samples = draw_mixture(reference, 2500, modes=list(range(20)), seed=3)
    full = diagnose(samples, reference, "grid25")
    modes = diagnose_modes(samples, reference)
    assert modes == {key: full[key] for key in modes}
    assert modes["modes"]["covered"] == 20 and "features" not in modes


def test_classifier_modes_equal_the_full_report():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((300, 3, 10)) * 20
    reference = {"type": "classifier", "channels": 3, "n_modes": 1000, "weights": [1e-3] * 1000}
    reference["input"] = {"name": "images", "dtype": "float32", "shape": [-1, 1, 8, 8]}
    images = rng.uniform(-1, 1, (300, 3, 8, 8))
    classified = (softmax(logits), rng.standard_normal((300, 12)))
    features = rng.standard_normal((400, 12))
    full = diagnose(images, reference, "stacked", features, classified)
    modes = diagnose_modes(images, reference, classified)
    assert modes == {key: full[key] for key in modes}


def test_a_reference_without_modes_is_refused():
    with pytest.raises(DiagnosticsError, match="no modes"):
        diagnose_modes(np.zeros((3, 2)), {"type": "features"})


@pytest.mark.parametrize(
    ("modes", "status"),
    [(None, "healthy"), (list(range(20)), "partial_collapse"), ([3], "collapsed")],
)
def test_the_mode_rules_verdict_agrees_with_the_full_report(modes, status):
    reference = get_dataset("grid25").reference_spec()
    samples = draw_mixture(reference, 2500, modes=modes, seed=4)
    full = diagnose(samples, reference, "grid25")
    judged = diagnose_modes(samples, reference, with_verdict=True)["verdict"]
    assert judged["status"] == full["verdict"]["status"] == status
    assert judged["reasons"] and all(isinstance(reason, str) for reason in judged["reasons"])
    assert "verdict" not in diagnose_modes(samples, reference)  # only when asked
