r"""Train a VAE on MNIST-like images and write the numbers and the figures that explain it.

    python -m vae_numpy train                         # built-in synthetic digits, under a minute
    python -m vae_numpy train --quick                 # a few seconds (smoke test)
    python -m vae_numpy train --data mnist.npz --epochs 10 --out-dir runs/mnist

(``vae-numpy train`` is the same command; so is ``python demos/train_mnist.py`` in a clone.)

Writes into --out-dir (each file atomically):
    metrics.json          config, arguments, data, per-epoch train/test rec, kl, -ELBO, seconds
    checkpoint.npz        params, optimizer state, RNG state, config, history (after every epoch;
                          vae_numpy.load_checkpoint reads it, --resume continues from it)
    reconstructions.png   test images above their reconstructions
    samples.png           decoded samples z ~ N(0, I)
    loss_curves.png       rec, KL and -ELBO per epoch, train and test
    latent.png            test posterior means colored by label (PCA when --latent > 2)
    manifold.png          the decoded 2-D latent grid (only with --latent 2)

All numbers are nats per example; -ELBO = rec + KL (beta = 1, no free bits) whatever the
training objective. Bernoulli decoders are trained on dynamically binarized images and
evaluated on a test set binarized once with a fixed seed, unless --binarize says otherwise.
"""
import argparse
import json
import math
import os
import sys
import time
import warnings

import numpy as np

from .._version import __version__
from ..data import binarize_test_set, load_dataset
from ..figures.plotting import (manifold_latents, plot_latent, plot_loss_curves, plot_manifold,
                                plot_reconstructions, plot_samples)
from ..files.atomic import atomic_write, remove_stale_temp_files
from ..files.checkpoint import load_checkpoint, save_checkpoint
from ..files.errors import NonFiniteError
from ..model import VAEConfig, decode, encode, init_params, param_shapes, reconstruct, sample
from ..optim import OPTIMIZERS
from ..schedule import Budget, burda_schedule
from ..train import ESTIMATORS, STEPS, TrainState, format_record, init_output_bias, train
from .flags import (FINITE_REAL, NONNEGATIVE_INT, NONNEGATIVE_REAL, POSITIVE_INT, POSITIVE_REAL,
                    CommandParser, add_gradient_flags, command_text, given_flags, invocation,
                    parse_with_quick, real, widths, widths_text)
from .preflight import (NO_MATPLOTLIB, check_checkpoint_command, check_memory, check_out_dir,
                        claim_out_dir, have_matplotlib)
from .run import CommandError, run_command
from .threads import add_threads_flag, describe, thread_choice

PROG = "vae-numpy train"    # the command's name in its usage and error lines

# --- hyperparameters (defaults of the flags) --------------------------------------------------
DATA = "synthetic"
EPOCHS = 50
BATCH_SIZE = 128
LR = 1e-3
LATENT = 20
HIDDEN = "400"
ACTIVATION = "relu"
LIKELIHOOD = "bernoulli"
BETA = 1.0
SEED = 0
DTYPE = "float32"
OPTIMIZER = "adam"
MOMENTUM = 0.9              # SGD only
ADAM_EPS = 1e-8             # torch.optim.Adam's default
SCHEDULES = {"none": None, "burda": "paper", "burda-code": "code"}   # -> burda_schedule(variant)
N_TRAIN_SYNTHETIC = 20000   # examples drawn for --data synthetic (files: all, unless --n-train)
N_TEST_SYNTHETIC = 2000
OUT_DIR = "runs/train_mnist"
CHECKPOINT = "checkpoint.npz"
# Every file a run may write: a new run in an out-dir that holds one of them would replace it.
OUTPUTS = (CHECKPOINT, "metrics.json", "reconstructions.png", "samples.png", "loss_curves.png",
           "latent.png", "manifold.png")
