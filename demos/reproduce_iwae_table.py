r"""Reproduce a row of Burda, Grosse & Salakhutdinov (2016), Table 1: MNIST, one stochastic layer.

The paper: Importance Weighted Autoencoders, ICLR 2016, arXiv:1509.00519v4 (its table is the
one quoted here; the first arXiv version's numbers differ).

    python demos/reproduce_iwae_table.py --data mnist.npz --row vae --budget-minutes 60 \
        --out-dir runs/burda_vae
    python demos/reproduce_iwae_table.py --data mnist.npz --row iwae5 --budget-minutes 120 \
        --out-dir runs/burda_iwae5
    python demos/reproduce_iwae_table.py --out-dir runs/burda_vae --resume   # after a stop

Trains (checkpoint after every epoch; ``--resume`` continues the same stage, learning rate
and budget clock), then evaluates -IW_5000 on all 10,000 test images and the active units,
and writes into --out-dir: checkpoint.npz, metrics.json, reproduction.md (paper vs. this run,
with epochs, wall time and the machine), learning_curve.png, samples.png. ``--publish DIR``
copies those into DIR (e.g. docs/results/burda2016/vae) and rebuilds the table of
docs/reproduction.md from every published row; ``--rebuild-docs`` rebuilds that table and each
published row's reproduction.md from the published metrics.json files and :data:`PAPER`,
without training (after a change to PAPER or to the table's format).

The protocol (docs/reproduction.md sets the paper's text, the authors' code and this script
side by side): the first 59,600 training images train, the last 400 are held out for
per-epoch monitoring (never the test set); training minibatches are binarized
dynamically; encoder 784-200-200 tanh to a 50-dimensional diagonal Gaussian (we output logvar,
they log sigma: the same family), decoder 50-200-200 tanh to 784 Bernoulli logits, output bias
at the logit of the training mean clipped to [0.001, 0.999]; Adam (0.9, 0.999, eps 1e-4);
8 stages, stage i with 3**i of the 3,280 epochs at rate 1e-3 * 10**(-i/7); test images
binarized once (vae_numpy.data.binarize_test_set, seed 0), K = 5000. Recipes:

    paper    the above, batch 20, 3,280 epochs (days on a CPU)
    budget   ours: the above squeezed into --budget-minutes of training wall time (stage i
             gets 3**i / 3280 of the time), batch 100 (more examples per second on a CPU) and
             every stage's rate times 3 (3e-3 down to 3e-4): in a pilot of 40,000 steps the
             held-out -ELBO after 31 epochs was 99.0 nats with the rates x3, 106.2 with x1

``--estimator stl`` or ``dreg`` trains an IWAE row with another gradient estimator for the
encoder (sticking the landing, doubly reparameterized; vae_numpy.iwae); the loss and the decoder's
gradient stay IWAE's. It is kept in the checkpoint, and ``--resume`` refuses another one.
``--step readable`` trains with ``loss_and_grads`` / vae_numpy.iwae's step themselves; no faster
copy remains, so the default step runs the same functions.

``--rates code`` takes the stage rates of the authors' code (1e-4 * round(10**(1 - i/7), 1));
their code's Adam (beta1 0.99, second moment started at ones, eps outside the bias
correction) is not implemented here.
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

from vae_numpy.commands.threads import (add_threads_flag, describe,  # imports no numpy
                                        set_thread_default, thread_choice)

if __name__ == "__main__":  # as a script: the thread default, before numpy is imported
    set_thread_default(sys.argv[1:])

import numpy as np  # noqa: E402

import vae_numpy  # noqa: E402
from vae_numpy import VAEConfig, init_params, sample  # noqa: E402
from vae_numpy.files.atomic import atomic_write  # noqa: E402
from vae_numpy.files.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from vae_numpy.commands.flags import parse_with_quick  # noqa: E402
from vae_numpy.data import MNIST_SOURCES, binarize_test_set, load_dataset  # noqa: E402
from vae_numpy.files.errors import NonFiniteError  # noqa: E402
from vae_numpy.evaluate import active_units, iw_log_likelihood, mean_and_stderr  # noqa: E402
from vae_numpy.optim import Adam  # noqa: E402
from vae_numpy.schedule import BURDA_EPOCHS, Budget, burda_schedule  # noqa: E402
from vae_numpy.train import (ESTIMATORS, STEPS, TrainState, format_record,  # noqa: E402
                             init_output_bias, train)

# --- the paper's table (Burda et al. 2016, arXiv v4, Table 1, MNIST, one stochastic layer) -------
# row: (objective, k, test -log p(x) with IW_5000 in nats, active units). The paper reports the
# active units of every row; None marks a value not yet transcribed and checked against the
# paper (the table prints "reported, not transcribed"), never "not reported".
PAPER = {
    "vae": ("vae", 1, 86.76, 19),
    "iwae5": ("iwae", 5, 85.54, None),
    "iwae50": ("iwae", 50, 84.78, None),
}
PAPER_UNITS_UNCHECKED = "reported, not transcribed"
# --- the protocol --------------------------------------------------------------------------------
N_TRAIN = 59600          # the first 59,600 training images train ...
N_HELD_OUT = 400         # ... the last 400 are the held-out monitoring set
HIDDEN = (200, 200)
LATENT = 50
ACTIVATION = "tanh"
OUTPUT_BIAS_CLIP = 1e-3  # logit of the training mean clipped to [0.001, 0.999]
ADAM = dict(beta1=0.9, beta2=0.999, eps=1e-4)
EVAL_K = 5000
TEST_BINARIZE_SEED = 0   # vae_numpy.data.binarize_test_set's default
HELD_OUT_BINARIZE_SEED = 0
EVAL_SEED = 0            # iw_log_likelihood draws its seed from default_rng(EVAL_SEED)
SEED = 0
RECIPES = {"paper": dict(batch_size=20, epochs=BURDA_EPOCHS, lr_scale=1.0),
           "budget": dict(batch_size=100, budget_minutes=60.0, lr_scale=3.0)}
QUICK = dict(n_train=500, n_held_out=50, n_test=100, eval_k=50, budget_steps=30)
MNIST_NEEDED = (f"--data is required: the paper's table is on MNIST. {MNIST_SOURCES} "
                "(--data data/mnist.npz). --quick runs on the built-in synthetic digits "
                "without it.")
N_SAMPLES = 100
DOCS_TABLE = os.path.join("docs", "reproduction.md")
DOCS_RESULTS = os.path.join("docs", "results", "burda2016")   # one published row per directory
TABLE_BEGIN, TABLE_END = "<!-- table:begin -->", "<!-- table:end -->"
# Flags that steer this invocation; with --resume everything else comes from the checkpoint.
RUN_FLAGS = ("out_dir", "resume", "eval_only", "publish", "docs_page", "data", "step",
             "rebuild_docs", "threads")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None, help="MNIST (.npz, IDX directory, ...); 'synthetic' "
                   "only for a smoke test (the default with --quick)")
    p.add_argument("--row", choices=sorted(PAPER), default="vae")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="budget")
    p.add_argument("--rates", choices=["paper", "code"], default="paper",
                   help="stage learning rates of the paper's text or of the authors' code")
    p.add_argument("--lr-scale", type=float, default=None,
                   help="multiplies every stage's rate (default: paper 1, budget 3)")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="training wall time (budget recipe; default 60)")
    p.add_argument("--epochs", type=int, default=None,
                   help="an epoch budget instead (paper recipe: 3280)")
    p.add_argument("--budget-steps", type=int, default=None, help="a step budget instead")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--estimator", choices=ESTIMATORS, default=None,
                   help="the IWAE rows' encoder gradient: iwae (the gradient of L_K, the "
                        "default), stl (sticking the landing) or dreg (doubly reparameterized); "
                        "kept in the checkpoint, so --resume continues with it")
    p.add_argument("--step", choices=STEPS, default="default",
                   help="readable: train with loss_and_grads / vae_numpy.iwae's step "
                        "themselves; no faster copy remains, so default runs the same")
    p.add_argument("--adam-eps", type=float, default=ADAM["eps"])
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--eval-k", type=int, default=EVAL_K)
    p.add_argument("--n-train", type=int, default=N_TRAIN)
    p.add_argument("--n-held-out", type=int, default=N_HELD_OUT)
    p.add_argument("--n-test", type=int, default=None, help="first N test images (default all)")
    p.add_argument("--out-dir", default="runs/burda")
    p.add_argument("--resume", action="store_true",
                   help="continue from <out-dir>/checkpoint.npz (its recipe, stage and clock)")
    p.add_argument("--eval-only", action="store_true", help="evaluate the checkpoint, no training")
    p.add_argument("--publish", default=None,
                   help="copy the results into this directory and rebuild docs/reproduction.md")
    p.add_argument("--docs-page", default=DOCS_TABLE,
                   help="the page whose table --publish rebuilds")
    p.add_argument("--rebuild-docs", action="store_true",
                   help=f"no training: rebuild --docs-page's table and each row's "
                        f"reproduction.md from the metrics.json files under {DOCS_RESULTS}")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run on synthetic digits: {QUICK} unless given")
    add_threads_flag(p)
    args = parse_with_quick(p, argv, QUICK)
    if args.quick and args.data is None and not (args.resume or args.eval_only):
        args.data = "synthetic"  # as the main demo's --quick; a resumed run keeps its data
    if args.lr_scale is None:
        args.lr_scale = RECIPES[args.recipe]["lr_scale"]
    return args


def budget_of(args):
    r"""The run's Budget and batch size from the recipe and the flags (flags win)."""
    recipe = RECIPES[args.recipe]
    batch = args.batch_size or recipe["batch_size"]
    given = [f for f in ("budget_minutes", "epochs", "budget_steps") if getattr(args, f)]
    if len(given) > 1:
        raise SystemExit(f"give one of --budget-minutes, --epochs, --budget-steps (got {given})")
    if args.budget_steps:
        return Budget(args.budget_steps, "steps"), batch
    if args.epochs:
        return Budget(args.epochs, "epochs"), batch
    minutes = args.budget_minutes or recipe.get("budget_minutes")
    if minutes:
        return Budget(60.0 * minutes, "seconds"), batch
    return Budget(recipe["epochs"], "epochs"), batch


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def machine():
    r"""CPU model, logical CPUs, BLAS and Python/NumPy versions, for the record."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            names = re.findall(r"model name\s*:\s*(.+)", f.read())
        cpu = names[0].strip() if names else cpu
    except OSError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:   # the config layout differs between NumPy versions
        blas = "unknown"
    threads = thread_choice()
    return {"cpu": cpu, "cpus": os.cpu_count(), "blas": blas,
            "openblas_threads": threads["threads"], "threads": threads,
            "python": platform.python_version(), "numpy": np.__version__,
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else None}


def code_version():
    r"""The git commit of the code that ran (None outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)),
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def load_splits(args, dtype):
    r"""Training images, the binarized held-out and test images."""
    log(describe(thread_choice()))
    log(f"loading {args.data} ...")
    data = load_dataset(args.data, dtype=np.dtype(dtype))
    n_train, n_held = args.n_train, args.n_held_out
    if n_train + n_held > len(data.x_train):
        raise SystemExit(f"--n-train {n_train} + --n-held-out {n_held} is more than the "
                         f"{len(data.x_train)} training images of {args.data}")
    x_train = data.x_train[:n_train]
    x_held = binarize_test_set(data.x_train[len(data.x_train) - n_held:],
                               HELD_OUT_BINARIZE_SEED)
    x_test = binarize_test_set(data.x_test[:args.n_test], TEST_BINARIZE_SEED)
    log(f"data: {len(x_train)} train, {len(x_held)} held-out, {len(x_test)} test images")
    return x_train, x_held, x_test, data.image_shape


