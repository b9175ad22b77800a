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
with epochs, wall time and the machine), learning_curve.png, samples.png; an --out-dir that
holds a run is refused unless --overwrite (the default one becomes runs/burda-2, ...).
``--publish DIR`` copies those into DIR (e.g. docs/results/burda2016/vae, a directory of this
row or a new one) and puts this row's line into the table of docs/reproduction.md, touching no
other line; what it replaces is kept in <out-dir>/replaced/. ``--rebuild-docs`` rebuilds that
table and each published row's reproduction.md from the published metrics.json files and
:data:`PAPER`, without training (after a change to PAPER or to the table's format).

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
``--step readable`` names the functions the default step runs too (no faster copy remains).

``--rates code`` takes the stage rates of the authors' code (1e-4 * round(10**(1 - i/7), 1));
their code's Adam (beta1 0.99, second moment started at ones, eps outside the bias
correction) is not implemented here.
"""
import argparse
import json
import os
import shutil
import sys
import time

from vae_numpy.commands.threads import (add_threads_flag, describe,  # imports no numpy
                                        set_thread_default, thread_choice)

if __name__ == "__main__":  # as a script: the thread default, before numpy is imported
    set_thread_default(sys.argv[1:])

import numpy as np  # noqa: E402

import vae_numpy  # noqa: E402
from vae_numpy import VAEConfig, init_params, sample  # noqa: E402
from vae_numpy.commands.flags import (NONNEGATIVE_INT, POSITIVE_INT,  # noqa: E402
                                      POSITIVE_REAL, CommandParser, add_gradient_flags,
                                      command_text, given_flags, parse_with_quick)
from vae_numpy.commands.preflight import (NO_MATPLOTLIB,  # noqa: E402
                                          check_checkpoint_command, check_out_dir,
                                          claim_out_dir, claim_results, have_matplotlib)
from vae_numpy.commands.record import code_version, machine  # noqa: E402
from vae_numpy.commands.run import CommandError, run_command  # noqa: E402
from vae_numpy.data import MNIST_SOURCES, binarize_test_set, load_dataset  # noqa: E402
from vae_numpy.evaluate import active_units, iw_log_likelihood, mean_and_stderr  # noqa: E402
from vae_numpy.files.atomic import atomic_write, remove_stale_temp_files  # noqa: E402
from vae_numpy.files.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from vae_numpy.files.errors import NonFiniteError  # noqa: E402
from vae_numpy.files.publish import (keep_copies, read_record, read_text,  # noqa: E402
                                     table_span, with_row, with_table)
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
RUN_FLAGS = ("out_dir", "resume", "eval_only", "publish", "docs_page", "data", "overwrite",
             "quick", "step", "rebuild_docs", "threads")
BUDGET_FLAGS = ("budget_minutes", "epochs", "budget_steps")
PROG, SCRIPT = "reproduce_iwae_table.py", "demos/reproduce_iwae_table.py"
PREFIX = ("python", SCRIPT)   # the command in messages that say what to type next
OUT_DIR = "runs/burda"
CHECKPOINT = "checkpoint.npz"
RESULTS = ("metrics.json", "reproduction.md", "learning_curve.png", "samples.png")
REPLACED = "replaced"     # <out-dir>/replaced/<time>/ keeps what --publish replaced


def build_parser():
    p = CommandParser(prog=PROG, description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None, help="MNIST (.npz, IDX directory, ...); 'synthetic' "
                   "only for a smoke test (the default with --quick)")
    p.add_argument("--row", choices=sorted(PAPER), default="vae")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="budget")
    p.add_argument("--rates", choices=["paper", "code"], default="paper",
                   help="stage learning rates of the paper's text or of the authors' code")
    p.add_argument("--lr-scale", type=POSITIVE_REAL, default=None,
                   help="multiplies every stage's rate (default: paper 1, budget 3)")
    p.add_argument("--budget-minutes", type=POSITIVE_REAL, default=None,
                   help="training wall time (budget recipe; default 60)")
    p.add_argument("--epochs", type=POSITIVE_INT, default=None,
                   help="an epoch budget instead (paper recipe: 3280)")
    p.add_argument("--budget-steps", type=POSITIVE_INT, default=None, help="a step budget instead")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=None,
                   help="default: the recipe's (paper 20, budget 100)")
    add_gradient_flags(p, ESTIMATORS, STEPS)
    p.add_argument("--adam-eps", type=POSITIVE_REAL, default=ADAM["eps"])
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--seed", type=NONNEGATIVE_INT, default=SEED)
    p.add_argument("--eval-k", type=POSITIVE_INT, default=EVAL_K)
    p.add_argument("--n-train", type=POSITIVE_INT, default=N_TRAIN)
    p.add_argument("--n-held-out", type=POSITIVE_INT, default=N_HELD_OUT)
    p.add_argument("--n-test", type=POSITIVE_INT, default=None,
                   help="first N test images (default all)")
    p.add_argument("--out-dir", default=OUT_DIR,
                   help="where the run is written; the default directory, when it holds an "
                        "earlier run, becomes the first free runs/burda-2, -3, ...")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the files of an earlier run in --out-dir (listed when done)")
    p.add_argument("--resume", action="store_true",
                   help="continue from <out-dir>/checkpoint.npz (its recipe, stage and clock)")
    p.add_argument("--eval-only", action="store_true", help="evaluate the checkpoint, no training")
    p.add_argument("--publish", default=None,
                   help="copy the results into this directory and put the row into the table "
                        "of --docs-page (what is replaced is kept in <out-dir>/replaced/)")
    p.add_argument("--docs-page", default=DOCS_TABLE,
                   help="the page whose table --publish updates (and --rebuild-docs rebuilds)")
    p.add_argument("--rebuild-docs", action="store_true",
                   help=f"no training: rebuild --docs-page's table and each row's "
                        f"reproduction.md from the metrics.json files under {DOCS_RESULTS}")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run on synthetic digits: {QUICK} unless given")
    add_threads_flag(p)
    return p


def parse_args(argv):
    given = given_flags(build_parser, argv)
    args = parse_with_quick(build_parser(), argv, QUICK)
    if args.quick and given & set(BUDGET_FLAGS):   # a budget given explicitly replaces --quick's
        for name in set(BUDGET_FLAGS) - given:
            setattr(args, name, None)
    if args.quick and args.data is None and not (args.resume or args.eval_only):
        args.data = "synthetic"  # as the main demo's --quick; a resumed run keeps its data
    if args.lr_scale is None:
        args.lr_scale = RECIPES[args.recipe]["lr_scale"]
    return args


def budget_of(args):
    r"""The run's Budget and batch size from the recipe and the flags (flags win)."""
    recipe = RECIPES[args.recipe]
    batch = recipe["batch_size"] if args.batch_size is None else args.batch_size
    given = [f for f in BUDGET_FLAGS if getattr(args, f) is not None]
    if len(given) > 1:
        raise CommandError(f"give one of --budget-minutes, --epochs, --budget-steps (got "
                           f"{', '.join('--' + f.replace('_', '-') for f in given)})")
    if args.budget_steps is not None:
        return Budget(args.budget_steps, "steps"), batch
    if args.epochs is not None:
        return Budget(args.epochs, "epochs"), batch
    minutes = args.budget_minutes if args.budget_minutes is not None \
        else recipe.get("budget_minutes")
    if minutes is not None:
        return Budget(60.0 * minutes, "seconds"), batch
    return Budget(recipe["epochs"], "epochs"), batch


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def load_splits(args, dtype):
    r"""Training images, the binarized held-out and test images."""
    log(describe(thread_choice()))
    log(f"loading {args.data} ...")
    data = load_dataset(args.data, dtype=np.dtype(dtype))
    n_train, n_held = args.n_train, args.n_held_out
    if n_train + n_held > len(data.x_train):
        raise CommandError(f"--n-train {n_train} + --n-held-out {n_held} is more than the "
                           f"{len(data.x_train)} training images of {args.data}")
    if args.n_test is not None and args.n_test > len(data.x_test):
        raise CommandError(f"--n-test {args.n_test} is more than the {len(data.x_test)} test "
                           f"images of {args.data}; pass --n-test {len(data.x_test)} or less")
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


