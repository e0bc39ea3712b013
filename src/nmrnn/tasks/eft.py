"""Element Finder (T2; NM-RNN paper, supplement C).

A sequence of 26 scalar inputs: step 0 carries the query index ``q`` (uniform in 0..24), steps
1..25 carry values uniform in the integers -10..10. The target is the value at position ``q`` of
those 25 values (input step ``q + 1``), read out at the last step only (mask 1 there, 0 elsewhere).
Trained with fresh batches of 128; metric: MSE at the last step.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr

from .._validation import check_positive_int
from .base import AbstractTask, Batch


class ElementFinder(AbstractTask):
    n_values: int = eqx.field(static=True)
    value_low: int = eqx.field(static=True)
    value_high: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    default_batch_size: ClassVar[int] = 128

    def __init__(self, n_values: int = 25, value_low: int = -10, value_high: int = 10):
        self.n_values = check_positive_int("n_values", n_values)
        if int(value_high) < int(value_low):
            raise ValueError(f"value_high={value_high} must be >= value_low={value_low}")
        self.value_low, self.value_high = int(value_low), int(value_high)
        self.n_steps = self.n_values + 1
        self.n_in, self.n_out = 1, 1

    def trials(self, queries, values) -> Batch:
        """Deterministic trials from ``queries (B,)`` and ``values (B, n_values)``."""
        queries = jnp.asarray(queries, dtype=jnp.int32)
        values = jnp.asarray(values, dtype=jnp.float32)
        inputs = jnp.concatenate([queries[:, None].astype(jnp.float32), values], axis=1)[..., None]
        answer = jnp.take_along_axis(values, queries[:, None], axis=1)[:, 0]
        targets = jnp.zeros_like(inputs).at[:, -1, 0].set(answer)
        mask = jnp.zeros_like(inputs).at[:, -1, 0].set(1.0)
        return Batch(inputs, targets, mask, {"query": queries, "answer": answer})

    def sample(self, key, batch_size: int) -> Batch:
        check_positive_int("batch_size", batch_size)
        kq, kv = jr.split(key)
        q = jr.randint(kq, (batch_size,), 0, self.n_values)
        v = jr.randint(kv, (batch_size, self.n_values), self.value_low, self.value_high + 1)
        return self.trials(q, v)