def build(args, x_train):
    cfg = VAEConfig(input_dim=x_train.shape[1], latent_dim=LATENT, encoder_hidden=HIDDEN,
                    decoder_hidden=HIDDEN, activation=ACTIVATION, likelihood="bernoulli",
                    dtype=args.dtype)
    rng = np.random.default_rng(args.seed)
    params = init_params(cfg, rng)
    init_output_bias(params, x_train, cfg, clip=OUTPUT_BIAS_CLIP)
    schedule = burda_schedule(args.rates, args.lr_scale)
    optimizer = Adam(lr=schedule.lrs[0], beta1=ADAM["beta1"], beta2=ADAM["beta2"],
                     eps=args.adam_eps)
    return cfg, params, optimizer, optimizer.init(params), rng, [], schedule


def restore_args(args, saved, keep):
    r"""Take every flag from the checkpoint's record but those in ``keep``; with --resume a
    flag given explicitly that differs from the record is an error, not silently ignored."""
    defaults = vars(parse_args([]))
    for name, value in vars(args).items():
        given = name not in keep + ("quick",) and value != defaults[name]
        if args.resume and given and saved.get(name) != value:
            raise SystemExit(f"--{name.replace('_', '-')} {value} conflicts with the "
                             f"checkpoint's {saved.get(name)!r}: a resumed run keeps its "
                             "recipe, schedule (the schedule owns the learning rate) and "
                             "budget; drop the flag")
    vars(args).update({k: v for k, v in saved.items() if k not in keep})