def earlier_run(extra):
    r"""A run from before commands were recorded (the shipped ones): this command's arguments
    and budget are in its checkpoint, train_mnist's are not."""
    args = extra.get("args")
    return isinstance(args, dict) and {"row", "recipe"} <= set(args) and "budget" in extra


def restore_args(args, saved, given, keep, extra):
    r"""Take every flag from the checkpoint's record ``saved`` but those in ``keep``. A flag
    given explicitly (``given``) whose value differs from the run's is refused by name, never
    ignored; the run's batch size and estimator are those it trained with (``extra``), also
    when the flag was left to the recipe's or the row's default."""
    effective = dict(saved, **{k: extra[k] for k in ("batch_size", "estimator") if k in extra})
    conflicts = [f"--{name.replace('_', '-')} {getattr(args, name)} (the checkpoint has "
                 f"{effective[name]!r})" for name in sorted(given)
                 if name not in keep and name in effective
                 and getattr(args, name) != effective[name]]
    if conflicts:
        why = (" A run keeps its batch size: its epochs, stages and budget were laid out in "
               "its steps." if "batch_size" in given else "")
        raise CommandError(f"--resume continues the run in {args.out_dir} as it was started "
                           f"(recipe, schedule, budget, model, data, seeds); these flags would "
                           f"change it: {'; '.join(conflicts)}. Drop them, or start a new run "
                           f"in another --out-dir.{why}")
    vars(args).update({k: v for k, v in saved.items() if k not in keep})


