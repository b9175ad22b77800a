r"""Learning-rate schedules in stages, and the budget a run is measured against.

A run has a length, its :class:`Budget`: a number of epochs, of optimizer steps, or of
seconds of training wall time. The fraction of it spent so far, ``f`` in [0, 1), decides the
learning rate of the next step. A :class:`StagedSchedule` splits the budget into stages of
relative lengths ``weights`` with a constant rate in each:

    stage(f) = the i with  W_{i-1} <= f * W_total < W_i,   W_i = weights_0 + ... + weights_i
    lr(f)    = lrs[stage(f)]

Burda et al. (2016), Sec. 5: 8 stages, stage i (i = 0..7) runs 3**i epochs (3,280 in all) at
``1e-3 * 10**(-i / 7)``; their code uses ``1e-4 * round(10**(1 - i / 7), 1)`` instead
(1e-3, 7.2e-4, 5.2e-4, ...). With a time budget the stages keep their proportions, stage i
getting ``3**i / 3280`` of the time, and the rate switches at the first step past the line.

Under an epoch or step budget the schedule depends only on the step count, so a resumed run
takes the same rates, bit for bit. Under a time budget it depends on the clock.
"""
import dataclasses
import math

BUDGET_UNITS = ("epochs", "steps", "seconds")
BURDA_STAGES = 8
BURDA_VARIANTS = ("paper", "code")


@dataclasses.dataclass(frozen=True)
class Budget:
    r"""The whole length of a run, across resumes: ``amount`` epochs, steps or seconds.

    ``seconds`` is training wall time (steps, per-epoch monitoring and checkpoint writes),
    as :func:`vae_numpy.train.train` keeps it in each record's ``clock_seconds``.
    """
    amount: float
    unit: str = "epochs"

    def __post_init__(self):
        if self.unit not in BUDGET_UNITS:
            raise ValueError(f"Budget.unit must be one of {BUDGET_UNITS}, got {self.unit!r}")
        if not (math.isfinite(self.amount) and self.amount > 0):
            raise ValueError(f"Budget.amount must be a finite number > 0, got {self.amount!r}")

    def fraction(self, steps, seconds, steps_per_epoch):
        r"""Fraction of the budget spent after ``steps`` optimizer steps and ``seconds``."""
        if self.unit == "seconds":
            return seconds / self.amount
        total_steps = self.amount * (steps_per_epoch if self.unit == "epochs" else 1)
        return steps / total_steps

    def to_dict(self):
        return {"amount": self.amount, "unit": self.unit}

    @classmethod
    def from_dict(cls, d):
        return cls(amount=d["amount"], unit=d["unit"])


@dataclasses.dataclass(frozen=True)
class StagedSchedule:
    r"""Piecewise-constant learning rate: stage i has rate ``lrs[i]`` and relative length
    ``weights[i]`` of the budget (see the module docstring for the formula)."""
    lrs: tuple
    weights: tuple
    name: str = "staged"

    def __post_init__(self):
        lrs, weights = tuple(map(float, self.lrs)), tuple(map(float, self.weights))
        if not lrs or len(lrs) != len(weights):
            raise ValueError(f"StagedSchedule needs as many lrs as weights (at least one), got "
                             f"{len(lrs)} lrs and {len(weights)} weights")
        if not all(math.isfinite(v) and v > 0 for v in lrs + weights):
            raise ValueError(f"StagedSchedule lrs and weights must be finite and > 0, got "
                             f"lrs={lrs}, weights={weights}")
        object.__setattr__(self, "lrs", lrs)
        object.__setattr__(self, "weights", weights)

    def boundaries(self):
        r"""Cumulative fractions ``W_i / W_total`` at which each stage ends; the last is 1."""
        total, run, ends = sum(self.weights), 0.0, []
        for w in self.weights:
            run += w
            ends.append(run / total)
        ends[-1] = 1.0
        return ends

    def stage(self, fraction):
        r"""Index of the stage that holds ``fraction`` of the budget (the last one from 1 on)."""
        for i, end in enumerate(self.boundaries()):
            if fraction < end:
                return i
        return len(self.lrs) - 1

    def lr(self, fraction):
        return self.lrs[self.stage(fraction)]

    def to_dict(self):
        return {"name": self.name, "lrs": list(self.lrs), "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, d):
        return cls(lrs=tuple(d["lrs"]), weights=tuple(d["weights"]), name=d.get("name", "staged"))


def burda_lr(stage, variant="paper"):
    r"""Stage i's rate: ``1e-3 * 10**(-i/7)`` (paper) or ``1e-4 * round(10**(1 - i/7), 1)``
    (the authors' code)."""
    if variant == "paper":
        return 1e-3 * 10 ** (-stage / 7)
    if variant == "code":
        return 1e-4 * round(10 ** (1 - stage / 7), 1)
    raise ValueError(f"variant must be one of {BURDA_VARIANTS}, got {variant!r}")


def burda_schedule(variant="paper", lr_scale=1.0):
    r"""Burda et al. (2016)'s 8 stages: weights 3**i, rates :func:`burda_lr` times ``lr_scale``.

    The full protocol is this schedule with ``Budget(3280, "epochs")``.
    """
    name = f"burda2016-{variant}" + ("" if lr_scale == 1 else f"-x{lr_scale:g}")
    return StagedSchedule(lrs=tuple(lr_scale * burda_lr(i, variant) for i in range(BURDA_STAGES)),
                          weights=tuple(3.0 ** i for i in range(BURDA_STAGES)), name=name)


BURDA_EPOCHS = sum(3 ** i for i in range(BURDA_STAGES))   # 3280
