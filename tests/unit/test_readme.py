"""README is the operators' reference: every error code and every setting is in it."""

from __future__ import annotations

from pathlib import Path

from exchange.config import Settings
from exchange.http.errors import ERROR_CODES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_error_code_is_explained_in_readme():
    missing = [code for code in ERROR_CODES if f"`{code}`" not in README]
    assert not missing, f"README's error table lacks {missing}"


def test_every_setting_is_in_readme():
    missing = [name for name in Settings.model_fields if f"`{name}`" not in README]
    assert not missing, f"README's configuration table lacks {missing}"
