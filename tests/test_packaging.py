"""Packaging: the version has one home (vae_numpy/_version.py) and a build reads it without
importing numpy (pip builds in an isolated environment where numpy may not be installed); the
modules are layered: none imports the package root, and their imports form no cycle."""
import subprocess
import sys
from pathlib import Path

import pytest

import vae_numpy
from vae_numpy import _version
from vae_numpy.crosscheck import fixture
from vae_numpy.files import checkpoint

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
    assert fixture.__version__ is _version.__version__


def test_setup_cfg_reads_the_version_without_numpy():
    pytest.importorskip("setuptools")
    out = subprocess.run([sys.executable, "-c", READ_VERSION], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == _version.__version__


def package_modules():
    """{dotted name inside the package: path}, e.g. "model", "data" (data/__init__.py),
    "data.npfiles"; the root's __init__ is "__init__"."""
    names = {}
    for path in sorted((ROOT / "vae_numpy").rglob("*.py")):
        parts = list(path.relative_to(ROOT / "vae_numpy").with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        names[".".join(parts)] = path
    return names


def _resolve(importer, is_package, node):
    """The dotted package/module name a relative (or absolute vae_numpy) import names."""
    if node.level == 0:
        if not (node.module or "").split(".")[0] == "vae_numpy":
            return None
        return node.module[len("vae_numpy"):].lstrip(".")
    base = [] if importer == "__init__" else importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def package_imports():
    """{module: set of package modules it imports}, from the source (function-local imports
    included). Importing ``a.b`` also runs the package ``a``'s __init__, so that is an edge too
    (unless the importer lives inside ``a``, which is then already being imported). A name
    imported from the package root that is not a module is recorded as the root, ``"__init__"``."""
    import ast
    modules = package_modules()
    graph = {}
    for name, path in modules.items():
        if name in ("__init__", "__main__"):
            continue
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text())
        edges = set()
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, is_package, node)
                if target is None:
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}" if target else a.name
                    targets.append(sub if sub in modules else (target or "__init__"))
            elif isinstance(node, ast.Import):
                targets = [a.name[len("vae_numpy"):].lstrip(".") or "__init__"
                           for a in node.names if a.name.split(".")[0] == "vae_numpy"]
            for target in targets:
                parts = target.split(".")
                for i in range(1, len(parts) + 1):   # the packages on the way, then the module
                    step = ".".join(parts[:i])
                    if step != name and not name.startswith(step + "."):
                        edges.add(step)
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


def test_the_command_line_prints_the_version(capsys):
    from vae_numpy.__main__ import main
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"vae_numpy {_version.__version__}\n"
    out = subprocess.run([sys.executable, "-m", "vae_numpy", "--version"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert out.stdout == f"vae_numpy {_version.__version__}\n"


def setup_cfg():
    import configparser
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def test_the_console_script_is_the_module_command():
    scripts = setup_cfg()["options.entry_points"]["console_scripts"].strip()
    assert scripts == "vae-numpy = vae_numpy.__main__:main"


def test_the_torch_extra_is_a_range_that_the_tested_version_satisfies():
    specifiers = pytest.importorskip("packaging.specifiers")
    (requirement,) = setup_cfg()["options.extras_require"]["torch"].split()
    assert requirement.startswith("torch") and "==" not in requirement, requirement
    tested = "2.13.0"  # what CI installs, word for word in .ci/run
    assert f"torch=={tested}" in (ROOT / ".ci" / "run").read_text()
    assert tested in specifiers.SpecifierSet(requirement[len("torch"):])
    assert "torch>=2.1" in (ROOT / "README.md").read_text()  # the README says what it asks for


def test_the_changelog_has_the_current_version_first():
    text = (ROOT / "CHANGELOG.md").read_text()
    first = next(line for line in text.splitlines() if line.startswith("## "))
    assert first.startswith(f"## {_version.__version__}"), first
