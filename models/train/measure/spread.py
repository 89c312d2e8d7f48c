"""How far an eval's headline figures would move on another draw of its prompts.

A card eval reads 40 clips, so its overall accuracy and Fréchet distance carry a sampling error as
large as the differences between checkpoints. Both are given a jackknife standard error over
prompts: the figure is recomputed with each prompt left out in turn (a generated clip and the fresh
render of the same prompt leave together), and the spread of those values is scaled up by n - 1.
For a share of clips it is the textbook s / sqrt(n). A bootstrap was tried first: its resamples
repeat clips, which inflates the Fréchet distance's own small-sample bias, so its spread overstated
the distance's error on simulated features, where the leave-one-out one stays near the spread of
fresh draws (tests/test_measure.py checks that). Neither removes that bias: at 40 clips and 256
features two sets drawn alike lie far apart, so distances are comparable only between evals of the
same prompt count. Two evals of one prompt list are compared clip by clip instead
(measure/paired.py), which is sharper than comparing two figures with their errors.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from measure.metrics import frechet_distance

METHOD = "jackknife over prompts"


def jackknife_error(statistic: Callable[[np.ndarray], float], n: int, least: int = 2) -> float | None:
    """Standard error of `statistic(indices)` over range(n) by leaving each index out in turn;
    None below `least` items."""
    if n < least:
        return None
    values = np.array([statistic(np.delete(np.arange(n), i)) for i in range(n)])
    return float(np.sqrt((n - 1) / n * ((values - values.mean()) ** 2).sum()))


def overall_error(right: np.ndarray, judged: np.ndarray) -> float | None:
    """Error of the overall accuracy (judged attributes right over judged attributes, as
    metrics.accuracy) of clips [N, attributes]. A clip's attributes leave together: they are read
    off one video and are not independent."""
    hits = (right & judged).sum(1).astype(np.float64)
    seen = judged.sum(1).astype(np.float64)
    return jackknife_error(lambda i: hits[i].sum() / max(seen[i].sum(), 1.0), len(hits))


def accuracy_errors(right: np.ndarray, judged: np.ndarray, groups: dict[str, list[int]]) -> dict:
    """Per group of clip indices (all, in-distribution, held-out): the overall accuracy's error."""
    return {name: overall_error(right[ii], judged[ii]) for name, ii in groups.items()}


def frechet_error(generated: np.ndarray, rendered: np.ndarray) -> float | None:
    """Error of the Fréchet distance between clip features [N, D] of the clips and of the fresh
    renders of the same N prompts."""
    generated, rendered = np.asarray(generated, np.float64), np.asarray(rendered, np.float64)
    assert len(generated) == len(rendered), (generated.shape, rendered.shape)
    # a distance needs two clips a side after one is left out
    return jackknife_error(lambda i: frechet_distance(generated[i], rendered[i]), len(generated), least=3)


def frechet_difference_error(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float | None:
    """Error of FD(a) - FD(b) for two evals of one prompt list, each (generated, rendered)
    features [N, D]: a prompt leaves both evals at once, so what the prompts share cancels."""
    (ag, ar), (bg, br) = ([np.asarray(x, np.float64) for x in pair] for pair in (a, b))
    assert len(ag) == len(ar) == len(bg) == len(br), (ag.shape, ar.shape, bg.shape, br.shape)
    return jackknife_error(lambda i: frechet_distance(ag[i], ar[i]) - frechet_distance(bg[i], br[i]), len(ag), least=3)