COMMAND_NAMES = ("vae-numpy train", "train_mnist.py")   # its checkpoints' "command" records
SYNTHETIC_PIXELS = 28 * 28
# Flags that steer this invocation; on --resume every other flag comes from the checkpoint.
RUN_FLAGS = ("epochs", "out_dir", "resume", "quick", "step", "threads", "overwrite")
# Flags that may change when a run is resumed: given with --resume, they replace the
# checkpoint's value from the next epoch on (logged, and listed in metrics.json under
# "resume_changes"). Any other flag given with --resume that differs from the checkpoint is
# refused: it would change the model, the data or the random streams.
RESUME_MAY_CHANGE = ("lr", "clip_norm", "batch_size", "free_bits")
# --quick: a smoke run of a few seconds
QUICK = dict(epochs=5, n_train=3000, n_test=500, hidden="128")
# figures
N_RECONSTRUCTIONS = 20      # test images shown above their reconstructions
N_SAMPLES = 100             # 10 x 10 grid of prior samples
N_LATENT_POINTS = 3000      # test posterior means in latent.png
MANIFOLD_N = 20             # 20 x 20 decoded grid when --latent 2
FIGURE_SEED = 0             # seed of the prior samples in samples.png


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    r"""Shows "(default: ...)" except for flags whose default None is explained in the help."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser():
    p = CommandParser(prog=PROG, description=__doc__.split("\n")[0], formatter_class=_HelpFormatter)
    p.add_argument("--data", default=DATA, help="'synthetic' or a path to IDX dir / .npz / .npy")
    p.add_argument("--epochs", type=NONNEGATIVE_INT, default=EPOCHS,
                   help="passes over the training set")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=BATCH_SIZE, help="minibatch size B")
    p.add_argument("--lr", type=POSITIVE_REAL, default=LR, help="learning rate")
    p.add_argument("--latent", type=POSITIVE_INT, default=LATENT, help="latent dimensions J")
    p.add_argument("--hidden", type=widths_text, default=HIDDEN,
                   help="encoder hidden widths, e.g. 400 or 512,256 (decoder mirrored)")
    p.add_argument("--activation", default=ACTIVATION,
                   help="relu, leaky_relu, tanh, sigmoid, softplus or identity")
    p.add_argument("--likelihood", default=LIKELIHOOD,
                   choices=["bernoulli", "gaussian", "gaussian_learned", "continuous_bernoulli"],
                   help="decoder distribution p(x|z)")
    p.add_argument("--sigma", type=POSITIVE_REAL, default=1.0,
                   help="gaussian only: the fixed standard deviation of p(x|z); sigma**2 acts "
                        "like beta (on [0, 1] pixels sigma = 1 leaves the code almost unused)")
    p.add_argument("--decoder-logvar-min", type=FINITE_REAL, default=None,
                   help="gaussian_learned only: floor on the decoder's log-variance, which "
                        "bounds rec below (default: no floor; rec is then unbounded on "
                        "constant pixels)")
    p.add_argument("--binarize", choices=["none", "static", "dynamic"], default=None,
                   help="binarization of the training images; unless none, the test images "
                        "are binarized once with a fixed seed (default: dynamic for "
                        "bernoulli, none otherwise)")
    p.add_argument("--beta", type=NONNEGATIVE_REAL, default=BETA, help="KL weight of the objective")
    p.add_argument("--seed", type=NONNEGATIVE_INT, default=SEED,
                   help="seeds the initialization, shuffling, binarization and noise (and "
                        "the synthetic digits)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=DTYPE,
                   help="float32 is the fast path, float64 the reference precision")
    p.add_argument("--out-dir", default=OUT_DIR,
                   help="where the files are written; the default directory, when it holds an "
                        f"earlier run, becomes the first free {OUT_DIR}-2, -3, ...")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the files of an earlier run in --out-dir (removed, and listed, "
                        "before the work)")
    p.add_argument("--quick", action="store_true",
                   help=f"a few seconds: defaults {QUICK} unless given")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=OPTIMIZER,
                   help="adam (torch defaults) or sgd with --momentum")
    p.add_argument("--momentum", type=real(low=0, high=1), default=MOMENTUM, help="SGD only")
    p.add_argument("--kl-warmup", type=NONNEGATIVE_REAL, default=0.0,
                   help="epochs over which beta ramps linearly from 0 to --beta")
    p.add_argument("--free-bits", type=NONNEGATIVE_REAL, default=0.0,
                   help="nats per latent dimension")
    p.add_argument("--clip-norm", type=POSITIVE_REAL, default=None, help="cap on the gradient norm")
    p.add_argument("--objective", choices=["vae", "iwae"], default="vae",
                   help="vae: rec + beta * analytic KL; iwae: the importance-weighted bound "
                        "with --k samples (Burda et al. 2016)")
    p.add_argument("--k", type=POSITIVE_INT, default=1,
                   help="importance samples per example (iwae)")
    add_gradient_flags(p, ESTIMATORS, STEPS)
    p.add_argument("--adam-eps", type=POSITIVE_REAL, default=ADAM_EPS,
                   help="Adam's eps (torch's default; Burda et al. use 1e-4)")
    p.add_argument("--schedule", choices=sorted(SCHEDULES), default="none",
                   help="learning-rate stages over the run (--epochs, or --budget-minutes): "
                        "burda = Burda et al. (2016)'s 8 stages from 1e-3, burda-code their "
                        "code's rates; the schedule owns the rate, so --lr is refused with it")
    p.add_argument("--budget-minutes", type=POSITIVE_REAL, default=None,
                   help="stop after this much training wall time (and fit the schedule's "
                        "stages into it)")
    p.add_argument("--init-output-bias", action="store_true",
                   help="start the decoder's output bias at the logit of the data mean")
    p.add_argument("--n-train", type=POSITIVE_INT, default=None,
                   help=f"use the first N training images (synthetic: {N_TRAIN_SYNTHETIC} "
                        "drawn; files: all)")
    p.add_argument("--n-test", type=POSITIVE_INT, default=None,
                   help=f"use the first N test images (synthetic: {N_TEST_SYNTHETIC}; files: all)")
    p.add_argument("--resume", action="store_true",
                   help="continue from <out-dir>/checkpoint.npz for --epochs more epochs "
                        "(architecture, data and training flags come from the checkpoint; "
                        f"{', '.join('--' + f.replace('_', '-') for f in RESUME_MAY_CHANGE)} "
                        "may be given to change them)")
    add_threads_flag(p)
    return p


def parse_args(argv):
    p = build_parser()
    args = parse_with_quick(p, argv, QUICK)
    if args.binarize is None:
        args.binarize = "dynamic" if args.likelihood == "bernoulli" else "none"
    if args.data == "synthetic":   # record the sizes used, so the data can be drawn again
        args.n_train = args.n_train or N_TRAIN_SYNTHETIC
        args.n_test = args.n_test or N_TEST_SYNTHETIC
    return args


def fail(message):
    r"""Stop the command: :func:`vae_numpy.commands.run.run_command` prints ``message`` as one
    line on stderr and exits with status 1 (no traceback)."""
    raise CommandError(message)


def check_flag_combinations(args, given):
    r"""Refuse flags that contradict each other (for a new run, and for a resumed one once its
    flags are settled)."""
    if "lr" in given and args.schedule != "none":
        fail(f"--lr {args.lr} is refused with --schedule {args.schedule}: the schedule owns the "
             "learning rate (drop --lr)")
    if "momentum" in given and args.optimizer != "sgd":
        fail(f"--momentum applies to --optimizer sgd only (this run uses {args.optimizer}); "
             "drop --momentum or pass --optimizer sgd")
    if args.estimator is not None and args.objective != "iwae":
        fail(f"--estimator {args.estimator} applies to --objective iwae only (this run uses "
             f"{args.objective}, whose analytic KL has no sticking-the-landing or DReG "
             "variant); drop --estimator or pass --objective iwae")


def epoch_counted(saved):
    r"""What of a run is counted in epochs of its batch size (its steps per epoch), which a
    new batch size on --resume would move: the KL warm-up and the schedule's stages."""
    what = []
    if saved.get("kl_warmup"):
        what.append(f"the KL warm-up ({saved['kl_warmup']:g} epochs)")
    if saved.get("schedule", "none") != "none" and saved.get("budget_minutes") is None:
        what.append(f"the {saved['schedule']} schedule's stages")
    return what