def run_training(args, ckpt, ckpt_path, x_train, x_held, command, where):
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
    extra = {"args": vars(args), "command": command, "budget": budget.to_dict(),
             "schedule": schedule.to_dict(), "batch_size": batch, "objective": objective, "k": k,
             "estimator": estimator}
    via = f", estimator {estimator}" if estimator else ""
    log(f"row {args.row}: objective {objective}, k {k}{via}, recipe {args.recipe}, batch "
        f"{batch}, budget {budget.amount:g} {budget.unit}, rates {schedule.name}")

    def save(state):
        save_checkpoint(ckpt_path, state.params, cfg, state.opt_state, state.rng,
                        state.history, extra, state.optimizer)
        where["epoch"] = len(state.history)

    # A diverging run ends in a non-finite loss or a save that refuses NaN parameters, both
    # reported in one line by run(); numpy's overflow warnings on the way there add nothing.
    with np.errstate(over="ignore", invalid="ignore"):
        train(params, cfg, x_train, x_test=x_held, optimizer=optimizer, opt_state=opt_state,
              rng=rng, history=history, epochs=None, batch_size=batch, binarize="dynamic",
              objective=objective, k=k, estimator=estimator, schedule=schedule, budget=budget,
              callback=save, step=args.step)
    if not history or "examples" in history[-1] or not os.path.exists(ckpt_path):
        save(TrainState(record=None, params=params, opt_state=opt_state, optimizer=optimizer,
                        rng=rng, history=history))
    where["trained"] = True
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


ESTIMATOR_NAMES = {"stl": "STL", "dreg": "DReG"}   # as their papers spell them


