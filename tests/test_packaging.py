"""Packaging: the version has one home (vae_numpy/_version.py) and a build reads it without
importing numpy (pip builds in an isolated environment where numpy may not be installed); the
modules are layered: none imports the package root, and their imports form no cycle."""
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


def package_imports():
    """{module: set of package modules it imports}, from the source (function-local imports
    included). A name imported from the package root that is not a module is recorded as the
    root, ``"__init__"``."""
    import ast
    modules = {p.stem for p in (ROOT / "vae_numpy").glob("*.py")}
    graph = {}
    for name in modules - {"__init__", "__main__"}:
        tree = ast.parse((ROOT / "vae_numpy" / f"{name}.py").read_text())
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    edges.add(node.module.split(".")[0])
                else:
                    edges.update(a.name if a.name in modules else "__init__" for a in node.names)
        graph[name] = edges
    return graph


def test_modules_never_import_the_package_root_and_have_no_import_cycle():
    graph = package_imports()
    upward = {m for m, edges in graph.items() if "__init__" in edges}
    assert not upward, f"modules importing from the package root: {sorted(upward)}"
    done, visiting = set(), []

    def visit(m):
        assert m not in visiting, f"import cycle: {' -> '.join(visiting + [m])}"
        if m in done:
            return
        visiting.append(m)
        for n in graph[m]:
            visit(n)
        visiting.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)
