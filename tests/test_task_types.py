"""The task type registry is the one list the rest reads: settings, bodies, labels, priorities."""
from __future__ import annotations

import re
from pathlib import Path

from jobs import task_types
from jobs.settings import load_settings
from jobs.tasks import BODIES


def test_every_type_has_a_body_and_a_timeout_setting_with_its_default():
    settings = load_settings(_env_file=None)
    assert set(BODIES) == set(task_types.NAMES)
    for t in task_types.TYPES.values():
        assert settings.timeout_for(t.name) == t.default_timeout
        assert t.timeout_setting == f"timeout_{t.name}"


def test_a_timeout_is_set_by_its_documented_environment_variable(monkeypatch):
    monkeypatch.setenv("TIMEOUT_STATUS_CHECK", "7")
    assert load_settings(_env_file=None).timeout_for("status_check") == 7


def test_the_readme_documents_each_timeout_setting_with_its_default():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(TIMEOUT_[A-Z_]+)` \| `(\d+)` \|", readme, re.M))
    assert rows == {t.timeout_setting.upper(): f"{t.default_timeout:g}"
                    for t in task_types.TYPES.values()}


def test_labels_and_summaries_come_from_the_registry():
    assert task_types.label("content_generation") == "Post generation"
    assert task_types.label("something_else") == "something_else"
    assert task_types.summary({"type": "post_approval", "params": {"post_ids": [1, 2]}}) == "2 post(s)"
    assert task_types.summary({"type": "status_check", "params": {}}) == ""
    assert task_types.POSTED_TYPES == {"content_generation", "daily_operations", "launch_campaign"}
