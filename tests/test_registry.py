"""Extractors registered for a while: unregister_extractor, registered_extractor, and the suite's fixtures
that register test extractors only while a test or a module uses them."""

from __future__ import annotations

import pytest
from helpers import run_pytest

from vdna.extractors import (
    create_extractor,
    list_extractors,
    register_extractor,
    registered_extractor,
    unregister_extractor,
)


def _never_built(pretrained=True, weights=None):
    raise AssertionError("registered, never built")


def _other(pretrained=True, weights=None):
    raise AssertionError("registered, never built")


def test_unregistering_removes_the_name():
    with registered_extractor("test_registry_net", _never_built):
        unregister_extractor("test_registry_net")
        assert "test_registry_net" not in list_extractors()
        with pytest.raises(ValueError, match="unknown feature extractor 'test_registry_net'"):
            create_extractor("test_registry_net")
        register_extractor("test_registry_net")(_other)  # the name is free again
    assert "test_registry_net" in list_extractors()  # the block removes only what it registered
    unregister_extractor("test_registry_net")
    assert "test_registry_net" not in list_extractors()


def test_unregistering_an_unknown_or_built_in_name_raises():
    unknown = "^no extractor named '{}' is registered; registered: {}$"
    with (registered_extractor("test_registry_net", _never_built),
          pytest.raises(ValueError, match=unknown.format("test_nothing", "test_registry_net"))):
        unregister_extractor("test_nothing")
    with pytest.raises(ValueError, match=unknown.format("test_registry_net", "none")):
        unregister_extractor("test_registry_net")
    for name in ("efficientnet_lite0", "vgg16", "timm:resnet18"):
        with pytest.raises(ValueError, match=f"^'{name}' is a built-in extractor; only registered"):
            unregister_extractor(name)
    assert "efficientnet_lite0" in list_extractors()


def test_a_registration_for_a_block_ends_with_the_block_even_on_an_exception():
    with (pytest.raises(RuntimeError, match="inside the block"),
          registered_extractor("test_registry_net", _never_built) as factory):
        assert factory is _never_built and "test_registry_net" in list_extractors()
        raise RuntimeError("inside the block")
    assert "test_registry_net" not in list_extractors()
    with (pytest.raises(ValueError, match="'vgg16' is the name of a built-in extractor"),
          registered_extractor("vgg16", _never_built)):
        pass
    with registered_extractor("test_registry_net", _never_built):
        with (pytest.raises(ValueError, match="an extractor named 'test_registry_net' is already registered"),
              registered_extractor("test_registry_net", _other)):
            pass
        with registered_extractor("test_registry_net", _never_built):  # the same factory again: kept after
            pass
        assert "test_registry_net" in list_extractors()
    assert "test_registry_net" not in list_extractors()


FIXTURES_IN_USE = {
    "test_first.py": """
        import pytest
        from conftest import registered, registered_in_module
        from vdna.extractors import list_extractors


        def factory(pretrained=True, weights=None):
            raise AssertionError("registered, never built")


        @pytest.fixture(scope="module")
        def module_net(registered_in_module):
            registered_in_module("test_module_net", factory)


        def test_registered_for_the_test(registered):
            registered("test_one_net", factory)
            registered("test_two_net", factory)
            assert {"test_one_net", "test_two_net"} <= set(list_extractors())


        def test_and_unregistered_after_it():
            assert "test_one_net" not in list_extractors() and "test_two_net" not in list_extractors()


        def test_registered_for_the_module(module_net):
            assert "test_module_net" in list_extractors()


        def test_and_still_there_for_its_next_test():
            assert "test_module_net" in list_extractors()


        def test_unregistered_after_a_failing_test(registered):
            registered("test_failing_net", factory)
            raise RuntimeError("the test fails")
        """,
    "test_second.py": """
        from vdna.extractors import list_extractors


        def test_nothing_is_left_in_the_next_module():
            assert [name for name in list_extractors() if name.startswith("test_")] == []
        """,
}


def test_the_fixtures_leave_no_test_extractor_registered(tmp_path):
    outcomes = run_pytest(tmp_path, FIXTURES_IN_USE)
    failing = outcomes.pop("test_unregistered_after_a_failing_test")
    assert failing[0] == "failure" and "the test fails" in failing[1]
    assert outcomes == {name: ("passed", "") for name in (
        "test_registered_for_the_test", "test_and_unregistered_after_it", "test_registered_for_the_module",
        "test_and_still_there_for_its_next_test", "test_nothing_is_left_in_the_next_module",
    )}
