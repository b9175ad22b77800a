r"""The training loop: seeded minibatches, KL warm-up, free bits, clipping, learning-rate
schedules, budgets, and a history.

Shape letters: N examples, B batch, D data dimensions, J latent dimensions, K samples.

    history = train(params, cfg, x_train, x_test=x_test, optimizer=Adam(1e-3),
                    rng=numpy.random.default_rng(0), epochs=10, batch_size=128,
                    binarize="dynamic")

One step on a minibatch x (B, D), with every random draw taken from ``rng`` in this order
(the epoch's permutation first, then per batch):

    lr  <- schedule(fraction of the budget spent)  (with a schedule only)
    x   <- Bernoulli(x)                          (binarize="dynamic" only: (B, D) uniforms)
    eps ~ N(0, I)                                (B, J), or (K, B, J) for the IWAE, drawn in
                                                 the params' dtype
    objective = mean_b(w * rec_b + beta_t * kl_b)   (w = cfg.rec_weight, 1 for the ELBO;
                                                 kl_b with the free-bits floor if asked)
             or mean_b(-L_K(x_b))                (objective="iwae", vae_numpy.iwae)
    params <- optimizer step on d objective / d params (after clipping the global norm)

The objective and its gradient come from :func:`vae_numpy.model.loss_and_grads` (or
vae_numpy.iwae's step) called at every step: the functions the docs derive are the ones
that train.

``params``, the optimizer state and ``history`` are updated in place, so a checkpoint of
(params, opt_state, rng, history) taken after any epoch continues bit for bit
(:mod:`vae_numpy.files.checkpoint`): the step count, the schedule's stage and the budget's clock
all continue from the history's last record.

What is reported, per epoch, in nats per example: the true ``rec``, ``kl`` and
``neg_elbo = rec + kl`` (beta = 1, no free bits) of the training minibatches as they were
visited (a running average while the parameters move), the optimized ``objective``, and the
same true terms on the held-out set, computed after the epoch with a fixed-seed noise
(:func:`evaluate_elbo`), so held-out numbers are reproducible and comparable across runs.
"""
import dataclasses
import time

import numpy as np

from .commands.progress import Progress
from .data import check_probabilities, bernoulli_draw, binarize_static, minibatches
# evaluate_elbo and its constants live in evaluate.py; imported here, so train.evaluate_elbo
# (the old home) still works.
from .evaluate import EVAL_CHUNK, EVAL_NOISE_SEED, evaluate_elbo  # noqa: F401
# ESTIMATORS: the IWAE objective's gradient estimators (the IWAE gradient itself, sticking the
# landing, doubly reparameterized); the analytic-KL VAE objective has none of these variants.
from .iwae import ESTIMATORS, _iwae_step, check_estimator
from .likelihoods import get_likelihood
from .model import check_batch, loss_and_grads, params_dtype
from .optim import clip_grad_norm

BINARIZE = ("none", "static", "dynamic")

# Seed of the one-off draw for binarize="static" (fixed, so a resumed run sees the same data).
STATIC_BINARIZE_SEED = 2
# Default clip of the data mean in init_output_bias: logit(1e-3) = -6.9, a finite start for
# pixels that are always 0 (MNIST's border).
OUTPUT_BIAS_CLIP = 1e-3
# Fields of a history record that are wall-clock times, so differ between identical runs.
TIME_FIELDS = ("seconds", "eval_seconds", "clock_seconds")


# --- schedules --------------------------------------------------------------------------------

def kl_warmup_beta(step, warmup_steps, beta=1.0):
    r"""Linear KL warm-up: ``beta_t = beta * min(1, step / warmup_steps)``.

    ``step`` counts the optimizer steps taken before this one (0 for the first), so the first
    step uses beta_t = 0 and every step from ``warmup_steps`` on uses ``beta``. With
    ``warmup_steps = 0`` there is no warm-up (beta_t = beta). This linear schedule is the
    warm-up of Sønderby et al. (2016); Bowman et al. (2016), who introduced KL annealing, used
    a sigmoid schedule. It keeps the KL term from collapsing q(z|x) onto the prior early on.
    """
    if warmup_steps < 0 or step < 0:
        raise ValueError(f"kl_warmup_beta needs step >= 0 and warmup_steps >= 0, "
                         f"got step={step}, warmup_steps={warmup_steps}")
    if warmup_steps == 0:
        return float(beta)
    return float(beta) * min(1.0, step / warmup_steps)


