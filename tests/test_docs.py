"""The documentation's links to code and tests resolve, and its formulas are the code's.

docs/math.md names, after every displayed equation, the function that computes it
(``vae_numpy/<module>.py::<name>``) and the test that proves it (``tests/<file>.py::<test>``).
A renamed function or test breaks this file, which is the point: fix the link.
"""
import ast
import importlib
import pathlib
import re

import numpy as np
import pytest

from vae_numpy import gradcheck

ROOT = pathlib.Path(__file__).resolve().parents[1]
MATH = ROOT / "docs" / "math.md"
README = ROOT / "README.md"

CODE_REF = re.compile(r"`(vae_numpy/[\w/]+\.py)::([\w.]+)`")
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::([\w]+)`")
FILE_REF = re.compile(r"`((?:demos|benchmarks|docs|tests|vae_numpy)/[\w/.-]+\.(?:py|md))`")


def math_text():
    return MATH.read_text(encoding="utf-8")


def resolve_code(path, name):
    """The object ``name`` (``f`` or ``Class.method``) in the module at ``path``."""
    module = importlib.import_module(path[:-len(".py")].replace("/", "."))
    obj = module
    for part in name.split("."):
        obj = getattr(obj, part)  # AttributeError names what is missing
    return obj


def defined_tests(path):
    """Top-level test functions (and Class.method names) of a test file, read with ast."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(f"{node.name}.{f.name}" for f in node.body
                         if isinstance(f, ast.FunctionDef))
    return names


def refs(pattern, text):
    return sorted(set(pattern.findall(text)))


def test_math_page_names_code_that_exists():
    code = refs(CODE_REF, math_text())
    assert len(code) > 30  # the parser finds the links (a broken regex would pass vacuously)
    missing = []
    for path, name in code:
        try:
            resolve_code(path, name)
        except (ImportError, AttributeError) as e:
            missing.append(f"{path}::{name} ({e})")
    assert not missing, "docs/math.md names code that does not exist: " + "; ".join(missing)


def test_math_page_names_tests_that_exist():
    tests = refs(TEST_REF, math_text())
    assert len(tests) > 30
    missing = [f"{path}::{name}" for path, name in tests
               if not (ROOT / path).exists() or name not in defined_tests(path)]
    assert not missing, "docs/math.md names tests that do not exist: " + "; ".join(missing)


def test_math_page_names_files_that_exist():
    files = refs(FILE_REF, math_text())
    assert files
    missing = [f for f in files if not (ROOT / f).exists()]
    assert not missing, missing


def equation_blocks(text):
    """(line number, the lines that follow it up to the next block or heading) per ``` block."""
    lines = text.splitlines()
    fences = [i for i, line in enumerate(lines) if line.startswith("```")]
    assert len(fences) % 2 == 0, "unbalanced ``` fences in docs/math.md"
    blocks = []
    for open_i, close_i in zip(fences[::2], fences[1::2]):
        after = []
        for line in lines[close_i + 1:]:
            if line.startswith("```") or line.startswith("#"):
                break
            after.append(line)
        blocks.append((open_i + 1, after))
    return blocks


def test_every_equation_names_its_code_and_its_test():
    blocks = equation_blocks(math_text())
    assert len(blocks) > 15
    bad = []
    for line_no, after in blocks:
        code = [l for l in after if l.startswith("Code:") and CODE_REF.search(l)]
        test = [l for l in after if l.startswith("Test:") and TEST_REF.search(l)]
        if not (code and test):
            bad.append(line_no)
    assert not bad, f"equations in docs/math.md without a Code: and a Test: line: lines {bad}"


# The derivations live in the docstrings of the functions they justify, one copy each; the math
# page links to them. Each of these functions has a "Derivation" paragraph and is named on the
# page next to the word "derivation".
DERIVED_IN_DOCSTRINGS = [
    "vae_numpy/gaussian.py::kl_per_dimension",
    "vae_numpy/gaussian.py::kl_standard_normal_backward",
    "vae_numpy/gaussian.py::reparameterize_backward",
    "vae_numpy/likelihoods.py::bernoulli_nll",
    "vae_numpy/likelihoods.py::cb_log_norm",
    "vae_numpy/likelihoods.py::cb_log_norm_grad",
    "vae_numpy/likelihoods.py::continuous_bernoulli_mean",
    "vae_numpy/iwae.py::log_mean_exp_and_softmax",
    "vae_numpy/evaluate.py::iw_log_likelihood",
]


@pytest.mark.parametrize("ref", DERIVED_IN_DOCSTRINGS)
def test_each_derivation_is_in_its_functions_docstring_and_linked(ref):
    path, name = ref.split("::")
    assert "Derivation" in (resolve_code(path, name).__doc__ or ""), f"{ref} has no derivation"
    text = math_text()
    at = [m.start() for m in re.finditer(re.escape(f"`{ref}`"), text)]
    assert at, f"docs/math.md does not link {ref}"
    assert any("erivation" in text[max(0, i - 400):i] for i in at), \
        f"docs/math.md names {ref} but not as the place of a derivation"


def test_readme_math_section_links_the_walkthrough():
    text = README.read_text(encoding="utf-8")
    section = text.split("## The math, as the code computes it", 1)[1].split("\n## ", 1)[0]
    assert "(docs/math.md)" in section


# --- the README's statements that other code relies on --------------------------------------

README_ERROR = "max|analytic - numerical| / max(max|analytic|, max|numerical|)"


def test_readme_gradient_error_is_gradcheck_rel_error(rng):
    """The README's definition, transcribed here, equals gradcheck.rel_error, including when the
    numerical gradient is the larger one (where ``/ max|analytic|`` alone would differ)."""
    assert README_ERROR in README.read_text(encoding="utf-8")
    readme_formula = lambda a, n: np.max(np.abs(a - n)) / max(np.max(np.abs(a)), np.max(np.abs(n)))
    a = rng.standard_normal((4, 3))
    for n in (a + 1e-6 * rng.standard_normal(a.shape), 3 * a, 0.5 * a):
        assert gradcheck.rel_error(a, n) == pytest.approx(readme_formula(a, n), rel=1e-15)


def proven_table():
    """Rows ``(claim, cell)`` of the README's "What is proven, and where" table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## What is proven, and where", 1)[1].split("\n## ", 1)[0]
    rows = [l for l in section.splitlines() if l.startswith("| ") and not l.startswith("| claim")]
    return [tuple(c.strip() for c in row.strip("|").split("|")[-2:]) for row in rows]