def run_training(args, ckpt, ckpt_path, x_train, x_held):
    if ckpt is not None:
        cfg, params, optimizer = ckpt.config, ckpt.params, ckpt.optimizer
        opt_state, rng, history = ckpt.optimizer_state, ckpt.rng, ckpt.history
        schedule = burda_schedule(args.rates, args.lr_scale)
        log(f"resuming {ckpt_path} after epoch {len(history)}, "
            f"{history[-1]['clock_seconds'] if history else 0:.0f} s of training")
    else:
        cfg, params, optimizer, opt_state, rng, history, schedule = build(args, x_train)
    budget, batch = budget_of(args)
    objective, k = PAPER[args.row][:2]
    estimator = (args.estimator or "iwae") if objective == "iwae" else None
    extra = {"args": vars(args), "budget": budget.to_dict(), "schedule": schedule.to_dict(),
             "batch_size": batch, "objective": objective, "k": k, "estimator": estimator}
    via = f", estimator {estimator}" if estimator else ""
    log(f"row {args.row}: objective {objective}, k {k}{via}, recipe {args.recipe}, batch "
        f"{batch}, budget {budget.amount:g} {budget.unit}, rates {schedule.name}")

    def save(state):
        save_checkpoint(ckpt_path, state.params, cfg, state.opt_state, state.rng,
                        state.history, extra, state.optimizer)

    # A diverging run ends in a non-finite loss or a save that refuses NaN parameters, both
    # reported in one line by main(); numpy's overflow warnings on the way there add nothing.
    with np.errstate(over="ignore", invalid="ignore"):
        train(params, cfg, x_train, x_test=x_held, optimizer=optimizer, opt_state=opt_state,
              rng=rng, history=history, epochs=None, batch_size=batch, binarize="dynamic",
              objective=objective, k=k, estimator=estimator, schedule=schedule, budget=budget,
              callback=save, step=args.step)
    if not history or "examples" in history[-1] or not os.path.exists(ckpt_path):
        save(TrainState(record=None, params=params, opt_state=opt_state, optimizer=optimizer,
                        rng=rng, history=history))
    return cfg, params, history, extra


