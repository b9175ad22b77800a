"""Packaging: the version has one home (vae_numpy/_version.py) and a build reads it without
importing numpy (pip builds in an isolated environment where numpy may not be installed)."""
import subprocess
import sys
from pathlib import Path

import pytest

import vae_numpy
from vae_numpy import _version, checkpoint, crosscheck

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter with numpy and scipy made unimportable, as in a build environment.
READ_VERSION = """
import sys
sys.modules["numpy"] = None
sys.modules["scipy"] = None
from setuptools.config.setupcfg import read_configuration
print(read_configuration("setup.cfg")["metadata"]["version"])
"""


def test_every_module_reports_the_one_version():
    assert vae_numpy.__version__ == _version.__version__
    assert checkpoint.__version__ is _version.__version__
    assert crosscheck.__version__ is _version.__version__


def test_setup_cfg_reads_the_version_without_numpy():
    pytest.importorskip("setuptools")
    out = subprocess.run([sys.executable, "-c", READ_VERSION], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == _version.__version__