def test_readme_proven_table_names_tests_that_exist():
    rows = proven_table()
    assert len(rows) >= 7
    for claim, cell in rows:
        tests = TEST_REF.findall(cell)
        assert tests, f"the README claim {claim!r} names no test function (tests/x.py::test_y)"
        for path, name in tests:
            assert name in defined_tests(path), f"{path}::{name} (README claim {claim!r})"


# --- docs/crosscheck.md: the formulas other frameworks implement -------------------------------
#
# Each documented formula, copied from the page (the test checks the text is there verbatim) and
# transcribed here by hand into NumPy, without vae_numpy's functions, then compared with what
# vae_numpy computes. A formula whose brackets change meaning, or code that drifts from the page,
# fails.

CROSSCHECK = ROOT / "docs" / "crosscheck.md"
DOC_RTOL = 1e-12  # two float64 evaluations of the same sums of O(10) terms


def _softplus(a):
    return np.log1p(np.exp(a))  # |a| <= 3 here: no overflow, no cancellation worth a digit


CROSSCHECK_RECS = {
    "bernoulli":
        ("`rec_b = sum_d [softplus(l_d) - x_d * l_d]`",
         lambda x, outs, sigma: np.sum(_softplus(outs[0]) - x * outs[0], axis=-1)),
    "gaussian":
        ("`rec_b = sum_d [(x_d - mean_d)**2 / (2 sigma**2) + log(sigma) + 0.5 * log(2 pi)]`",
         lambda x, outs, sigma: np.sum((x - outs[0]) ** 2 / (2 * sigma**2) + np.log(sigma)
                                       + 0.5 * np.log(2 * np.pi), axis=-1)),
    "gaussian_learned":
        ("`rec_b = 0.5 * sum_d [log(2 pi) + logvar_d + (x_d - mean_d)**2 * exp(-logvar_d)]`",
         lambda x, outs, sigma: 0.5 * np.sum(np.log(2 * np.pi) + outs[1]
                                             + (x - outs[0]) ** 2 * np.exp(-outs[1]), axis=-1)),
    "continuous_bernoulli":
        ("`rec_b = sum_d [softplus(l_d) - x_d * l_d - log C(l_d)]`",
         lambda x, outs, sigma: np.sum(_softplus(outs[0]) - x * outs[0]
                                       - np.log(outs[0] / np.tanh(outs[0] / 2)), axis=-1)),
}
CROSSCHECK_OTHERS = [
    "`C(l) = l / tanh(l / 2)`",
    "`kl_b = 0.5 * sum_j (mu_j**2 + exp(logvar_j) - 1 - logvar_j)`",
    "`loss = mean_b(rec_weight * rec_b + beta * kl_b)`",
    "`z = mu + std * eps`",
    "`std = exp(0.5 * logvar)`",
]


