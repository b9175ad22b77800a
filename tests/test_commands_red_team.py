"""The commands attacked as a user would, by accident or on purpose: nothing a user had is lost,
a wrong value is an error before any work (never a silently different run), and a problem is
one line, not a traceback. Each test is one case of the red-team table (docs/files.md)."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import vae_numpy as vn
from vae_numpy.commands import evaluate as evaluate_command
from vae_numpy.commands import train as train_command
from vae_numpy.commands.run import CommandError, run_command
from vae_numpy.crosscheck import compare, make_fixture
from vae_numpy.crosscheck import interop
from vae_numpy.files.atomic import atomic_write, remove_stale_temp_files, stale_temp_files
from vae_numpy.files.checkpoint import load_checkpoint, save_checkpoint
from vae_numpy.files.errors import FileFormatError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "docs" / "results" / "burda2016" / "vae"
# A train run of a second: 200 synthetic digits, one epoch of a 784-16-2 VAE.
TRAIN = ["--quick", "--n-train", "200", "--n-test", "50", "--hidden", "16", "--latent", "2",
         "--epochs", "1"]
# A reproduce_iwae_table run of a few seconds (30 steps, K = 50 on 100 test images).
REPRODUCE = ["--data", "synthetic", "--quick"]
PAGE = ("# Results\n\n<!-- table:begin -->\n| row | paper -log p(x) (active units) | vae_numpy "
        "-IW_K +- SE (active units) | training | machine |\n|---|---|---|---|---|\n"
        "| iwae5 (k = 5) | 85.54 | another row's line |\n<!-- table:end -->\n\nnotes\n")


def load_demo(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "demos" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reproduce():
    return load_demo("reproduce_iwae_table")


@pytest.fixture
def no_figures(monkeypatch, reproduce):
    """Runs that are not about figures skip them (matplotlib's drawing is the slow part)."""
    for module in (train_command, reproduce):
        monkeypatch.setattr(module, "have_matplotlib", lambda: False)


def snapshot(directory):
    """{relative path: bytes} of every file under directory (to prove nothing changed)."""
    directory = Path(directory)
    if not directory.exists():
        return None
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    import vae_numpy.commands.train as module
    real = module.have_matplotlib
    module.have_matplotlib = lambda: False
    try:
        train_command.main(TRAIN + ["--out-dir", str(out)])
    finally:
        module.have_matplotlib = real
    return out


@pytest.fixture(scope="module")
def reproduce_run(reproduce, tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce") / "run"
    real = reproduce.have_matplotlib
    reproduce.have_matplotlib = lambda: False
    try:
        reproduce.main(REPRODUCE + ["--out-dir", str(out)])
    finally:
        reproduce.have_matplotlib = real
    return out


def copy_of(run, tmp_path, name="copy"):
    out = tmp_path / name
    shutil.copytree(run, out)
    return out


def usage_error(capsys, call):
    """Run call(); it must end with exit status 2 and one line on stderr; return the line."""
    with pytest.raises(SystemExit) as stop:
        call()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


# --- nothing a user had is lost ----------------------------------------------------------------

def test_publish_refuses_a_page_with_a_stray_marker_naming_its_line(reproduce, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Page\n\nSee <!-- table:begin --> for how.\n\ntext\n\n" + PAGE)
    before = page.read_text()
    with pytest.raises(SystemExit, match=r"page.md: line 3: <!-- table:begin --> must stand "
                                         r"alone on its line"):
        reproduce.main(REPRODUCE + ["--out-dir", str(tmp_path / "run"), "--publish",
                                    str(tmp_path / "results" / "vae"), "--docs-page", str(page)])
    assert page.read_text() == before and not (tmp_path / "run").exists()


def test_publish_refuses_a_directory_that_holds_another_row(reproduce, reproduce_run, tmp_path):
    target = tmp_path / "results" / "vae"
    shutil.copytree(reproduce_run, target)   # row vae published there
    before = snapshot(target)
    with pytest.raises(SystemExit, match=r"holds the published results of row 'vae', which "
                                         r"publishing row 'iwae5' would replace; .* --publish "
                                         r".*results/iwae5"):
        reproduce.main(REPRODUCE + ["--row", "iwae5", "--out-dir", str(tmp_path / "run"),
                                    "--publish", str(target)])
    assert snapshot(target) == before and not (tmp_path / "run").exists()


def test_publish_replaces_only_its_own_row_and_keeps_copies(reproduce, reproduce_run, tmp_path,
                                                            no_figures):
    page, target = tmp_path / "page.md", tmp_path / "results" / "vae"
    page.write_text(PAGE)
    run = copy_of(reproduce_run, tmp_path, "run")
    args = ["--eval-only", "--overwrite", "--n-test", "20", "--out-dir", str(run), "--publish",
            str(target), "--docs-page", str(page)]
    reproduce.main(args + ["--eval-k", "5"])
    first = page.read_text().splitlines()
    reproduce.main(args + ["--eval-k", "7"])   # again, with other numbers
    lines = page.read_text().splitlines()
    assert len(lines) == len(first) and "| iwae5 (k = 5) | 85.54 | another row's line |" in lines
    [row] = [line for line in lines if line.startswith("| vae (k = 1)")]
    assert "K = 7," in row and lines[-1] == "notes"
    kept = sorted((run / "replaced").iterdir())[-1]   # what the second publication replaced
    assert (kept / "page" / "page.md").read_text().splitlines() == first
    assert json.loads((kept / "published" / "metrics.json").read_text())["evaluation"]["k"] == 5


@pytest.mark.parametrize("command", ["train", "reproduce"])
def test_a_new_run_never_replaces_an_earlier_one(command, reproduce, train_run, reproduce_run,
                                                 tmp_path):
    run, argv, main = {"train": (train_run, TRAIN, train_command.main),
                       "reproduce": (reproduce_run, REPRODUCE, reproduce.main)}[command]
    out = copy_of(run, tmp_path)
    before = snapshot(out)
    with pytest.raises(SystemExit) as stop:
        main(argv + ["--out-dir", str(out)])
    message = str(stop.value)
    assert "holds an earlier run (checkpoint.npz, metrics.json" in message
    assert f"continue it: " in message and f"--resume --out-dir {out}" in message
    assert f"start this run elsewhere: " in message and f"--out-dir {out}-2" in message
    assert "replace it: " in message and message.rstrip().endswith("--overwrite")
    assert snapshot(out) == before


def test_the_default_out_dir_becomes_a_numbered_one(tmp_path, monkeypatch, capsys, no_figures):
    monkeypatch.chdir(tmp_path)
    train_command.main(TRAIN)
    first = snapshot(tmp_path / train_command.OUT_DIR)
    metrics = train_command.main(TRAIN + ["--seed", "1"])
    assert snapshot(tmp_path / train_command.OUT_DIR) == first
    assert metrics["args"]["out_dir"] == f"{train_command.OUT_DIR}-2"
    assert (tmp_path / f"{train_command.OUT_DIR}-2" / "checkpoint.npz").exists()
    assert f"this run goes to {train_command.OUT_DIR}-2" in capsys.readouterr().err


def test_overwrite_removes_the_earlier_run_first_and_says_so(train_run, tmp_path, capsys,
                                                             no_figures):
    out = copy_of(train_run, tmp_path)
    (out / "manifold.png").write_bytes(b"an earlier run's figure")
    train_command.main(TRAIN + ["--seed", "1", "--overwrite", "--out-dir", str(out)])
    assert f"--overwrite: removed checkpoint.npz, metrics.json, manifold.png from {out}" in \
        capsys.readouterr().err
    assert not (out / "manifold.png").exists()   # no figure of the old run beside the new one
    assert load_checkpoint(out / "checkpoint.npz").extra["args"]["seed"] == 1


def test_eval_only_never_replaces_shipped_results(reproduce, tmp_path):
    shipped = tmp_path / "docs" / "results" / "burda2016" / "vae"
    shutil.copytree(SHIPPED, shipped)
    before = snapshot(shipped)
    with pytest.raises(SystemExit, match=r"this evaluation would replace metrics.json, "
                                         r"reproduction.md, learning_curve.png, samples.png in "
                                         r".*Evaluate a copy instead: mkdir -p runs/vae-eval && "
                                         r"cp .*checkpoint.npz runs/vae-eval/ && python "
                                         r"demos/reproduce_iwae_table.py --eval-only"):
        reproduce.main(["--eval-only", "--data", "synthetic", "--out-dir", str(shipped)])
    assert snapshot(shipped) == before


def test_a_killed_writers_temp_file_is_removed_by_the_next_run_and_a_live_ones_kept(tmp_path):
    writer = ("import sys, time; from vae_numpy.files.atomic import atomic_write\n"
              "with atomic_write(sys.argv[1]) as f:\n"
              "    f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", writer, str(tmp_path / "checkpoint.npz")],
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == b"writing"
    [temp] = tmp_path.glob(".checkpoint.npz.*.tmp")
    assert f".checkpoint.npz.{proc.pid}." in temp.name   # the writer's pid is in the name
    assert stale_temp_files(tmp_path) == ([], [])          # a live writer's file is not stale
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    live = tmp_path / f".metrics.json.{os.getpid()}.abcd1234.tmp"   # this process is alive
    live.write_bytes(b"being written")
    said = []
    assert remove_stale_temp_files(tmp_path, said.append) == [temp]
    assert live.exists() and not temp.exists()
    assert said[0].startswith("removed 1 temporary file(s)") and temp.name in said[0]


def test_an_unwritable_directory_is_named_not_the_temp_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the directory .*nowhere does not exist"):
        with atomic_write(tmp_path / "nowhere" / "a.json", "w") as f:
            f.write("{}")
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc: a directory no one, root included, can create files in")
    with pytest.raises(OSError, match=r"cannot write /proc/self/a.json: the directory "
                                      r"/proc/self does not take new files"):
        with atomic_write("/proc/self/a.json", "w") as f:
            f.write("{}")


@pytest.mark.parametrize("command", ["train", "reproduce"])
def test_without_matplotlib_the_numbers_are_written_and_the_figures_skipped(
        command, reproduce, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib fails
    out = tmp_path / "run"
    if command == "train":
        train_command.main(TRAIN + ["--out-dir", str(out)])
    else:
        reproduce.main(REPRODUCE + ["--out-dir", str(out)])
    assert "matplotlib is not installed: no figures this time" in capsys.readouterr().err
    assert "metrics.json" in os.listdir(out) and not list(out.glob("*.png"))


# --- silently wrong values become errors before any work --------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--budget-minutes", "0"], "argument --budget-minutes: must be a finite number > 0"),
    (["--budget-steps", "0"], "argument --budget-steps: must be an integer >= 1, got '0'"),
    (["--epochs", "0"], "argument --epochs: must be an integer >= 1, got '0'"),
    (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got '0'"),
    (["--n-train", "-5"], "argument --n-train: must be an integer >= 1, got '-5'"),
    (["--n-test", "-3"], "argument --n-test: must be an integer >= 1, got '-3'"),
    (["--n-test", "0"], "argument --n-test: must be an integer >= 1, got '0'"),
    (["--eval-k", "0"], "argument --eval-k: must be an integer >= 1, got '0'"),
    (["--adam-eps", "inf"], "argument --adam-eps: must be a finite number > 0, got 'inf'"),
])
def test_reproduce_refuses_values_it_used_to_replace_or_slice(reproduce, tmp_path, capsys, flags,
                                                              message):
    line = usage_error(capsys, lambda: reproduce.main(REPRODUCE + flags
                                                      + ["--out-dir", str(tmp_path / "run")]))
    assert line.startswith(f"reproduce_iwae_table.py: error: {message}")
    assert not (tmp_path / "run").exists()


def test_budget_of_keeps_the_values_given(reproduce):
    args = reproduce.parse_args(["--budget-steps", "7", "--batch-size", "3"])
    budget, batch = reproduce.budget_of(args)
    assert (budget.amount, budget.unit, batch) == (7, "steps", 3)


def test_evaluate_refuses_a_negative_n(train_run, tmp_path, capsys):
    line = usage_error(capsys, lambda: evaluate_command.main(
        [str(train_run / "checkpoint.npz"), "--n", "-5", "--out-dir", str(tmp_path / "e")]))
    assert line.startswith("vae-numpy evaluate: error: argument --n: must be an integer >= 1")


def test_reproduce_resume_compares_a_flag_given_with_its_default_value(reproduce, reproduce_run,
                                                                      tmp_path):
    out = copy_of(reproduce_run, tmp_path)
    c = load_checkpoint(out / "checkpoint.npz")   # the run as if started with --seed 3
    save_checkpoint(out / "checkpoint.npz", c.params, c.config, c.optimizer_state, c.rng,
                    c.history, {**c.extra, "args": {**c.extra["args"], "seed": 3}}, c.optimizer)
    with pytest.raises(SystemExit, match=r"these flags would change it: --seed 0 \(the "
                                         r"checkpoint has 3\)"):
        reproduce.main(["--resume", "--seed", "0", "--out-dir", str(out)])   # 0: the default


@pytest.mark.parametrize("command", ["train", "reproduce"])
def test_resume_refuses_another_commands_checkpoint(command, reproduce, train_run, reproduce_run,
                                                    tmp_path):
    if command == "train":   # train resuming reproduce_iwae_table's run
        out, main, match = copy_of(reproduce_run, tmp_path), train_command.main, \
            r"was written by reproduce_iwae_table.py; vae-numpy train continues its own runs"
    else:
        out, main, match = copy_of(train_run, tmp_path), reproduce.main, \
            r"was written by vae-numpy train; reproduce_iwae_table.py continues its own runs"
    before = snapshot(out)
    with pytest.raises(SystemExit, match=match):
        main(["--resume", "--out-dir", str(out)])
    assert snapshot(out) == before


def test_resume_refuses_a_batch_size_that_would_move_the_warm_up(tmp_path, no_figures):
    out = tmp_path / "run"
    train_command.main(TRAIN + ["--kl-warmup", "2", "--out-dir", str(out)])
    with pytest.raises(SystemExit, match=r"--batch-size 7 is refused on --resume of this run: "
                                         r"the KL warm-up \(2 epochs\) are counted in steps of "
                                         r"its batch size 128"):
        train_command.main(["--resume", "--epochs", "1", "--batch-size", "7", "--out-dir",
                            str(out)])


def test_compare_fails_gradients_with_an_imaginary_part():
    cfg = vn.VAEConfig(input_dim=6, latent_dim=2, encoder_hidden=(4,), decoder_hidden=(4,))
    fixture = make_fixture(cfg, 3, 0)
    grads = {k: v for k, v in fixture.items() if k.startswith("grad/")}
    real = compare(fixture, {"loss": fixture["loss"], **grads})
    assert real.status == "PASS"
    report = compare(fixture, {"loss": fixture["loss"],
                               **{k: v + 1e-3j for k, v in grads.items()}})
    assert report.status == "FAIL" and "imaginary part up to 0.001" in str(report)


# --- tracebacks where a sentence belongs ---------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda fx: compare(fx, [1, 2]), TypeError, "candidate must be a dict of arrays"),
    (lambda fx: compare(fx, None), TypeError, "candidate must be a dict of arrays"),
    (lambda fx: compare(fx, {"loss": [[1], [1, 2]]}), ValueError, r"candidate\['loss'\] is not "
                                                                  "an array NumPy can read"),
    (lambda fx: compare({**fx, "x": np.float64(1)}, {}), ValueError, r"no 'x' entry of shape"),
    (lambda fx: interop.tree_params(fx, ["fc1"]), TypeError, "names must be a dict"),
    (lambda fx: interop.tree_params(fx, "abc"), TypeError, "names must be a dict"),
    (lambda fx: interop.expected_layers({"config": 5}), ValueError, "'config' entry must be a "
                                                                    "JSON object"),
    (lambda fx: interop.tree_params({"config": np.array("{}")}, {"a": "enc.0"}), ValueError,
     "'config' entry must be a JSON object with a 'reduction'"),
    (lambda fx: interop.tree_params({"config": fx["config"]}, {"a": "enc.0"}), ValueError,
     r"fixture is missing entries \['param/enc.0.W'"),
    (lambda fx: interop.tree_grads({"params": {"encoder": {"fc1": {}}}},
                                   {"encoder/fc1": "enc.0"}), ValueError, "has no 'kernel'"),
])
def test_malformed_inputs_of_compare_and_interop_are_documented_errors(call, error, match):
    cfg = vn.VAEConfig(input_dim=6, latent_dim=2, encoder_hidden=(4,), decoder_hidden=(4,))
    with pytest.raises(error, match=match):
        call(make_fixture(cfg, 3, 0))


@pytest.mark.parametrize("history, extra, match", [
    ([{"epoch": "a"}], {}, r"record 0 has epoch 'a'; the records count the epochs 1, 2"),
    ([{"epoch": 1, "steps": 5}, {"epoch": 2, "steps": 3}], {}, r"record 1 has steps 3"),
    ([{"epoch": 1, "steps": 5, "train_rec": float("nan")}], {}, r"numbers that are not finite"),
    ([], {"args": 5}, r"has args 5; the recorded flags of a run are an object"),
    ([], {"command": "train"}, r"has command 'train'; .* a list of strings"),
])
def test_load_checkpoint_refuses_what_a_resume_could_not_use(tmp_path, history, extra, match):
    cfg = vn.VAEConfig(input_dim=6, latent_dim=2, encoder_hidden=(4,), decoder_hidden=(4,))
    path = save_checkpoint(tmp_path / "c.npz", vn.init_params(cfg, np.random.default_rng(0)),
                           cfg, history=history, extra=extra)
    with pytest.raises(FileFormatError, match=match):
        load_checkpoint(path)


@pytest.mark.parametrize("command", ["train", "reproduce"])
def test_resuming_a_minimal_checkpoint_is_one_line(command, reproduce, tmp_path):
    cfg = vn.VAEConfig(input_dim=784, latent_dim=2, encoder_hidden=(16,), decoder_hidden=(16,))
    save_checkpoint(tmp_path / "checkpoint.npz", vn.init_params(cfg, np.random.default_rng(0)),
                    cfg)   # the documented minimal call
    main = train_command.main if command == "train" else reproduce.main
    with pytest.raises(SystemExit, match=r"was written without a command's run record \(by "
                                         r"save_checkpoint directly, or another tool\)"):
        main(["--resume", "--out-dir", str(tmp_path)])


def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(tmp_path, monkeypatch, capsys,
                                                               no_figures):
    real_save = train_command.save_checkpoint

    def save_then_interrupt(*args, **kw):
        real_save(*args, **kw)
        raise KeyboardInterrupt   # Ctrl-C right after epoch 1's checkpoint

    monkeypatch.setattr(train_command, "save_checkpoint", save_then_interrupt)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        train_command.main(TRAIN + ["--epochs", "3", "--out-dir", str(out)])
    assert stop.value.code == 130
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == (f"vae-numpy train: interrupted; the last checkpoint is {out}/checkpoint.npz "
                    f"(after epoch 1); continue with: vae-numpy train --resume --out-dir {out} "
                    "--epochs 2")


def test_an_error_ends_an_open_progress_line_first(capsys):
    def work():
        sys.stderr.write("\repoch 1  batch 3/5")   # a progress line, still open
        raise CommandError("it went wrong")

    with pytest.raises(SystemExit, match="^prog: error: it went wrong$"):
        run_command("prog", work)
    assert capsys.readouterr().err == "\repoch 1  batch 3/5\n"