def resume_flags(args, saved, given, after_epoch):
    r"""Take every flag from the checkpoint's record ``saved`` but the RUN_FLAGS; a flag
    given now that differs from the record is applied (RESUME_MAY_CHANGE, returned as a list
    of changes) or refused with :func:`fail`, never ignored."""
    changes, conflicts = [], []
    for name, value in saved.items():
        if name in RUN_FLAGS:
            continue
        new = getattr(args, name, value)
        if name in given and new != value:
            if name in RESUME_MAY_CHANGE:
                changes.append({"flag": name, "from": value, "to": new,
                                "after_epoch": after_epoch})
                continue
            conflicts.append(f"--{name.replace('_', '-')} {new} (the checkpoint has {value})")
        setattr(args, name, value)
    if conflicts:
        fail(f"--resume continues the run saved in {args.out_dir} with its model, data and "
             f"seeds; these flags would change them: {'; '.join(conflicts)}. Drop them, or "
             f"start a new run in another --out-dir. Flags that may change on --resume: "
             f"{', '.join('--' + f.replace('_', '-') for f in RESUME_MAY_CHANGE)}")
    counted = epoch_counted(saved)
    if counted and any(c["flag"] == "batch_size" for c in changes):
        fail(f"--batch-size {args.batch_size} is refused on --resume of this run: "
             f"{' and '.join(counted)} are counted in steps of its batch size "
             f"{saved.get('batch_size')}, and another one would move them. Drop --batch-size, "
             "or start a new run in another --out-dir")
    for c in changes:
        log(f"resume: --{c['flag'].replace('_', '-')} {c['to']} replaces {c['from']} "
            f"from epoch {after_epoch + 1} on")
    return changes


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def check_sizes(args):
    r"""--n-train synthetic digits must fit in memory (files hold what they hold)."""
    if args.data == "synthetic":
        n = args.n_train + args.n_test
        check_memory(n * SYNTHETIC_PIXELS * 8 * 2, f"drawing {n} synthetic digits "
                     f"(--n-train {args.n_train}, --n-test {args.n_test})",
                     "lower --n-train or --n-test")