def evaluate(args, cfg, params, x_test):
    log(f"evaluating -IW_{args.eval_k} on {len(x_test)} test images ...")
    t0 = time.perf_counter()
    log_px = iw_log_likelihood(params, x_test, cfg, args.eval_k,
                               np.random.default_rng(EVAL_SEED), progress=True)
    nll, se = mean_and_stderr(-log_px)
    return {"iw_nll": nll, "iw_nll_se": se, "k": args.eval_k, "n_test": len(x_test),
            "active_units": active_units(params, x_test, cfg),
            "eval_seconds": time.perf_counter() - t0,
            "test_binarize_seed": TEST_BINARIZE_SEED, "eval_seed": EVAL_SEED}


def row_markdown(row, metrics):
    r"""One line of the paper-vs-measured table."""
    _, k, paper_nll, paper_au = PAPER[row]
    h, ev, m = metrics["history"], metrics["evaluation"], metrics["machine"]
    last = h[-1] if h else {}
    minutes = last.get("clock_seconds", 0.0) / 60
    au = f" ({PAPER_UNITS_UNCHECKED if paper_au is None else paper_au})"
    return (f"| {row} (k = {k}) | {paper_nll:.2f}{au} | K = {ev['k']}, {ev['n_test']} images: "
            f"**{ev['iw_nll']:.2f}** +- "
            f"{ev['iw_nll_se']:.2f} ({ev['active_units']}) | {metrics['recipe']}, batch "
            f"{metrics['batch_size']}, {last.get('epoch', 0)} epochs, {minutes:.1f} min | "
            f"{m['cpu']}, {m['openblas_threads']} BLAS thread(s) |")


