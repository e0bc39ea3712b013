"""The NM-RNN authors' training options: element-wise clipping and best-block selection."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from train_helpers import interrupt_and_resume, small_nmrnn

from nmrnn.tasks import make_task
from nmrnn.train import Stage, TrainConfig, fit
from nmrnn.train.loop import make_optimizer

small = small_nmrnn


def arrays(model):
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(model, eqx.is_array))]


def test_value_clipping_clips_every_element_and_global_norm_rescales():
    g = {"a": jnp.asarray([3.0, -0.5, -7.0]), "b": jnp.asarray([[0.2, 2.0]])}
    p = jax.tree.map(jnp.zeros_like, g)
    value = make_optimizer(TrainConfig(clip=1.0, clip_mode="value", optimizer="adam"), 1.0)
    norm = make_optimizer(TrainConfig(clip=1.0, optimizer="adam"), 1.0)
    # Reference: the element-wise clip is min(max(g, -1), 1); the global-norm clip is g / ||g||.
    flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)])
    want_value = np.clip(flat, -1.0, 1.0)
    want_norm = flat / np.linalg.norm(flat)

    def first_transform(opt, grads):
        # Adam's first step is -lr * m_hat / (sqrt(v_hat) + eps) = -lr * g_c / (|g_c| + eps): it
        # hides the clip, so read the clipped gradient through Adam's first moment instead.
        state = opt.init(p)
        _, state = opt.update(grads, state, p)
        mu = state[1][0].mu  # chain: (clip state, adam (scale_by_adam, scale)) -> ScaleByAdamState
        return np.concatenate([np.ravel(x) for x in jax.tree.leaves(mu)]) / 0.1  # mu = (1 - b1) g_c

    np.testing.assert_allclose(first_transform(value, g), want_value, rtol=1e-6)
    np.testing.assert_allclose(first_transform(norm, g), want_norm, rtol=1e-6)


def test_value_clipping_trains_differently_from_global_norm_clipping():
    task = make_task("mwg")
    cfg = TrainConfig(steps=30, steps_per_call=10, clip=1.0, clip_mode="value", fixed_batch=True, lr=1e-2)
    ours = fit(small(), task, cfg, key=jr.PRNGKey(1))
    other = fit(small(), task, TrainConfig(steps=30, steps_per_call=10, clip=1.0, fixed_batch=True, lr=1e-2),
                key=jr.PRNGKey(1))
    assert not np.array_equal(ours.losses, other.losses)  # the two clips give different runs


# A learning rate at which the loss is not monotone, so that the best block is not the last.
KW = dict(fixed_batch=True, lr=0.3)


@pytest.mark.parametrize("per_call", [2, 10])
def test_best_block_selection_keeps_the_block_with_the_lowest_last_loss(per_call):
    """Reference: runs stopped at every block end (a run's first k*B steps do not depend on its
    length); the selected model is the one of the block whose last recorded loss is lowest."""
    task = make_task("mwg")
    B, K = 3, 3
    kw = dict(KW, steps_per_call=per_call)
    ends = [fit(small(), task, TrainConfig(steps=k * B, **kw), key=jr.PRNGKey(2)) for k in range(1, K + 1)]
    block_losses = [r.losses[-1] for r in ends]
    best = int(np.argmin(block_losses))
    assert best != K - 1  # the setting is one where selecting differs from keeping the last
    sel = fit(small(), task, TrainConfig(steps=K * B, select_best_block=B, **kw), key=jr.PRNGKey(2))
    np.testing.assert_array_equal(sel.losses, ends[-1].losses)  # selection does not change training
    for a, b in zip(arrays(sel.model), arrays(ends[best].model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_best_block_selection_per_stage_and_the_next_stage_starts_from_it():
    task = make_task("mwg")
    B = 3
    kw = dict(KW, steps_per_call=10)
    staged = TrainConfig(stages=(Stage(9, "lowrank"), Stage(6, "all")), select_best_block=B, **kw)
    sel = fit(small(), task, staged, key=jr.PRNGKey(2))
    # Reference for the first stage: stop it at each block end.
    firsts = [fit(small(), task, TrainConfig(stages=(Stage(k * B, "lowrank"),), **kw), key=jr.PRNGKey(2)) for k in (1, 2, 3)]
    best = int(np.argmin([r.losses[-1] for r in firsts]))
    assert best != 2
    np.testing.assert_array_equal(sel.losses[:9], firsts[-1].losses)
    # The second stage starts from the selected model: its first loss is that model's loss.
    start = fit(firsts[best].model, task, TrainConfig(steps=1, **kw), key=jr.PRNGKey(2))
    np.testing.assert_allclose(sel.losses[9], start.losses[0], rtol=1e-6)
    assert abs(sel.losses[9] - fit(firsts[-1].model, task, TrainConfig(steps=1, **kw), key=jr.PRNGKey(2)).losses[0]) > 1e-4



@pytest.mark.parametrize("stop_at", [5, 6])  # mid-block and at a block's end, mid-stage
def test_best_block_selection_resumes_exactly(tmp_path, stop_at):
    task = make_task("mwg")
    cfg = TrainConfig(stages=(Stage(9, "lowrank"), Stage(6, "all")), select_best_block=3, steps_per_call=2,
                      checkpoint_every=1, **KW)
    full = fit(small(), task, cfg, key=jr.PRNGKey(2))
    unselected = fit(small(), task, dataclasses.replace(cfg, select_best_block=None), key=jr.PRNGKey(2))
    assert not np.array_equal(full.losses, unselected.losses)  # the selection matters here
    resumed = interrupt_and_resume(task, cfg, jr.PRNGKey(2), tmp_path, stop_at)
    np.testing.assert_array_equal(full.losses, resumed.losses)
    for a, b in zip(arrays(full.model), arrays(resumed.model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_restarting_the_optimiser_each_block_equals_chained_runs_of_one_block():
    """Reference: the authors' training functions, a run of B steps with a fresh optimiser per
    block, each block starting from the previous block's end; the stage ends at the best block."""
    task = make_task("mwg")
    B, K = 3, 3
    kw = dict(KW, steps_per_call=2)
    chain, model = [], small()
    for _ in range(K):
        r = fit(model, task, TrainConfig(steps=B, **kw), key=jr.PRNGKey(2))
        chain.append(r)
        model = r.model
    restarted = fit(small(), task, TrainConfig(steps=K * B, select_best_block=B, restart_each_block=True, **kw),
                    key=jr.PRNGKey(2))
    np.testing.assert_allclose(restarted.losses, np.concatenate([r.losses for r in chain]), rtol=1e-6)
    best = int(np.argmin([r.losses[-1] for r in chain]))
    for a, b in zip(arrays(restarted.model), arrays(chain[best].model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    kept = fit(small(), task, TrainConfig(steps=K * B, select_best_block=B, **kw), key=jr.PRNGKey(2))
    assert np.abs(kept.losses[B:] - restarted.losses[B:]).max() > 1e-4  # the restart matters here
    np.testing.assert_array_equal(kept.losses[:B], restarted.losses[:B])


@pytest.mark.parametrize("stop_at", [5, 6])  # mid-block, and at a block's end where the optimiser restarts
def test_restarting_the_optimiser_each_block_resumes_exactly(tmp_path, stop_at):
    task = make_task("mwg")
    cfg = TrainConfig(stages=(Stage(9, "lowrank"), Stage(6, "all")), select_best_block=3, restart_each_block=True,
                      steps_per_call=2, checkpoint_every=1, **KW)
    full = fit(small(), task, cfg, key=jr.PRNGKey(2))
    resumed = interrupt_and_resume(task, cfg, jr.PRNGKey(2), tmp_path, stop_at)
    np.testing.assert_array_equal(full.losses, resumed.losses)
    for a, b in zip(arrays(full.model), arrays(resumed.model), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, msg", [({"clip_mode": "norm"}, "clip_mode"), ({"select_best_block": 0}, "select_best_block"),
                                         ({"restart_each_block": True}, "restart_each_block needs select_best_block"),
                                         ({"restart_each_block": 1, "select_best_block": 3}, "restart_each_block must be true or false")])
def test_bad_reference_training_options_are_refused(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        TrainConfig(**kwargs)


def test_minibatches_of_a_fixed_set_draw_the_documented_trials():
    """``fixed_batch`` with a smaller ``batch_size``: step g trains on ``batch_size`` trials of the
    fixed set drawn uniformly with replacement from the step's data key."""
    from nmrnn.models import simulate
    from nmrnn.tasks.base import masked_mse

    task = make_task("mwg")
    cfg = TrainConfig(steps=3, fixed_batch=True, batch_size=5, lr=1e-9, steps_per_call=3)
    model = small()
    result = fit(model, task, cfg, key=jr.PRNGKey(7))
    fixed = task.fixed_batch()
    for g in range(3):
        k_data, _ = jr.split(jr.fold_in(jr.PRNGKey(7), g))
        sub = fixed.take(jr.randint(k_data, (5,), 0, fixed.batch_size))
        want = float(masked_mse(simulate(model, sub.inputs).outputs, sub.targets, sub.mask))
        np.testing.assert_allclose(result.losses[g], want, rtol=1e-4)
    full = fit(model, task, TrainConfig(steps=3, fixed_batch=True, lr=1e-9, steps_per_call=3), key=jr.PRNGKey(7))
    assert np.ptp(full.losses) < 1e-6 < np.ptp(result.losses)  # the full set is the same every step