def load_data(args, given):
    r"""The training and test images; an --n-train or --n-test given beyond what the data
    holds is refused (--quick's sizes, defaults, take what there is)."""
    n_train, n_test = args.n_train, args.n_test
    log(f"loading {args.data} ...")
    kw = dict(n_train=n_train, n_test=n_test, seed=args.seed) if args.data == "synthetic" else {}
    data = load_dataset(args.data, dtype=np.dtype(args.dtype), **kw)
    for flag, n, have in (("--n-train", n_train, len(data.x_train)),
                          ("--n-test", n_test, len(data.x_test))):
        if flag[2:].replace("-", "_") in given and n > have:
            fail(f"{flag} {n} is more than the {have} images of {args.data} it takes them "
                 f"from; pass {flag} {have} or less")
    x_train, x_test = data.x_train[:n_train], data.x_test[:n_test]
    y_test = None if data.y_test is None else data.y_test[:n_test]
    if args.binarize != "none":
        x_test = binarize_test_set(x_test)
    log(f"data: {len(x_train)} train, {len(x_test)} test images of {data.image_shape}")
    return x_train, x_test, y_test, data.image_shape


def training_bytes(cfg, batch_size, n_train, k):
    r"""About the memory a training run takes beyond its data: the parameters, their
    gradients and two optimizer moments (4 copies), and a step's activations, about 6 arrays
    of (k, B, width) per layer (forward values, their gradients, the noise)."""
    itemsize = np.dtype(cfg.dtype).itemsize
    n_params = sum(math.prod(shape) for shape in param_shapes(cfg).values())
    widths = cfg.input_dim * 2 + sum(cfg.encoder_hidden) + sum(cfg.decoder_hidden) \
        + 3 * cfg.latent_dim
    return itemsize * (4 * n_params + 6 * k * min(batch_size, n_train) * widths)


def build_config(args, input_dim):
    enc = widths(args.hidden)
    return VAEConfig(input_dim=input_dim, latent_dim=args.latent, encoder_hidden=enc,
                     decoder_hidden=enc[::-1], activation=args.activation,
                     likelihood=args.likelihood, beta=args.beta, sigma=args.sigma,
                     decoder_logvar_min=args.decoder_logvar_min, dtype=args.dtype)


def build(args, cfg, x_train, rng):
    params = init_params(cfg, rng)
    if args.init_output_bias:
        init_output_bias(params, x_train, cfg)
    if args.optimizer == "adam":
        optimizer = OPTIMIZERS["adam"](lr=args.lr, eps=args.adam_eps)
    else:
        optimizer = OPTIMIZERS["sgd"](lr=args.lr, momentum=args.momentum)
    return params, optimizer, optimizer.init(params), []


def schedule_and_budget(args, history):
    r"""The run's learning-rate schedule and budget. A schedule spreads its stages over the
    whole run: --budget-minutes of training time, or the --epochs of the first invocation
    (kept in the checkpoint as ``schedule_epochs``, so a resumed run stays on the same stages)."""
    if not history and getattr(args, "schedule_epochs", None) is None:
        args.schedule_epochs = args.epochs
    budget = None
    if args.budget_minutes is not None:
        budget = Budget(60.0 * args.budget_minutes, "seconds")
    elif args.schedule != "none":
        budget = Budget(args.schedule_epochs, "epochs")
    schedule = None if args.schedule == "none" else burda_schedule(SCHEDULES[args.schedule])
    return schedule, budget


