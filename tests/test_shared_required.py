"""Tests whose shared images, browser or vdna 0.1.1 are absent skip, or fail where VDNA_REQUIRE_SHARED=1."""

from __future__ import annotations

import pytest
from helpers import run_pytest

NEEDING_SHARED = {
    "test_needing.py": """
        from conftest import data_dir, fixtures_dir, missing


        def test_images(data_dir):
            pass


        def test_dnas_of_vdna_011(fixtures_dir):
            pass


        def test_a_browser():
            missing("no browser here")
        """,
}


@pytest.mark.parametrize("required", [None, "1"])
def test_what_is_absent_skips_or_where_required_fails_with_the_same_message(tmp_path, required):
    absent = tmp_path / "no_shared"
    outcomes = run_pytest(tmp_path, NEEDING_SHARED, VDNA_SHARED=str(absent), VDNA_REQUIRE_SHARED=required)
    reason = "is absent: these tests need the shared real images beside the repository"
    messages = {
        "test_images": f"{absent / 'data'} {reason}",
        "test_dnas_of_vdna_011": f"{absent / 'fixtures' / 'vdna-0.1.1'} {reason}",
        "test_a_browser": "no browser here",
    }
    assert set(outcomes) == set(messages)
    for name, message in messages.items():
        outcome, shown = outcomes[name]
        if required:  # a fixture that fails is an error of the test's setup
            assert outcome == ("failure" if name == "test_a_browser" else "error"), (name, shown)
        else:
            assert outcome == "skipped", (name, shown)
        assert message in shown, (name, shown)
