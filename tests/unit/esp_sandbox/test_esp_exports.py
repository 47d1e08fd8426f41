"""Every esp_sandbox module says what it exports: ``__all__`` lists exactly its public definitions."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import esp_sandbox

_MODULES = sorted(["esp_sandbox", *(info.name for info in pkgutil.walk_packages(esp_sandbox.__path__, "esp_sandbox."))])


@pytest.mark.parametrize("name", _MODULES)
def test_all_lists_the_public_definitions(name):
    module = importlib.import_module(name)
    defined = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and getattr(value, "__module__", None) == name
    }

    if name == "esp_sandbox":
        assert not defined
        return
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    assert defined <= set(module.__all__), f"{name}: public but not exported: {defined - set(module.__all__)}"
    assert all(hasattr(module, attr) for attr in module.__all__), f"{name}: exports a name it lacks"