def write_figures(params, cfg, history, x_test, y_test, image_shape, out_dir):
    if not have_matplotlib():   # said before the work
        return []
    log("writing figures ...")
    files = []
    n = N_RECONSTRUCTIONS
    files.append(plot_reconstructions(x_test[:n], reconstruct(params, x_test[:n], cfg),
                                      image_shape, os.path.join(out_dir, "reconstructions.png")))
    samples = sample(params, N_SAMPLES, cfg, np.random.default_rng(FIGURE_SEED))
    files.append(plot_samples(samples, image_shape, os.path.join(out_dir, "samples.png")))
    if history:   # empty when --epochs 0 or a budget that was already spent
        files.append(plot_loss_curves(history, os.path.join(out_dir, "loss_curves.png")))
    mu, _ = encode(params, x_test[:N_LATENT_POINTS], cfg)
    labels = None if y_test is None else y_test[:N_LATENT_POINTS]
    files.append(plot_latent(mu, labels, os.path.join(out_dir, "latent.png")))
    if cfg.latent_dim == 2:
        z = manifold_latents(MANIFOLD_N).astype(cfg.dtype)
        files.append(plot_manifold(decode(params, z, cfg), image_shape,
                                   os.path.join(out_dir, "manifold.png"), MANIFOLD_N))
    return [os.path.basename(f) for f in files]


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    where = {"started": False, "epoch": None, "end": None}   # for the note after Ctrl-C
    return run_command(PROG, lambda: run(args, given_flags(build_parser, argv), argv, where),
                       interrupted=lambda: interrupted_note(args, where))


def interrupted_note(args, where):
    r"""Where the run is after Ctrl-C: the last checkpoint and the command that continues it
    for the epochs it had left."""
    path = os.path.join(args.out_dir, CHECKPOINT)
    try:   # the file tells: the interruption may have come between a save and its record
        done = len(load_checkpoint(path).history) if where["started"] else None
    except (OSError, ValueError):
        done = where["epoch"]
    if done is None:
        return "no checkpoint of this run was written"
    left = None if where["end"] is None else max(where["end"] - done, 0)
    epochs = [] if left is None else ["--epochs", str(left)]
    resume = command_text(invocation(PROG.split()), ["--resume", "--out-dir", args.out_dir]
                          + epochs)
    return f"the last checkpoint is {path} (after epoch {done}); continue with: {resume}"


def resume(args, given, ckpt_path):
    r"""Load the checkpoint and settle the flags (:func:`resume_flags`); returns the run's
    state ``(cfg, params, optimizer, opt_state, rng, history)`` and the list of changes."""
    ckpt = load_checkpoint(ckpt_path)
    check_checkpoint_command(ckpt, COMMAND_NAMES, PROG, "evaluate it with vae-numpy evaluate, "
                             "or start a new run in another --out-dir")
    if ckpt.optimizer is None or ckpt.optimizer_state is None or ckpt.rng is None:
        fail(f"{ckpt_path} holds no optimizer state or random generator state, which --resume "
             "needs to continue the run; start a new run in another --out-dir")
    history = ckpt.history
    changes = resume_flags(args, ckpt.extra["args"], given, len(history))
    check_flag_combinations(args, given)
    optimizer = ckpt.optimizer
    if "lr" in given:   # rebuilt: the constructor checks the value
        optimizer = type(optimizer)(**{**vars(optimizer), "lr": args.lr})
    log(f"resuming {ckpt_path} after epoch {len(history)}")
    changes = ckpt.extra.get("resume_changes", []) + changes
    return (ckpt.config, ckpt.params, optimizer, ckpt.optimizer_state, ckpt.rng, history), changes


def last_good(ckpt_path, saved_epoch):
    r"""A sentence naming the last checkpoint that holds a finite model, for failure messages."""
    if saved_epoch is None:
        return "no checkpoint of this run was written"
    return (f"the last good checkpoint is {ckpt_path} (after epoch {saved_epoch}); continue "
            f"from it with --resume and a lower --lr or a --clip-norm")


