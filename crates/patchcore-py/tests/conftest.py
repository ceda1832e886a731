"""Shared data for the Python tests: the folder beside the repository that holds fixtures/
and datasets/ (PATCHCORE_SHARED_DIR overrides it). Tests that need it fail, not skip, when it
is missing, as the Rust tests do."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def shared() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("PATCHCORE_SHARED_DIR", REPO.parent / "shared"))
    if not (path / "fixtures").is_dir():
        pytest.fail(
            f"shared data missing: {path}/fixtures (set PATCHCORE_SHARED_DIR to the folder "
            "holding fixtures/ and datasets/)"
        )
    return path


@pytest.fixture(scope="session")
def bottle(shared: pathlib.Path) -> pathlib.Path:
    path = shared / "datasets" / "mvtec_ad_256" / "bottle"
    if not (path / "train" / "good").is_dir():
        pytest.fail(f"MVTec AD bottle missing under {path}")
    return path


@pytest.fixture(scope="session")
def metrics(shared: pathlib.Path):
    """The metrics fixture: image scores and labels, pixel maps and masks, reference values."""
    from safetensors.numpy import load_file

    return load_file(str(shared / "fixtures" / "metrics.safetensors"))
