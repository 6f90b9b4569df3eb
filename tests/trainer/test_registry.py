"""The registry: duplicates refused, unknown names listed."""

import pytest

from trainer.datasets import DATASETS
from trainer.losses import LOSSES
from trainer.nets import ARCHITECTURES
from trainer.registry import Registry


def test_register_and_get():
    registry: Registry[int] = Registry("thing")
    registry.register("one")(1)
    assert registry.get("one") == 1
    assert registry["one"] == 1
    assert "one" in registry
    assert registry.names() == ["one"]


def test_duplicate_name_is_refused():
    registry: Registry[int] = Registry("thing")
    registry.register("one")(1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("one")(2)
    assert registry.get("one") == 1


def test_unknown_name_lists_known_names():
    registry: Registry[int] = Registry("thing")
    registry.register("alpha")(1)
    registry.register("beta")(2)
    with pytest.raises(KeyError, match="unknown thing 'gamma'; known: alpha, beta"):
        registry.get("gamma")


def test_decorator_returns_target_unchanged():
    registry: Registry[type] = Registry("class")

    @registry.register("c")
    class C:
        pass

    assert registry.get("c") is C


@pytest.mark.parametrize(
    "registry, name",
    [(DATASETS, "ring8"), (DATASETS, "grid25"), (ARCHITECTURES, "mlp"), (LOSSES, "non-saturating")],
)
def test_builtin_names_are_registered(registry, name):
    assert name in registry.names()
