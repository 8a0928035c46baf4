"""Tiny model folders built once per test session, loaded through the real `from_pretrained` path, and
engines over them."""

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


@pytest.fixture
def one_thread():
    """Torch on one CPU thread for the test (opt in with `pytest.mark.usefixtures("one_thread")`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a busy 2-core machine wait on each other for every small op
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def loaded(tiny_models):
    """Load (once per test module) and return the tiny model of an architecture, on the CPU."""
    from deckchat.ml.models import load_model

    cache = {}

    def get(arch):
        if arch not in cache:
            cache[arch] = load_model(tiny_models(arch), device="cpu")
        return cache[arch]

    return get


@pytest.fixture
def engine_for(loaded):
    """Make a ready LocalEngine over a tiny model (options as keyword arguments); closed after the test."""
    from deckchat.ml.local import LocalEngine

    engines = []

    def make(arch, **options):
        engine = LocalEngine(loaded(arch), **options)
        assert engine.ready.wait(60)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()