def check_out(args, given, argv):
    r"""Before the work: the out-dir can be written, matplotlib is there for the figures (or
    the run says it writes none), and a new run replaces no earlier one without --overwrite."""
    check_out_dir(args.out_dir)
    if args.resume and args.overwrite:
        fail("--overwrite and --resume contradict each other: --resume continues the run in "
             "--out-dir, --overwrite replaces it; drop one")
    if not args.resume:
        check_flag_combinations(args, given)
        check_sizes(args)
        ckpt = os.path.join(args.out_dir, CHECKPOINT)
        resume_argv = ["--resume", "--out-dir", args.out_dir] if os.path.exists(ckpt) else None
        args.out_dir = claim_out_dir(args.out_dir, OUTPUTS, overwrite=args.overwrite,
                                     default="out_dir" not in given,
                                     prefix=invocation(PROG.split()), argv=argv,
                                     resume_argv=resume_argv, log=log)
    if not have_matplotlib():
        log(NO_MATPLOTLIB)


def run(args, given, argv, where):
    check_out(args, given, argv)
    ckpt_path = os.path.join(args.out_dir, CHECKPOINT)
    changes = []
    if args.resume:
        (cfg, params, optimizer, opt_state, rng, history), changes = resume(args, given,
                                                                             ckpt_path)
    x_train, x_test, y_test, image_shape = load_data(args, given)
    if not args.resume:
        cfg = build_config(args, x_train.shape[1])
        check_memory(training_bytes(cfg, args.batch_size, len(x_train), args.k),
                     f"training a {cfg.input_dim}-{args.hidden}-{cfg.latent_dim} model with "
                     f"batch {args.batch_size}", "lower --hidden, --latent, --batch-size or --k")
        rng = np.random.default_rng(args.seed)
        params, optimizer, opt_state, history = build(args, cfg, x_train, rng)
    os.makedirs(args.out_dir, exist_ok=True)
    remove_stale_temp_files(args.out_dir, log)
    command = PROG.split() + argv
    extra = {"args": vars(args), "command": command, "resume_changes": changes,
             "image_shape": list(image_shape), "n_train": len(x_train), "n_test": len(x_test),
             "threads": thread_choice()}
    log(f"model: {cfg.to_json()}")
    log(describe(extra["threads"]))
    saved = {"epoch": len(history) if args.resume else None}
    where.update(started=True, epoch=saved["epoch"], end=len(history) + args.epochs)

    def save(state):   # refuses (NonFiniteError) to write a diverged model over a good one
        save_checkpoint(ckpt_path, state.params, cfg, state.opt_state, state.rng,
                        state.history, extra, state.optimizer)
        saved["epoch"] = where["epoch"] = len(state.history)

    t0 = time.perf_counter()
    schedule, budget = schedule_and_budget(args, history)
    # numpy's overflow warnings are held back while training runs: if the run diverges they are
    # part of the one line that says so; if it does not, they are issued afterwards as usual.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            train(params, cfg, x_train, x_test=x_test, optimizer=optimizer, opt_state=opt_state,
                  rng=rng, history=history, epochs=args.epochs, batch_size=args.batch_size,
                  binarize=args.binarize, kl_warmup_epochs=args.kl_warmup,
                  free_bits=args.free_bits, clip_norm=args.clip_norm, callback=save,
                  objective=args.objective, k=args.k, estimator=args.estimator,
                  schedule=schedule, budget=budget, step=args.step)
        except (FloatingPointError, NonFiniteError) as err:
            warned = f" (numpy warned first: {caught[0].message})" if caught else ""
            fail(f"training diverged: {err}{warned}. {last_good(ckpt_path, saved['epoch'])}")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if args.epochs == 0:   # otherwise the callback saved after every epoch
        save(TrainState(record=None, params=params, opt_state=opt_state, optimizer=optimizer,
                        rng=rng, history=history))
    metrics = {"vae_numpy_version": __version__, "config": cfg.to_dict(),
               "optimizer": {"name": type(optimizer).__name__.lower(), **vars(optimizer)}, **extra,
               "units": "nats per example; neg_elbo = rec + kl", "history": history,
               "final": history[-1] if history else None,
               "wall_seconds": time.perf_counter() - t0,
               "files": ["metrics.json", CHECKPOINT]}
    write_metrics(metrics, args.out_dir)   # first: the figures come after the numbers
    figures = write_figures(params, cfg, history, x_test, y_test, image_shape, args.out_dir)
    if figures:
        metrics["files"] += figures
        write_metrics(metrics, args.out_dir)
    if history:
        print("final: " + format_record(history[-1]))
    print(f"wrote {', '.join(metrics['files'])} to {args.out_dir}")
    return metrics


def write_metrics(metrics, out_dir):
    with atomic_write(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