def test_crosscheck_page_states_the_formulas_tested_here():
    text = " ".join(CROSSCHECK.read_text(encoding="utf-8").split())  # lines rejoined
    for formula in [f for f, _ in CROSSCHECK_RECS.values()] + CROSSCHECK_OTHERS:
        assert formula in text, f"docs/crosscheck.md no longer states {formula}"


@pytest.mark.parametrize("likelihood", sorted(CROSSCHECK_RECS))
def test_crosscheck_page_formulas_are_the_codes(likelihood, rng):
    import vae_numpy as vn
    from vae_numpy.likelihoods import LIKELIHOODS

    D, J, B, sigma, beta, rec_weight = 7, 3, 5, 0.6, 1.7, 0.8
    cfg = vn.VAEConfig(input_dim=D, latent_dim=J, encoder_hidden=(4,), decoder_hidden=(4,),
                       activation="tanh", likelihood=likelihood, beta=beta, sigma=sigma,
                       rec_weight=rec_weight)
    params = vn.init_params(cfg, rng)
    x = rng.random((B, D)) if "bernoulli" in likelihood else rng.standard_normal((B, D))
    eps = rng.standard_normal((B, J))
    loss, _, terms = vn.loss_and_grads(params, x, eps, cfg, reduction="mean")
    mu, logvar = terms["mu"], terms["logvar"]

    # z = mu + std * eps, std = exp(0.5 * logvar); the decoder outputs at that z
    z = mu + np.exp(0.5 * logvar) * eps
    np.testing.assert_allclose(terms["z"], z, rtol=DOC_RTOL)
    outs = vn.decoder_outputs(params, z, cfg)
    assert all(np.abs(o).max() < 3 for o in outs[:1])  # the transcription's softplus range
    rec = CROSSCHECK_RECS[likelihood][1](x, outs, sigma)
    np.testing.assert_allclose(LIKELIHOODS[likelihood].nll(x, outs, sigma), rec, rtol=DOC_RTOL)
    np.testing.assert_allclose(terms["rec"], rec, rtol=DOC_RTOL)
    kl = 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, axis=-1)
    np.testing.assert_allclose(terms["kl"], kl, rtol=DOC_RTOL)
    assert loss == pytest.approx(np.mean(rec_weight * rec + beta * kl), rel=DOC_RTOL)


