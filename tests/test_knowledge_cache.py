"""The loaded Knowledge is reused for an unchanged profiles folder, and re-read when a file changes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cds_service.config import DEFAULT_PROFILES_DIR, Settings
from cds_service.core.knowledge import KnowledgeError, load_knowledge


def test_unchanged_folder_gives_the_same_knowledge():
    settings = Settings(profiles_dir=DEFAULT_PROFILES_DIR)
    assert load_knowledge(settings) is load_knowledge(settings)


def test_an_edited_artifact_is_read_again_and_checked(tmp_path):
    profiles = tmp_path / "profiles"
    shutil.copytree(DEFAULT_PROFILES_DIR, profiles)
    settings = Settings(profiles_dir=profiles)
    first = load_knowledge(settings)

    rulebook = profiles / "rulebook" / "rulebook.yaml"
    text = rulebook.read_text()
    rulebook.write_text(text + "\n# an edit\n")
    _touch_later(rulebook)
    second = load_knowledge(settings)
    assert second is not first
    assert second.rulebook.version == first.rulebook.version

    vs = profiles / "terminology" / "ValueSet-lvef.json"
    vs.write_text("{ not json")
    _touch_later(vs)
    with pytest.raises(KnowledgeError, match="ValueSet-lvef.json"):
        load_knowledge(settings)


def _touch_later(path: Path) -> None:
    """Move the mtime on, so the change is visible even on a coarse-grained file system clock."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
