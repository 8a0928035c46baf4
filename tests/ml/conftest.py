"""Tiny model folders built once per test session, loaded through the real `from_pretrained` path."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Build (once) and return the folder of a tiny model by architecture name."""
    from deckchat.ml.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    built: dict[str, str] = {}

    def folder(arch: str) -> str:
        if arch not in built:
            built[arch] = str(build_tiny_model(root / arch, arch))
        return built[arch]

    return folder
