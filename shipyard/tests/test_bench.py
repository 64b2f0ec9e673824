"""shipyard/bench/bench.py: the figures it reports are sound, checked on the real image."""

import sys

import pytest
from support import DOCKER, ROOT, context

from shipyard.tooling import bootstrap

sys.path.insert(0, str(ROOT / "shipyard" / "bench"))
import bench  # bench/ is a folder of scripts, not a package

pytestmark = pytest.mark.docker


def test_the_size_split_puts_each_layer_where_it_belongs(distroless):
    """The distroless tree counts as base, the venv as dependencies, the source as app."""
    base = bootstrap.base(context())  # what the image was built on
    size = bench.image_size(DOCKER, "this project", distroless.ref, base)
    assert sum(size.parts.values()) == size.uncompressed
    assert 10e6 < size.parts["base"] < 60e6
    assert size.parts["dependencies"] > 100e6
    assert 0 < size.parts["app"] < 1e6
    assert 0 < size.compressed < size.uncompressed