def table_lines(rows):
    return ["| row | paper -log p(x) (active units) | vae_numpy -IW_K +- SE (active units) "
            "| training | machine |", "|---|---|---|---|---|"] + rows


def report_text(row, metrics):
    r"""A row's own reproduction.md: the paper-vs-measured table with that row alone."""
    table = table_lines([row_markdown(row, metrics)])
    return f"# Burda et al. (2016), Table 1, row {row}\n\n" + "\n".join(table) + "\n"


def write_report(out_dir, row, metrics):
    text = report_text(row, metrics)
    with atomic_write(os.path.join(out_dir, "reproduction.md"), "w") as f:
        f.write(text)
    return text


def published_metrics(base):
    r"""(directory, metrics) of every published row under ``base``, sorted by directory."""
    found = []
    for name in sorted(os.listdir(base)):
        path = os.path.join(base, name, "metrics.json")
        if os.path.exists(path):
            with open(path) as f:
                found.append((os.path.join(base, name), json.load(f)))
    return found


def page_with_table(text, base):
    r"""``text`` with the lines between TABLE_BEGIN and TABLE_END rebuilt from ``base``."""
    rows = [row_markdown(m["row"], m) for _, m in published_metrics(base)]
    if TABLE_BEGIN not in text or TABLE_END not in text:
        text += f"\n{TABLE_BEGIN}\n{TABLE_END}\n"
    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    return head + TABLE_BEGIN + "\n" + "\n".join(table_lines(rows)) + "\n" + TABLE_END + tail


def rebuild_table(base, docs_page):
    r"""Rewrite docs_page's table from every published row under ``base``."""
    text = ""
    if os.path.exists(docs_page):
        with open(docs_page) as f:
            text = f.read()
    with atomic_write(docs_page, "w") as f:
        f.write(page_with_table(text, base))


def rebuild_docs(base, docs_page):
    r"""Each published row's reproduction.md and docs_page's table, from metrics.json and PAPER."""
    for directory, metrics in published_metrics(base):
        write_report(directory, metrics["row"], metrics)
    rebuild_table(base, docs_page)
    log(f"rebuilt {docs_page} and the reports under {base}")


def write_figures(out_dir, params, cfg, history, image_shape):
    try:
        from vae_numpy.figures.plotting import plot_loss_curves, plot_samples
    except ImportError:   # matplotlib is an extra
        log("matplotlib missing: no figures")
        return []
    files = [plot_loss_curves(history, os.path.join(out_dir, "learning_curve.png"),
                              title="held-out: the last 400 training images"),
             plot_samples(sample(params, N_SAMPLES, cfg, np.random.default_rng(0)),
                          image_shape, os.path.join(out_dir, "samples.png"))]
    return [os.path.basename(f) for f in files]