# --- the README's module map -------------------------------------------------------------------

MAP_HEADING = "## Layout: the module map"
MAP_ROW = re.compile(r"^\| `(vae_numpy/[\w/]+\.py)` \| (.+) \|$")
MATH_MODULES = ("layers", "gaussian", "likelihoods", "model", "iwae", "optim", "gradcheck",
                "estimators", "linear_gaussian", "schedule", "train", "evaluate")


def module_map():
    """The module paths of the README's map, in the order it lists them."""
    text = README.read_text(encoding="utf-8")
    assert MAP_HEADING in text, f"README.md has no {MAP_HEADING!r} section"
    section = text.split(MAP_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = [MAP_ROW.match(line) for line in section.splitlines()]
    return [(m.group(1), m.group(2)) for m in rows if m]


def test_readme_module_map_lists_every_module_once_and_nothing_else():
    listed = [path for path, _ in module_map()]
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "vae_numpy").rglob("*.py")}
    assert len(listed) == len(set(listed)), "a module appears twice in the README's map"
    assert not on_disk - set(listed), f"modules missing from the README's map: " \
                                      f"{sorted(on_disk - set(listed))}"
    assert not set(listed) - on_disk, f"the README's map lists modules that do not exist: " \
                                      f"{sorted(set(listed) - on_disk)}"
    assert all(len(what.strip()) > 10 for _, what in module_map()), "a map line says nothing"


def test_readme_module_map_reads_math_first_then_the_wings():
    listed = [path for path, _ in module_map()]
    top = [i for i, p in enumerate(listed) if p.count("/") == 1]
    wings = [i for i, p in enumerate(listed) if p.count("/") > 1]
    assert max(top) < min(wings), "the map lists a wing module before a top-level one"
    math_order = [listed.index(f"vae_numpy/{m}.py") for m in MATH_MODULES]
    assert math_order == list(range(len(MATH_MODULES))), \
        "the map starts with the math modules, in reading order"


# --- docs and code speak of the project only ------------------------------------------------------

# An issue number, a work session, or a path of the machine a file was written on means nothing
# to a reader (or a user of a shipped metrics.json): each is a defect, wherever it appears.
PRIVATE = re.compile(r"\bissues? #?\d+|\bsessions?\b|(?<![\w.])/(?:work|tmp|home|root|Users)/",
                     re.IGNORECASE)
SPOKEN_TO_READERS = ("README.md", "CHANGELOG.md", "docs/**/*.md", "docs/**/*.json",
                     "vae_numpy/**/*.py", "demos/**/*.py", "benchmarks/**/*.py")


def private_mentions(text):
    return [m.group(0) for m in PRIVATE.finditer(text)]


def test_the_private_mentions_pattern_finds_what_it_must():
    found = private_mentions('as issue 9 asked, in the last session, "data": "/work/x/mnist.npz", '
                             "see issue #12 and /tmp/run")
    assert found == ["issue 9", "session", "/work/", "issue #12", "/tmp/"]
    assert not private_mentions("they are issued afterwards; runs/mnist_ref; docs/results/")


def test_docs_code_and_shipped_results_name_no_issue_session_or_machine_path():
    files = sorted({p for pattern in SPOKEN_TO_READERS for p in ROOT.glob(pattern)})
    assert len(files) > 40  # the globs find the files
    found = {str(p.relative_to(ROOT)): private_mentions(p.read_text(encoding="utf-8"))
             for p in files}
    for path in sorted(ROOT.glob("docs/**/checkpoint.npz")):  # their JSON entries too
        with np.load(path) as z:
            text = " ".join(str(z[k]) for k in z.files if k.endswith("_json"))
        found[str(path.relative_to(ROOT))] = private_mentions(text)
    found = {k: v for k, v in found.items() if v}
    assert not found, f"issue numbers, sessions or machine paths: {found}"