def batches_per_epoch(n, batch_size):
    r"""``ceil(n / batch_size)``: the last, smaller batch counts as a step."""
    return -(-n // batch_size)


# --- output-bias initialization ---------------------------------------------------------------

def _invert_increasing(f, target, lo, hi, iters=80):
    r"""Elementwise ``l`` in [lo, hi] with ``f(l) = target`` for an increasing f (bisection)."""
    lo = np.full_like(target, lo)
    hi = np.full_like(target, hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        below = f(mid) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def output_bias_for_mean(x_mean, cfg, clip=OUTPUT_BIAS_CLIP):
    r"""Decoder output bias whose p(x|z) mean is the data mean, for every pixel. Returns (D,).

    With all decoder weights zero the model would then predict each pixel's average, the
    maximum-likelihood constant model (Bernoulli and continuous Bernoulli are exponential
    families in the logit, so matching the mean maximizes the likelihood).

    - bernoulli: ``b = logit(clip(mean, clip, 1 - clip))``, finite for pixels that are always
      0 or 1 (|b| <= logit(1 - clip) = 6.9 for clip = 1e-3).
    - continuous_bernoulli: the logit whose continuous-Bernoulli mean (not sigmoid) is the data
      mean, found by bisection, limited to the same range ``|b| <= logit(1 - clip)``; the
      continuous-Bernoulli mean only reaches 0 as -1/logit, so near-0 pixels stop at that bound:
      with clip = 1e-3 the reachable means are [0.144, 0.856], and 65% of MNIST's pixels
      (training mean below 0.144) start at the bound.
    - gaussian, gaussian_learned: ``b = mean`` (the mean head is linear); the log-variance head
      is left alone.
    """
    if not 0 < clip < 0.5:
        raise ValueError(f"clip must be in (0, 0.5), got {clip}")
    x_mean = np.asarray(x_mean, dtype=np.float64)
    if cfg.likelihood in ("gaussian", "gaussian_learned"):
        return x_mean
    if np.any((x_mean < 0) | (x_mean > 1)):
        raise ValueError(f"{cfg.likelihood} output bias needs a data mean in [0, 1], got values "
                         f"in [{x_mean.min()}, {x_mean.max()}]")
    p = np.clip(x_mean, clip, 1 - clip)
    bound = np.log((1 - clip) / clip)
    if cfg.likelihood == "bernoulli":
        return np.log(p) - np.log1p(-p)
    cb_mean = get_likelihood(cfg.likelihood).mean
    return _invert_increasing(lambda l: cb_mean((l,), cfg.sigma), p, -bound, bound)


def init_output_bias(params, x_train, cfg, clip=OUTPUT_BIAS_CLIP):
    r"""Set ``params["dec.out.b"]`` so the decoder starts at the training data's mean image.

    A known speed-up for Bernoulli decoders: the first epochs no longer spend their steps
    learning the average brightness of each pixel (e.g. that MNIST's border is always 0).
    See :func:`output_bias_for_mean` for the value per likelihood. In place; returns params.

    Parameters
    ----------
    params : dict from :func:`vae_numpy.init_params`.
    x_train : (N, D) training data of the params' dtype (grey levels are fine: the mean of
        a dynamically binarized pixel is its grey level).
    cfg : VAEConfig
    clip : float, see :func:`output_bias_for_mean`.
    """
    dtype = params_dtype(params, cfg)
    x_train = check_batch("x_train", x_train, dtype, cfg.input_dim)
    if len(x_train) == 0:
        raise ValueError("x_train is empty; init_output_bias needs at least one example")
    bias = output_bias_for_mean(x_train.mean(axis=0, dtype=np.float64), cfg, clip)
    params["dec.out.b"][...] = bias.astype(dtype)
    return params


def format_record(r, total_epochs=None):
    r"""One summary line for a history record (nats per example)."""
    of = f"/{total_epochs}" if total_epochs else ""
    text = (f"epoch {r['epoch']}{of}  train rec {r['train_rec']:.2f} kl {r['train_kl']:.2f} "
            f"-elbo {r['train_neg_elbo']:.2f}")
    if r.get("objective", "vae") == "iwae":
        estimator = r.get("estimator", "iwae")
        via = "" if estimator == "iwae" else f", {estimator} gradient"
        text += f" (-IW_{r['k']} {r['train_objective']:.2f}{via})"
    elif r["train_objective"] != r["train_neg_elbo"]:
        text += f" (objective {r['train_objective']:.2f}, beta {r['beta']:.3g})"
    if "test_neg_elbo" in r:
        text += (f" | held-out rec {r['test_rec']:.2f} kl {r['test_kl']:.2f} "
                 f"-elbo {r['test_neg_elbo']:.2f}")
    if "lr" in r:
        text += f" | lr {r['lr']:.3g}"
    return text + f" | {r['seconds']:.2f} s"


# --- the step ---------------------------------------------------------------------------------

OBJECTIVES = ("vae", "iwae")
# What train(step=...) accepts: "readable" runs loss_and_grads / the IWAE step of vae_numpy.iwae
# themselves, "default" the fastest step the package has; no faster copy remains, so both run
# the same functions.
STEPS = ("default", "readable")


def make_step(cfg, reduction="mean", free_bits=0.0):
    r"""The VAE training step: ``step(params, x, eps, beta) -> (loss, grads, terms)``.

    :func:`vae_numpy.model.loss_and_grads` itself, ``reduce_b(rec_weight * rec_b + beta *
    kl_b)`` on one minibatch with its gradient; ``beta`` is the step's KL weight (beta_t under
    warm-up). It checks its inputs and the encoder's logvar range at every step.
    """
    def step(params, x, eps, beta):
        return loss_and_grads(params, x, eps, cfg, reduction, free_bits, beta=beta)
    return step


def make_iwae_step(cfg, reduction="mean", estimator="iwae"):
    r"""The IWAE training step: ``step(params, x, eps, beta) -> (loss, grads, terms)`` with
    eps (K, B, J) and loss ``reduce_b(-L_K(x_b))``: :func:`vae_numpy.iwae._iwae_step` itself
    (:func:`vae_numpy.iwae.iwae_loss_and_grads` without the input checks: train checks its
    data once). ``estimator`` picks the encoder's gradient estimator; beta is always 1 and
    ignored.
    """
    def step(params, x, eps, beta):
        return _iwae_step(params, x, eps, cfg, reduction, estimator=estimator)
    return step


@dataclasses.dataclass(frozen=True)
class _Plan:
    r"""Everything a training epoch needs that does not change during the run."""
    cfg: object
    batch_size: int
    binarize: str
    warmup_steps: int
    clip_norm: object
    objective: str
    k: int
    schedule: object
    budget: object
    steps_per_epoch: int
    step: object

    def noise_shape(self, batch):
        r"""(B, J) for the VAE, (K, B, J) for the IWAE (sample axis first)."""
        j = self.cfg.latent_dim
        return (batch, j) if self.objective == "vae" else (self.k, batch, j)

    def fraction(self, steps, seconds):
        return self.budget.fraction(steps, seconds, self.steps_per_epoch)


class _Clock:
    r"""Training wall time of the whole run: what earlier calls spent plus this call's time."""

    def __init__(self, spent):
        self.spent, self.t0 = spent, time.perf_counter()

    def __call__(self):
        return self.spent + time.perf_counter() - self.t0


@dataclasses.dataclass
class TrainState:
    r"""What ``callback`` receives after each epoch: the run as a checkpoint must save it.

    ``params``, ``opt_state``, ``rng`` and ``history`` are the objects train updates in place
    (``rng`` is in the state a resumed run needs), ``record`` the epoch's history record.
    """
    record: dict
    params: dict
    opt_state: dict
    optimizer: object
    rng: np.random.Generator
    history: list


# --- the loop ---------------------------------------------------------------------------------

def _check_options(cfg, x_train, dtype, epochs, batch_size, binarize, kl_warmup_epochs,
                   free_bits, clip_norm, history):
    # The data is checked here, once (finite, in the likelihood's support), before any work;
    # the VAE step (loss_and_grads) checks its minibatch again, the IWAE step does not.
    x_train = check_batch("x_train", x_train, dtype, cfg.input_dim, likelihood=cfg.likelihood)
    if len(x_train) == 0:
        raise ValueError("x_train is empty; train needs at least one example")
    if epochs is not None and (int(epochs) != epochs or epochs < 0):
        raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if binarize not in BINARIZE:
        raise ValueError(f"binarize must be one of {BINARIZE}, got {binarize!r}")
    if not kl_warmup_epochs >= 0:
        raise ValueError(f"kl_warmup_epochs must be >= 0, got {kl_warmup_epochs!r}")
    if not free_bits >= 0:
        raise ValueError(f"free_bits must be >= 0 nats per latent dimension, got {free_bits!r}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be > 0 or None (no clipping), got {clip_norm!r}")
    if history is not None and not isinstance(history, list):
        raise TypeError(f"history must be a list (of records from a previous train call) or "
                        f"None, got {type(history).__name__}")
    return x_train


def _check_run(objective, k, cfg, kl_warmup_epochs, free_bits, epochs, schedule, budget,
               optimizer, step):
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if step not in STEPS:
        raise ValueError(f"step must be one of {STEPS}, got {step!r} (both run "
                         "loss_and_grads / vae_numpy.iwae's step: no faster copy remains)")
    if int(k) != k or k < 1:
        raise ValueError(f"k (importance samples per example) must be an integer >= 1, got {k!r}")
    if objective == "vae" and k != 1:
        raise ValueError(f"k={k} needs objective='iwae'; the VAE objective uses one sample")
    if objective == "iwae" and (kl_warmup_epochs or free_bits or cfg.beta != 1
                                or cfg.rec_weight != 1):
        raise ValueError("objective='iwae' trains the importance-weighted bound itself: it takes "
                         "no KL warm-up, free bits, beta or rec_weight (leave them at their "
                         "defaults)")
    if epochs is None and budget is None:
        raise ValueError("give epochs (epochs to run in this call), a budget, or both")
    if schedule is not None and budget is None:
        raise ValueError("a learning-rate schedule needs a budget (e.g. Budget(3280, 'epochs') "
                         "or Budget(3600, 'seconds')): its stages are fractions of the budget")
    if schedule is not None and not hasattr(optimizer, "lr"):
        raise TypeError(f"a schedule sets optimizer.lr, which {type(optimizer).__name__} lacks")


def _estimator(objective, estimator, history):
    r"""The run's IWAE gradient estimator (None for the VAE), checked against ``history``."""
    if estimator is not None and objective != "iwae":
        raise ValueError(f"estimator={estimator!r} needs objective='iwae': the VAE objective's "
                         "KL is analytic, so it has no sticking-the-landing or DReG variant "
                         "(leave estimator None)")
    if objective != "iwae":
        return None
    estimator = "iwae" if estimator is None else estimator
    check_estimator(estimator)
    last = history[-1] if history else {}
    saved = last.get("estimator", "iwae")   # records written before estimators were "iwae"
    if last.get("objective") == "iwae" and saved != estimator:
        raise ValueError(f"estimator={estimator!r}, but the run in history trained with "
                         f"estimator={saved!r}: a resumed run keeps its gradient estimator "
                         f"(pass estimator={saved!r}, or start a new run without the history)")
    return estimator


def _spent(history):
    r"""(steps, clock seconds) the run spent before this call, from its history."""
    if not history:
        return 0, 0.0
    last = history[-1]
    return int(last["steps"]), float(last.get("clock_seconds", 0.0))


def _budget_left(plan, steps, clock):
    return plan.budget is None or plan.fraction(steps, clock()) < 1


def _run_epoch(params, *, plan, optimizer, opt_state, rng, x_train, first_step, clock,
               progress, label):
    r"""One pass over x_train, or less if the budget runs out; returns the record's train part."""
    cfg, dtype = plan.cfg, x_train.dtype
    n = len(x_train)
    n_batches = plan.steps_per_epoch
    sums = dict(rec=0.0, kl=0.0, objective=0.0, grad_norm=0.0, clipped=0)
    step, beta_t, seen, lr = first_step, cfg.beta, 0, getattr(optimizer, "lr", None)
    t0 = time.perf_counter()
    for i, idx in enumerate(minibatches(n, plan.batch_size, rng)):
        if not _budget_left(plan, step, clock):
            break
        if plan.schedule is not None:
            optimizer.lr = lr = plan.schedule.lr(plan.fraction(step, clock()))
        x = x_train[idx]                                          # (B, D)
        if plan.binarize == "dynamic":
            x = bernoulli_draw(x, rng)    # binarize_dynamic without re-checking x_train
        eps = rng.standard_normal(plan.noise_shape(len(idx)), dtype=dtype)  # (B, J) / (K, B, J)
        beta_t = kl_warmup_beta(step, plan.warmup_steps, cfg.beta)
        loss, grads, terms = plan.step(params, x, eps, beta_t)
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"{label}, batch {i + 1}/{n_batches}: the loss is {loss}; lower the learning "
                "rate or pass clip_norm (e.g. 100) to cap the gradient norm")
        if plan.clip_norm is not None:
            grads, norm = clip_grad_norm(grads, plan.clip_norm)
            sums["grad_norm"] += norm
            sums["clipped"] += norm > plan.clip_norm
        optimizer.step(params, grads, opt_state)
        step += 1
        seen += len(idx)
        sums["rec"] += float(np.sum(terms["rec"], dtype=np.float64))
        sums["kl"] += float(np.sum(terms["kl"], dtype=np.float64))
        # The optimized objective per example: reduction-independent, loss * B for "mean".
        sums["objective"] += _objective_sum(terms, cfg, beta_t, plan.objective)
        elapsed = time.perf_counter() - t0
        progress.status(f"{label}  batch {i + 1}/{n_batches}  objective "
                        f"{sums['objective'] / seen:.2f}  {(i + 1) / elapsed:.1f} batches/s")
    seen = max(seen, 1)
    record = {"steps": step, "beta": beta_t,
              "train_rec": sums["rec"] / seen, "train_kl": sums["kl"] / seen,
              "train_neg_elbo": (sums["rec"] + sums["kl"]) / seen,
              "train_objective": sums["objective"] / seen,
              "seconds": time.perf_counter() - t0}
    if seen < n:
        record["examples"] = seen   # the budget ran out during this epoch
    if lr is not None and plan.schedule is not None:
        record.update(lr=lr, stage=plan.schedule.stage(plan.fraction(step - 1, clock())))
    if plan.clip_norm is not None:
        record["grad_norm_mean"] = sums["grad_norm"] / n_batches
        record["clipped_fraction"] = sums["clipped"] / n_batches
    return record


def _objective_sum(terms, cfg, beta_t, objective):
    r"""Sum over the batch of the per-example objective: ``-L_K`` for the IWAE,
    ``rec_weight * rec + beta_t * kl_objective`` for the VAE (kl with free bits if asked)."""
    if objective == "iwae":
        return -float(np.sum(terms["iw_bound"], dtype=np.float64))
    return (cfg.rec_weight * float(np.sum(terms["rec"], dtype=np.float64))
            + beta_t * float(np.sum(terms["kl_objective"], dtype=np.float64)))


def train(params, cfg, x_train, *, optimizer, rng, epochs=None, batch_size=128, x_test=None,
          opt_state=None, history=None, binarize="none", kl_warmup_epochs=0, free_bits=0.0,
          clip_norm=None, reduction="mean", eval_seed=EVAL_NOISE_SEED, progress=True,
          stream=None, callback=None, objective="vae", k=1, schedule=None, budget=None,
          estimator=None, step="default"):
    r"""Train a VAE (or an IWAE) with minibatch gradient steps; returns the history.

    Each step minimizes, on a minibatch, ``reduce_b(cfg.rec_weight * rec_b + beta_t * kl_b)``
    (objective="vae", the analytic KL) or ``reduce_b(-L_K(x_b))`` (objective="iwae", the
    importance-weighted bound with K = k samples), reduce = ``reduction`` (see the module
    docstring for the order of the random draws). ``params``, ``opt_state`` and ``history``
    are updated in place; the epoch number, the step count and the clock continue from
    ``history``.

    Parameters
    ----------
    params : dict from :func:`vae_numpy.init_params` (updated in place).
    cfg : VAEConfig; ``cfg.beta`` is the KL weight after warm-up.
    x_train : (N, D) array of the params' dtype, values in [0, 1] when binarizing.
    optimizer : :class:`vae_numpy.optim.Adam` or :class:`~vae_numpy.optim.SGD`.
    rng : numpy.random.Generator; every random draw of training comes from it (shuffling,
        dynamic binarization, eps), so the same seed gives the same run.
    epochs : number of epochs to run in this call; None runs until ``budget`` is spent.
    batch_size : B; the last batch of an epoch holds the remaining ``N % B`` examples.
    x_test : (N_test, D) held-out data, used as given (binarize it first, e.g. with
        :func:`vae_numpy.data.binarize_test_set`), evaluated after every epoch with
        :func:`evaluate_elbo`.
    opt_state : the optimizer's state dict (from ``optimizer.init(params)`` or a checkpoint);
        None makes a fresh one. Pass your own dict to keep it: it is updated in place.
    history : list of records from earlier epochs (e.g. a checkpoint's); new records are
        appended to it. Epoch numbers, the step count (warm-up, schedule) and the budget's
        clock continue from it.
    binarize : "none" (use x as given), "static" (x_train binarized once, with the fixed seed
        STATIC_BINARIZE_SEED) or "dynamic" (a fresh Bernoulli draw for every minibatch, from
        rng).
    kl_warmup_epochs : beta_t ramps linearly from 0 to cfg.beta over this many epochs, step by
        step (:func:`kl_warmup_beta`); 0 means no warm-up.
    free_bits : nats per latent dimension (Kingma et al. 2016); the optimized KL is
        ``sum_j max(free_bits, mean_b kl_bj)``. The reported kl and neg_elbo stay the true ones.
    clip_norm : cap on the global gradient norm (:func:`vae_numpy.optim.clip_grad_norm`),
        or None.
    reduction : "mean" (default) or "sum" over the batch; with Adam both give nearly the
        same steps (Adam is invariant to the gradient's scale up to its eps).
    eval_seed : seed of the held-out noise (:func:`evaluate_elbo`).
    progress : a status line while an epoch runs and one summary line per epoch
        (:class:`vae_numpy.commands.progress.Progress`: rewritten in place on a terminal,
        whole lines at most every 10 s into a file or a pipe).
    stream : where progress goes (default sys.stderr).
    callback : called as ``callback(state)`` with a :class:`TrainState` after each epoch
        (e.g. to save a checkpoint).
    objective : "vae" (default) or "iwae" (Burda et al. 2016; eps is drawn (K, B, J)).
    k : K, importance samples per example for objective="iwae" (1 for the VAE).
    estimator : objective="iwae" only: the encoder's gradient estimator, "iwae" (the default,
        the gradient of L_K), "stl" (sticking the landing) or "dreg" (doubly reparameterized);
        see :func:`vae_numpy.iwae.iwae_loss_and_grads`. Recorded in every history record; a
        run continued from a history refuses another estimator. With objective="vae" any
        value is an error: the analytic KL has no such variants.
    step : "default" or "readable". "readable" runs :func:`vae_numpy.model.loss_and_grads`
        (objective="vae") or :func:`vae_numpy.iwae._iwae_step` (objective="iwae") at every
        step, the functions the docs derive; "default" runs the fastest step the package has.
        No faster copy of either remains, so today both run the same functions and give the
        same numbers bit for bit (tests/test_train_step.py); the switch is there so that a
        reader can check that, and anything else is a ValueError.
    schedule : a :class:`vae_numpy.schedule.StagedSchedule`, or None (the optimizer's lr).
        Before every step it sets ``optimizer.lr`` from the fraction of ``budget`` spent.
    budget : a :class:`vae_numpy.schedule.Budget` for the whole run (epochs, steps or seconds
        of training wall time, monitoring and checkpoint writes included); training stops
        when it is spent, mid-epoch if need be. None: ``epochs`` alone decides.

    Returns
    -------
    history : list of dicts, one per epoch, nats per example:
        ``epoch`` (1-based), ``steps`` (optimizer steps so far), ``beta`` (the last beta_t),
        ``train_rec``, ``train_kl``, ``train_neg_elbo`` (= rec + kl), ``train_objective``
        (the optimized loss per example: rec_weight * rec + beta_t * kl with free bits, or
        -L_K), ``seconds`` (training time of the epoch), ``clock_seconds`` (the run's
        training wall time so far); with x_test: ``test_rec``, ``test_kl``,
        ``test_neg_elbo``, ``eval_seconds``; with clip_norm: ``grad_norm_mean`` and
        ``clipped_fraction``; with a schedule: ``lr`` and ``stage`` of the epoch's last step;
        for the IWAE: ``objective``, ``k`` and ``estimator``; ``examples`` when the budget
        ended the epoch early.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError("train needs rng = numpy.random.Generator (e.g. "
                        f"numpy.random.default_rng(0)), got {type(rng).__name__}")
    dtype = params_dtype(params, cfg)
    x_train = _check_options(cfg, x_train, dtype, epochs, batch_size, binarize,
                             kl_warmup_epochs, free_bits, clip_norm, history)
    _check_run(objective, k, cfg, kl_warmup_epochs, free_bits, epochs, schedule, budget,
               optimizer, step)
    estimator = _estimator(objective, estimator, history)
    if binarize != "none":
        check_probabilities(x_train, "x_train")   # once; the steps draw unchecked
    if binarize == "static":
        x_train = binarize_static(x_train, np.random.default_rng(STATIC_BINARIZE_SEED))
    if x_test is not None:
        x_test = check_batch("x_test", x_test, dtype, cfg.input_dim)
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    history = [] if history is None else history
    progress = Progress(stream, enabled=progress)
    n_batches = batches_per_epoch(len(x_train), batch_size)
    step_fn = (make_step(cfg, reduction, free_bits) if objective == "vae"
               else make_iwae_step(cfg, reduction, estimator))
    plan = _Plan(cfg=cfg, batch_size=batch_size, binarize=binarize,
                 warmup_steps=int(round(kl_warmup_epochs * n_batches)), clip_norm=clip_norm,
                 objective=objective, k=int(k), schedule=schedule, budget=budget,
                 steps_per_epoch=n_batches, step=step_fn)
    steps, spent = _spent(history)
    clock = _Clock(spent)
    start = len(history)
    end = None if epochs is None else start + int(epochs)
    epoch = start
    with progress:  # an exception ends an open status line before it propagates
        while (end is None or epoch < end) and _budget_left(plan, steps, clock):
            epoch += 1
            label = f"epoch {epoch}" + ("" if end is None else f"/{end}")
            record = {"epoch": epoch}
            if objective == "iwae":
                record.update(objective=objective, k=int(k), estimator=estimator)
            record.update(_run_epoch(params, plan=plan, optimizer=optimizer, opt_state=opt_state,
                                     rng=rng, x_train=x_train, first_step=steps, clock=clock,
                                     progress=progress, label=label))
            if record["steps"] == steps:   # the budget ran out before this epoch's first step
                break
            steps = record["steps"]
            if x_test is not None:
                progress.status(f"{label}  evaluating {len(x_test)} held-out examples", force=True)
                t0 = time.perf_counter()
                test = evaluate_elbo(params, cfg, x_test, seed=eval_seed)
                record.update({f"test_{key}": v for key, v in test.items()})
                record["eval_seconds"] = time.perf_counter() - t0
            # The clock runs on through the callback (a checkpoint write is training time too);
            # only the last write before an interruption is lost to it, a few milliseconds.
            record["clock_seconds"] = clock()
            history.append(record)
            progress.line(format_record(record, end))
            if callback is not None:
                callback(TrainState(record=record, params=params, opt_state=opt_state,
                                    optimizer=optimizer, rng=rng, history=history))
    return history