def publish(out_dir, target, docs_page, files):
    r"""Copy the results into ``target`` and rebuild docs/reproduction.md's table."""
    os.makedirs(target, exist_ok=True)
    for name in files:
        if name == "checkpoint.npz":   # the same entries, deflated: the long history shrinks
            c = load_checkpoint(os.path.join(out_dir, name))
            save_checkpoint(os.path.join(target, name), c.params, c.config, c.optimizer_state,
                            c.rng, c.history, c.extra, c.optimizer, compress=True)
        else:
            shutil.copyfile(os.path.join(out_dir, name), os.path.join(target, name))
    rebuild_table(os.path.dirname(os.path.normpath(target)), docs_page)
    log(f"published {files} to {target}")


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (FloatingPointError, NonFiniteError) as err:   # a diverged step, or a refused save
        raise SystemExit(f"reproduce_iwae_table.py: error: training diverged: {err}. "
                         f"{last_good(args.out_dir)}") from None
    except (OSError, ValueError) as err:   # files, data, options the library refused
        raise SystemExit(f"reproduce_iwae_table.py: error: {err}") from None


def last_good(out_dir):
    r"""Where a diverged run can continue from: the checkpoint of its last finite epoch."""
    path = os.path.join(out_dir, "checkpoint.npz")
    try:
        n = len(load_checkpoint(path).history)
    except (OSError, ValueError):
        return "No usable checkpoint was written; start again with a lower --lr-scale."
    return (f"The last good checkpoint is {path} (after epoch {n}); continue from it with "
            "--resume, or start again with a lower --lr-scale.")


def run(args):
    if args.rebuild_docs:
        rebuild_docs(DOCS_RESULTS, args.docs_page)
        return {}
    os.makedirs(args.out_dir, exist_ok=True)
    ckpt_path = os.path.join(args.out_dir, "checkpoint.npz")
    ckpt = None
    if args.resume or args.eval_only:
        ckpt = load_checkpoint(ckpt_path)
        keep = RUN_FLAGS + (("eval_k", "n_test") if args.eval_only else ())
        restore_args(args, ckpt.extra["args"], keep)
        args.data = args.data or ckpt.extra["args"]["data"]
    elif args.data is None:
        raise SystemExit(f"reproduce_iwae_table.py: error: {MNIST_NEEDED}")
    if args.estimator is not None and PAPER[args.row][0] != "iwae":
        raise SystemExit(f"--estimator {args.estimator} applies to the IWAE rows "
                         f"({', '.join(r for r in PAPER if PAPER[r][0] == 'iwae')}); row "
                         f"{args.row} trains the VAE objective, whose analytic KL has no "
                         "sticking-the-landing or DReG variant: drop --estimator")
    x_train, x_held, x_test, image_shape = load_splits(args, args.dtype)
    if args.eval_only:
        cfg, params, history, extra = ckpt.config, ckpt.params, ckpt.history, ckpt.extra
    else:
        cfg, params, history, extra = run_training(args, ckpt, ckpt_path, x_train, x_held)
    evaluation = evaluate(args, cfg, params, x_test)
    metrics = {"row": args.row, "paper": dict(zip(("objective", "k", "iw_nll", "active_units"),
                                                  PAPER[args.row])),
               "recipe": args.recipe, "batch_size": extra["batch_size"],
               "budget": extra["budget"], "schedule": extra["schedule"],
               "estimator": (history[-1].get("estimator", "iwae")
                             if history and PAPER[args.row][0] == "iwae" else None),
               "vae_numpy_version": vae_numpy.__version__, "commit": code_version(),
               "config": cfg.to_dict(),
               "args": vars(args), "machine": machine(), "evaluation": evaluation,
               "units": "nats per example; -IW_K estimates -log p(x)", "history": history}
    figures = write_figures(args.out_dir, params, cfg, history, image_shape)
    with atomic_write(os.path.join(args.out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    report = write_report(args.out_dir, args.row, metrics)
    if history:
        print("final: " + format_record(history[-1]))
    print(report)
    if args.publish:
        publish(args.out_dir, args.publish, args.docs_page,
                ["checkpoint.npz", "metrics.json", "reproduction.md"] + figures)
    return metrics


if __name__ == "__main__":
    main()