def row_markdown(row, metrics):
    r"""One line of the paper-vs-measured table."""
    _, k, paper_nll, paper_au = PAPER[row]
    h, ev, m = metrics["history"], metrics["evaluation"], metrics["machine"]
    last = h[-1] if h else {}
    minutes = last.get("clock_seconds", 0.0) / 60
    au = f" ({PAPER_UNITS_UNCHECKED if paper_au is None else paper_au})"
    label, paper = f"{row} (k = {k})", f"{paper_nll:.2f}{au}"
    if metrics.get("estimator") not in (None, "iwae"):   # not in the paper: Tucker et al. 2019
        label, paper = f"{label}, {ESTIMATOR_NAMES[metrics['estimator']]} gradient", "none"
    budget = metrics.get("budget") or {}
    recipe = metrics["recipe"] + (f" of {int(budget['amount']):,} steps"
                                  if budget.get("unit") == "steps" else "")
    return (f"| {label} | {paper} | K = {ev['k']}, {ev['n_test']} images: "
            f"**{ev['iw_nll']:.2f}** +- "
            f"{ev['iw_nll_se']:.2f} ({ev['active_units']}) | {recipe}, batch "
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


def page_with_table(text, base, page=DOCS_TABLE):
    r"""``text`` with the lines between TABLE_BEGIN and TABLE_END rebuilt from ``base`` (a page
    whose markers are not sound is refused, naming ``page`` and the line)."""
    rows = [row_markdown(m["row"], m) for _, m in published_metrics(base)]
    return with_table(text, page, (TABLE_BEGIN, TABLE_END), table_lines(rows))


def rebuild_table(base, docs_page):
    r"""Rewrite docs_page's table from every published row under ``base``."""
    text = page_with_table(read_text(docs_page), base, docs_page)
    with atomic_write(docs_page, "w") as f:
        f.write(text)


def rebuild_docs(base, docs_page):
    r"""Each published row's reproduction.md and docs_page's table, from metrics.json and PAPER."""
    for directory, metrics in published_metrics(base):
        write_report(directory, metrics["row"], metrics)
    rebuild_table(base, docs_page)
    log(f"rebuilt {docs_page} and the reports under {base}")


def write_figures(out_dir, params, cfg, history, image_shape):
    if not have_matplotlib():   # said once, before the work (check_args)
        return []
    from vae_numpy.figures.plotting import plot_loss_curves, plot_samples
    files = [plot_loss_curves(history, os.path.join(out_dir, "learning_curve.png"),
                              title="held-out: the last 400 training images"),
             plot_samples(sample(params, N_SAMPLES, cfg, np.random.default_rng(0)),
                          image_shape, os.path.join(out_dir, "samples.png"))]
    return [os.path.basename(f) for f in files]


# --- publishing ----------------------------------------------------------------------------------

def row_metrics(target):
    r"""The metrics.json of the row published in ``target``, or None if there is none."""
    return read_record(os.path.join(target, "metrics.json"),
                       lambda metrics: row_markdown(metrics["row"], metrics))


def check_publish(args):
    r"""--publish goes into a new directory or one of the same row, and the table markers of
    --docs-page are sound (checked before the work, and again before publishing)."""
    if not args.publish:
        return
    check_out_dir(args.publish, "--publish")
    if os.path.isdir(args.docs_page):
        raise CommandError(f"--docs-page {args.docs_page} is a directory; pass the page (.md)")
    check_out_dir(os.path.dirname(os.path.abspath(args.docs_page)), "--docs-page's directory")
    old = row_metrics(args.publish)
    if old is not None and old["row"] != args.row:
        sibling = os.path.join(os.path.dirname(os.path.normpath(args.publish)), args.row)
        raise CommandError(f"--publish {args.publish} holds the published results of row "
                           f"{old['row']!r}, which publishing row {args.row!r} would replace; "
                           f"publish each row into its own directory, e.g. --publish {sibling}")
    table_span(read_text(args.docs_page), args.docs_page, TABLE_BEGIN, TABLE_END)


def publish(args, files):
    r"""Copy the results into --publish and put this row's line into --docs-page's table.

    Only this row is touched: its files in the target directory and its line of the table
    (the line its previous metrics.json made, replaced; or a new line after the last row).
    What is replaced is copied first into <out-dir>/replaced/<time>/.
    """
    check_publish(args)   # again: the page or the target may have changed during the run
    target, page = args.publish, args.docs_page
    old = row_metrics(target)
    old_line = None if old is None else row_markdown(old["row"], old)
    text = read_text(page)
    kept = keep_copies({"page/" + os.path.basename(page): page,
                        **{"published/" + n: os.path.join(target, n) for n in files}},
                       os.path.join(args.out_dir, REPLACED))
    os.makedirs(target, exist_ok=True)
    for name in files:
        if name == CHECKPOINT:   # the same entries, deflated: the long history shrinks
            c = load_checkpoint(os.path.join(args.out_dir, name))
            save_checkpoint(os.path.join(target, name), c.params, c.config, c.optimizer_state,
                            c.rng, c.history, c.extra, c.optimizer, compress=True)
        else:
            shutil.copyfile(os.path.join(args.out_dir, name), os.path.join(target, name))
    text, found = with_row(text, page, (TABLE_BEGIN, TABLE_END), table_lines([]), old_line,
                           row_markdown(args.row, row_metrics(target)))
    with atomic_write(page, "w") as f:
        f.write(text)
    if old_line is not None and not found:
        log(f"{page}: the table had no line of the results {target} held before; this row's "
            "line was added after the last one (check the table for an outdated line)")
    log(f"published {files} to {target} and this row's line of the table in {page}"
        + (f"; what they replaced is in {kept}" if kept else ""))


# --- the command ---------------------------------------------------------------------------------

def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    where = {"started": False, "epoch": None, "trained": False}   # for the note after Ctrl-C
    return run_command(PROG, lambda: run(args, argv, where),
                       interrupted=lambda: interrupted_note(args, where))


def resume_command(args):
    return command_text(PREFIX, ["--resume", "--out-dir", args.out_dir])


def interrupted_note(args, where):
    r"""What Ctrl-C leaves: the last checkpoint and the command that continues from it."""
    path = os.path.join(args.out_dir, CHECKPOINT)
    if where["trained"]:
        return (f"the trained model is in {path}; evaluate it with: "
                + command_text(PREFIX, ["--eval-only", "--out-dir", args.out_dir]))
    try:   # the file tells: the interruption may have come between a save and its record
        epochs = len(load_checkpoint(path).history) if where["started"] else None
    except (OSError, ValueError):
        epochs = where["epoch"]
    if epochs is None:
        return "no checkpoint of this run was written"
    return (f"the last checkpoint is {path} (after epoch {epochs}); continue with: "
            + resume_command(args))


def last_good(out_dir):
    r"""Where a diverged run can continue from: the checkpoint of its last finite epoch."""
    path = os.path.join(out_dir, CHECKPOINT)
    try:
        n = len(load_checkpoint(path).history)
    except (OSError, ValueError):
        return "No usable checkpoint was written; start again with a lower --lr-scale."
    return (f"The last good checkpoint is {path} (after epoch {n}); continue from it with "
            "--resume, or start again with a lower --lr-scale.")


def check_args(args, given, argv):
    r"""Everything that can be checked before the work starts. Settles ``args`` (from the
    checkpoint with --resume / --eval-only, the out-dir of a new run) and returns the
    checkpoint to continue, or None."""
    if args.resume and args.eval_only:
        raise CommandError("give --resume or --eval-only, not both")
    if args.overwrite and args.resume:
        raise CommandError("--overwrite and --resume contradict each other: --resume continues "
                           "the run in --out-dir, --overwrite replaces it; drop one")
    check_out_dir(args.out_dir)
    if not have_matplotlib():
        log(NO_MATPLOTLIB)
    ckpt_path = os.path.join(args.out_dir, CHECKPOINT)
    if args.resume or args.eval_only:
        ckpt = load_checkpoint(ckpt_path)
        check_checkpoint_command(ckpt, (PROG,), PROG, "evaluate it with demos/evaluate.py, or "
                                 "start a new row in another --out-dir", earlier=earlier_run)
        keep = RUN_FLAGS + (("eval_k", "n_test") if args.eval_only else ())
        restore_args(args, ckpt.extra["args"], given, keep, ckpt.extra)
        args.data = args.data or ckpt.extra["args"].get("data")
        check_publish(args)
        if args.eval_only:   # shipped results stay as they are without --overwrite
            claim_results(args.out_dir, RESULTS, overwrite=args.overwrite, checkpoint=ckpt_path,
                          prefix=PREFIX, argv=argv, log=log)
        return ckpt
    if args.data is None:
        raise CommandError(MNIST_NEEDED)
    budget_of(args)
    check_estimator(args)
    check_publish(args)
    args.out_dir = claim_out_dir(
        args.out_dir, (CHECKPOINT,) + RESULTS, overwrite=args.overwrite,
        default="out_dir" not in given, prefix=PREFIX, argv=argv, log=log,
        resume_argv=["--resume", "--out-dir", args.out_dir] if os.path.exists(ckpt_path) else None)
    return None


def check_estimator(args):
    if args.estimator is not None and PAPER[args.row][0] != "iwae":
        raise CommandError(f"--estimator {args.estimator} applies to the IWAE rows "
                           f"({', '.join(r for r in PAPER if PAPER[r][0] == 'iwae')}); row "
                           f"{args.row} trains the VAE objective, whose analytic KL has no "
                           "sticking-the-landing or DReG variant: drop --estimator")


def run(args, argv, where):
    if args.rebuild_docs:
        rebuild_docs(DOCS_RESULTS, args.docs_page)
        return {}
    ckpt = check_args(args, given_flags(build_parser, argv), argv)
    ckpt_path = os.path.join(args.out_dir, CHECKPOINT)
    where.update(started=True, epoch=None if ckpt is None else len(ckpt.history))
    x_train, x_held, x_test, image_shape = load_splits(args, args.dtype)
    os.makedirs(args.out_dir, exist_ok=True)   # after the last check
    remove_stale_temp_files(args.out_dir, log)
    if args.eval_only:
        cfg, params, history, extra = ckpt.config, ckpt.params, ckpt.history, ckpt.extra
        where["trained"] = True
    else:
        command = [SCRIPT] + argv
        try:
            cfg, params, history, extra = run_training(args, ckpt, ckpt_path, x_train, x_held,
                                                       command, where)
        except (FloatingPointError, NonFiniteError) as err:   # a diverged step, a refused save
            raise CommandError(f"training diverged: {err}. {last_good(args.out_dir)}") from None
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
    with atomic_write(os.path.join(args.out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    report = write_report(args.out_dir, args.row, metrics)
    figures = write_figures(args.out_dir, params, cfg, history, image_shape)
    if history:
        print("final: " + format_record(history[-1]))
    print(report)
    if args.publish:
        publish(args, [CHECKPOINT, "metrics.json", "reproduction.md"] + figures)
    return metrics


if __name__ == "__main__":
    main()
