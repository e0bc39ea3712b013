"""The one interface every model implements, the compiled forward pass that runs any of them, and
the parameter mechanism (which leaves train, counting, groups).

Conventions (used everywhere in the library)
--------------------------------------------
* A model is an ``equinox.Module`` and is treated as a pytree. Its **trainable parameters are every
  inexact array leaf anywhere in it**, nested modules included (an ``eqx.nn.GRUCell`` inside a
  model trains like a top-level weight), except the leaves under a field that some module on the
  leaf's path lists in its ``buffers`` (fixed masks, sign vectors) or ``constants`` (time
  constants): those are never trained and not counted.
* **Parameter groups** (for staged training, "retrain only the NM subnetwork") are labels over
  the pytree: ``param_groups`` maps a group name to dotted paths relative to the module that
  declares it (``"W_z"``, ``"cell"``, ``"cell.weight_hh"``); a path selects every parameter below
  it. The groups of a nested model are available from the outside as ``"<field>.<group>"``.
* A model has **two faces**: ``step(state, u, *, key=None) -> state``, the one-step map
  ``F(state, u)`` used by recurrent models and by the dynamics analysis, and
  ``forward(inputs, *, key=None, initial_state=None) -> Trajectory``, the whole-sequence pass.
  ``forward`` defaults to scanning ``step``; models that are not one-step maps (a causal
  Transformer, a convolutional state-space model) override it and need no ``step``.
  :func:`simulate` is the compiled entry point to ``forward``: one compilation per input shape.
* ``state`` is a ``NamedTuple`` of arrays, one field per state variable (``x``, ``z``, ``h``, ``c``,
  ``r``, ``n`` ...). Every field has shape ``(*batch, size)``: one time step of one trial is the
  unbatched case ``batch = ()``; a batch of trials is ``batch = (B,)``. Models are written with
  batched matrix products (``x @ W.T``), which measure faster than ``vmap`` over trials, and the
  same code serves the unbatched case used by fixed-point analysis. Fields are addressed by name
  (:meth:`AbstractRecurrentModel.make_state`, :meth:`~AbstractRecurrentModel.replace_state`).
* Keys are keyword-only everywhere; ``key`` feeds the model's own noise (recurrent noise), and
  without a key the step is deterministic.
* ``readout(state) -> y`` maps a state (any leading dims) to the output.
* Batch arrays are **batch-major**: inputs ``(B, T, P)``, outputs ``(B, T, O)``; an unbatched
  sequence is ``(T, P)``. Time is measured in steps of ``dt``.
* ``materialize()`` returns an equivalent model whose derived weights (Dale-signed matrices,
  QR-orthonormalised factors) are computed once. ``forward`` calls it before the scan, so the
  per-step work is only the recurrence; calling ``step`` on the raw model gives the same numbers.
* **Initial state.** Every model built by the library takes ``init_value`` (the value of every
  state variable before the first input; 0 by default, the NM-RNN reference code uses 0.1) and
  ``learn_init`` (train the initial state as a parameter, group ``"initial_state"``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_positive
from .bptt import scan_steps

State = Any  # a NamedTuple of arrays; each model defines its own

#: The group that holds a learned initial state (``learn_init=True``).
INITIAL_STATE_GROUP = "initial_state"


class AbstractRecurrentModel(eqx.Module):
    """Base class of all models (see the module docstring for the conventions).

    Subclasses define ``n_in``, ``n_out`` (static ints) and ``dt``, and implement
    :meth:`initial_state`, :meth:`step` and :meth:`readout` (recurrent models), or override
    :meth:`forward` (sequence models). They may override :meth:`materialize`, declare
    ``param_groups`` and ``buffers``, and fill the hooks experiments use (``modulatory_fields``,
    :meth:`modulation`, :meth:`min_hidden`).
    """

    n_in: eqx.AbstractVar[int]
    n_out: eqx.AbstractVar[int]
    dt: eqx.AbstractVar[float]
    #: Learned initial state (a state NamedTuple of ``(size,)`` arrays) or ``None``.
    state0: Any = None
    #: Value of every state variable before the first input when ``state0`` is ``None``.
    init_value: float = eqx.field(static=True, default=0.0)
    #: ``{time constant: dt / tau}`` precomputed by ``materialize`` (a constant, never trained), so
    #: that the scan over time reads the leak rates instead of dividing at every step.
    rates: Any = None

    #: Named groups of parameter paths, for staged training ("train only the NM subnetwork").
    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Fixed arrays that ``materialize`` folds into derived weights (masks, Dale signs): never
    #: trained or counted.
    buffers: ClassVar[tuple[str, ...]] = ()
    #: Constant arrays the dynamics read directly (time constants): never trained or counted;
    #: kept as data so that changing them does not recompile.
    constants: ClassVar[tuple[str, ...]] = ()
    #: Names of the state fields (the NamedTuple's fields), for analysis code.
    state_fields: ClassVar[tuple[str, ...]] = ()
    #: State fields that carry neuromodulation (NM-RNN: ``("z",)``; e-nmRNN: ``("n",)``).
    modulatory_fields: ClassVar[tuple[str, ...]] = ()
    #: Whether the model supplies the hooks of :mod:`nmrnn.models.bptt` (a backward pass that
    #: forms the weight gradients once, after the reverse loop). A model may make it a property.
    manual_backward: ClassVar[bool] = False

    # -- the recurrent face --------------------------------------------------------------------
    def initial_state(self, batch_shape: tuple[int, ...] = ()) -> State:
        """The state at t = -1 (before the first input), broadcast to ``batch_shape``.

        Default: the learned ``state0`` if the model has one, else every field filled with
        ``init_value``; the sizes come from :meth:`state_sizes`.
        """
        sizes = self.state_sizes()
        if self.state0 is not None:
            return jax.tree.map(lambda a: jnp.broadcast_to(a, (*batch_shape, *a.shape)), self.state0)
        return self.state_type(
            *(jnp.full((*batch_shape, sizes[f]), self.init_value, jnp.result_type(float)) for f in self.state_fields)
        )

    def state_sizes(self) -> dict[str, int]:
        """``{field: size}`` of the state (recurrent models override this or initial_state)."""
        raise NotImplementedError(f"{type(self).__name__} does not declare its state sizes")

    @property
    def state_type(self) -> type:
        """The state NamedTuple class."""
        raise NotImplementedError(f"{type(self).__name__} does not declare its state type")

    def step(self, state: State, u: Float[Array, "*batch n_in"], *, key: PRNGKeyArray | None = None) -> State:
        """One step of the dynamics, ``state_t = F(state_{t-1}, u_t)``."""
        raise NotImplementedError(
            f"{type(self).__name__} is a sequence model without a one-step map; use simulate()"
        )

    def readout(self, state: State) -> Float[Array, "*batch n_out"]:
        """Output ``y_t`` from ``state_t``."""
        raise NotImplementedError(f"{type(self).__name__} has no state readout")

    def materialize(self) -> AbstractRecurrentModel:
        """An equivalent model with derived weights precomputed (default: the model itself)."""
        return self

    def rate(self, name: str) -> Array:
        """The leak rate ``dt / tau`` of the time constant ``name`` (precomputed once by
        :meth:`with_rates`, else computed here)."""
        if self.rates is not None:
            return self.rates[name]
        return self.dt / getattr(self, name)

    def with_rates(self, *names: str) -> AbstractRecurrentModel:
        """This model with the leak rates of the time constants ``names`` precomputed."""
        return replace_fields(self, rates={n: self.dt / getattr(self, n) for n in names})

    def vector_field(self, state: State, u: Float[Array, "*batch n_in"]) -> State:
        """Continuous-time vector field of the Euler-discretised model, ``(F(s, u) - s) / dt``.

        The fixed points of the map and the zeros of the field coincide; eigenvalues relate by
        ``lambda_map = 1 + dt * lambda_field``. Gated models (GRU, LSTM) have no continuous-time
        form; for them ``dt`` is 1 and this is simply ``F(s) - s``.
        """
        new = self.step(state, u)
        return jax.tree.map(lambda a, b: (a - b) / self.dt, new, state)

    # -- the sequence face ---------------------------------------------------------------------
    def forward(
        self,
        inputs: Float[Array, "*batch T n_in"],
        *,
        key: PRNGKeyArray | None = None,
        initial_state: State | None = None,
    ) -> Trajectory:
        """The whole-sequence pass: outputs and every state variable at every step.

        Default: :meth:`materialize`, then a ``lax.scan`` of :meth:`step` over time (time-major
        inside, batch-major in and out; :func:`nmrnn.models.bptt.scan_steps`, which uses the
        model's hand-written backward pass when it has one). Sequence models override this. Not compiled by itself;
        :func:`simulate` is the compiled entry point.
        """
        batch_shape = inputs.shape[:-2]
        n_steps = inputs.shape[-2]
        core = self.materialize()
        if initial_state is None:
            initial_state = core.initial_state(batch_shape)
        xs = jnp.moveaxis(inputs, -2, 0)  # time-major for the scan
        keys = None if key is None else jr.split(key, n_steps)

        states = scan_steps(core, initial_state, xs, keys)
        outputs = core.readout(states)
        to_batch_major = lambda a: jnp.moveaxis(a, 0, -2)  # noqa: E731
        return Trajectory(to_batch_major(outputs), jax.tree.map(to_batch_major, states))

    # -- hooks for experiments -----------------------------------------------------------------
    def make_state(self, batch_shape: tuple[int, ...] = (), **fields: Any) -> State:
        """The initial state with the named ``fields`` replaced (values broadcast to the batch)."""
        state = self.initial_state(batch_shape)
        return self.replace_state(state, **fields)

    def replace_state(self, state: State, **fields: Any) -> State:
        """``state`` with the named fields replaced; unknown names are refused."""
        names = tuple(state._fields)
        bad = sorted(set(fields) - set(names))
        if bad:
            raise ValueError(
                f"{type(self).__name__} has no state field(s) {', '.join(bad)}; its fields: "
                f"{', '.join(names)}"
            )
        new = {}
        for name, value in fields.items():
            ref = getattr(state, name)
            new[name] = jnp.broadcast_to(jnp.asarray(value, ref.dtype), ref.shape)
        return state._replace(**new)

    def modulation(self, states: State) -> Array | None:
        """The neuromodulatory signal at every step of ``states`` (NM-RNN: its gains ``s``;
        e-nmRNN: the concentrations ``n``), or ``None`` for a model without one."""
        return None

    def recurrent_weights(self) -> Array | None:
        """The ``(N, N)`` recurrent matrix the dynamics use (scaling, Dale signs and masks
        applied; the low-rank models' ``L R^T``), or ``None`` for a model without one (gated
        and sequence models). Connectivity analyses and the wiring cost read it."""
        return None

    def release_matrix(self) -> Array | None:
        """How much of each neuromodulator each neuron releases, ``(M, N)`` (the e-nmRNN's
        ``R``), or ``None``."""
        return None

    def modulated_weights(self, n: Array) -> Array | None:
        """The recurrent matrix under neuromodulator levels ``n (*batch, M)`` (the e-nmRNN's
        ``W + sum_k n_k T_k``, ``(*batch, N, N)``), or ``None``."""
        return None

    @classmethod
    def min_hidden(cls, **options: Any) -> int:
        """The smallest hidden size that the model takes with ``options`` (default 1)."""
        return 1

    @classmethod
    def hidden_multiple(cls, **options: Any) -> int:
        """Hidden sizes the model takes with ``options`` are the multiples of this number
        (default 1; the Transformer: its number of heads)."""
        return 1


class Trajectory(NamedTuple):
    """The result of :func:`simulate`.

    ``outputs``: ``(*batch, T, n_out)``; ``states``: the model's state NamedTuple with every field
    stacked over time, ``(*batch, T, size)``; entry ``t`` is the state after input ``t``.
    """

    outputs: Array
    states: State


def check_inputs(model: AbstractRecurrentModel, inputs: Array) -> None:
    """Refuse inputs whose last axis does not match ``model.n_in`` (raised before tracing)."""
    shape = jnp.shape(inputs)
    if len(shape) < 2:
        raise ValueError(
            f"inputs must have shape (T, n_in) or (batch, T, n_in); got shape {tuple(shape)}"
        )
    if shape[-1] != model.n_in:
        raise ValueError(
            f"inputs have {shape[-1]} channels but the {type(model).__name__} expects "
            f"n_in={model.n_in}"
        )


@eqx.filter_jit
def _compiled_forward(model, inputs, key, initial_state):
    return model.forward(inputs, key=key, initial_state=initial_state)


def simulate(
    model: AbstractRecurrentModel,
    inputs: Float[Array, "*batch T n_in"],
    *,
    key: PRNGKeyArray | None = None,
    initial_state: State | None = None,
) -> Trajectory:
    """Run ``model`` over an input sequence and return outputs and every state variable.

    Compiled: the first call for a given model structure and input shape compiles, later calls
    (other weights, other inputs of the same shape) reuse the compiled program. Inside a traced
    function it is inlined like any jitted function.

    Args:
        model: any :class:`AbstractRecurrentModel`.
        inputs: ``(T, n_in)`` or ``(B, T, n_in)``, batch-major.
        key: PRNG key for the model's recurrent noise; ``None`` runs noise-free.
        initial_state: state before the first input; defaults to ``model.initial_state``.
    """
    check_inputs(model, inputs)
    return _compiled_forward(model, jnp.asarray(inputs), key, initial_state)


def time_constant(tau) -> Array:
    """A time constant as a scalar array. Models list their time constants in ``constants``
    (constants, never trained): as data rather than static fields, changing one between runs does
    not recompile and an ensemble can vary it across members."""
    return jnp.asarray(float(tau), jnp.result_type(float))


def initial_state_parameter(state_type: type, sizes: dict[str, int], init_value: float, learn: bool):
    """The ``state0`` field of a model: ``None``, or (``learn=True``) a state of ``(size,)`` arrays
    filled with ``init_value`` that trains with the model (group ``"initial_state"``)."""
    if not learn:
        return None
    return state_type(*(jnp.full((sizes[f],), float(init_value), jnp.result_type(float)) for f in state_type._fields))


# ----------------------------------------------------------------------------------------------
# parameters: which leaves are trainable, counting, groups
# ----------------------------------------------------------------------------------------------


def _key_name(k) -> str:
    if isinstance(k, jax.tree_util.GetAttrKey):
        return k.name
    if isinstance(k, jax.tree_util.SequenceKey):
        return str(k.idx)
    if isinstance(k, jax.tree_util.DictKey):
        return str(k.key)
    if isinstance(k, jax.tree_util.FlattenedIndexKey):
        return str(k.key)
    return str(k)


def _is_inexact(value) -> bool:
    """An inexact array, or its abstract stand-in (``jax.ShapeDtypeStruct``, from eval_shape)."""
    if isinstance(value, jax.ShapeDtypeStruct):
        return jnp.issubdtype(value.dtype, jnp.inexact)
    return eqx.is_inexact_array(value)


def _child(node, k):
    if isinstance(k, jax.tree_util.GetAttrKey):
        return getattr(node, k.name)
    if isinstance(k, jax.tree_util.SequenceKey):
        return node[k.idx]
    if isinstance(k, jax.tree_util.DictKey):
        return node[k.key]
    return None


def _leaf_table(model) -> list[tuple[str, bool, Any]]:
    """``(dotted path, trainable, leaf)`` for every leaf of ``model`` in flattening order."""
    rows = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(model)[0]:
        constant = False
        node = model
        for k in path:
            if isinstance(node, eqx.Module) and isinstance(k, jax.tree_util.GetAttrKey):
                kind = type(node)
                if (
                    k.name in getattr(kind, "buffers", ())
                    or k.name in getattr(kind, "constants", ())
                    or (k.name == "rates" and isinstance(node, AbstractRecurrentModel))
                ):
                    constant = True
                    break
            node = _child(node, k)
            if node is None:
                break
        rows.append((".".join(_key_name(k) for k in path), (not constant) and _is_inexact(leaf), leaf))
    return rows


def _declared_groups(model) -> dict[str, tuple[str, ...]]:
    """Every group of ``model`` as absolute dotted paths: its own ``param_groups``, the
    ``"initial_state"`` group, and the groups of nested modules as ``"<path>.<group>"``."""
    groups: dict[str, tuple[str, ...]] = {}

    def visit(node, prefix: str):
        if isinstance(node, eqx.Module):
            own = dict(getattr(type(node), "param_groups", {}))
            if isinstance(node, AbstractRecurrentModel) and node.state0 is not None:
                own.setdefault(INITIAL_STATE_GROUP, ("state0",))
            for name, paths in own.items():
                full = f"{prefix}{name}"
                groups[full] = tuple(groups.get(full, ())) + tuple(f"{prefix}{p}" for p in paths)
            children = [
                (f.name, getattr(node, f.name))
                for f in dataclasses.fields(node)
                if not f.metadata.get("static", False)
            ]
        elif isinstance(node, list | tuple):
            children = [(str(i), v) for i, v in enumerate(node)]
        elif isinstance(node, dict):
            children = [(str(k), v) for k, v in node.items()]
        else:
            return
        for name, value in children:
            if isinstance(value, eqx.Module | list | tuple | dict):
                visit(value, f"{prefix}{name}.")

    visit(model, "")
    return groups


def group_names(model: AbstractRecurrentModel) -> tuple[str, ...]:
    """Valid group names for :func:`trainable_filter`: ``"all"`` plus the model's own groups
    (nested modules' groups as ``"<field>.<group>"``)."""
    return ("all", *_declared_groups(model))


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def trainable_filter(model: AbstractRecurrentModel, group: str = "all") -> Any:
    """A filter-spec pytree (``True`` on the trainable leaves of ``group``) for ``eqx.partition``.

    ``group`` is ``"all"`` or one of :func:`group_names`; paths of a group that are ``None`` in
    this instance (an option switched off) select nothing.
    """
    groups = _declared_groups(model)
    if group != "all" and group not in groups:
        raise ValueError(
            f"unknown parameter group {group!r} for {type(model).__name__}; valid groups: "
            f"{', '.join(group_names(model))}"
        )
    rows = _leaf_table(model)
    chosen = [
        trainable and (group == "all" or _under(path, groups[group]))
        for path, trainable, _ in rows
    ]
    treedef = jax.tree.structure(model)
    return jax.tree.unflatten(treedef, chosen)


def parameter_paths(model: AbstractRecurrentModel, group: str = "all") -> tuple[str, ...]:
    """Dotted paths of the trainable leaves (of ``group``), e.g. ``("W", "B", "cell.weight_hh")``."""
    spec = jax.tree.leaves(trainable_filter(model, group))
    return tuple(path for (path, _, _), on in zip(_leaf_table(model), spec, strict=True) if on)


def parameter_fields(model: AbstractRecurrentModel) -> tuple[str, ...]:
    """Names of the top-level fields that hold trainable leaves."""
    out: list[str] = []
    for path in parameter_paths(model):
        head = path.split(".")[0]
        if head not in out:
            out.append(head)
    return tuple(out)


def _size(value) -> int:
    return int(np.prod(value.shape))


def param_count(model: AbstractRecurrentModel, group: str = "all") -> int:
    """Exact number of trainable scalars (in ``group``)."""
    spec = jax.tree.leaves(trainable_filter(model, group))
    return int(sum(_size(leaf) for (_, _, leaf), on in zip(_leaf_table(model), spec, strict=True) if on))


def param_breakdown(model: AbstractRecurrentModel) -> dict[str, int]:
    """Trainable scalar count per dotted leaf path (top-level field names for flat models)."""
    return {path: _size(leaf) for path, trainable, leaf in _leaf_table(model) if trainable}


def check_trainable(model: AbstractRecurrentModel, group: str = "all", what: str = "") -> int:
    """The number of trainable scalars of ``group``; ``ValueError`` if there are none."""
    n = param_count(model, group)
    if n == 0:
        where = f" ({what})" if what else ""
        if group == "all":
            raise ValueError(
                f"{type(model).__name__} has no trainable parameters{where}: no inexact array leaf "
                "outside its constants (buffers)"
            )
        raise ValueError(
            f"parameter group {group!r} of {type(model).__name__} has no trainable parameters"
            f"{where}; groups with parameters: "
            + ", ".join(g for g in group_names(model) if param_count(model, g) > 0)
        )
    return n


# ----------------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------------
# small shared helpers for the leaky (Euler-discretised) model family
# ----------------------------------------------------------------------------------------------


def narrow_matmul(a: Array, w: Array, narrow: int = 8) -> Array:
    """``a @ w`` for ``a (..., n)`` and ``w (n, m)``, in the form XLA runs fastest on CPU when ``w``
    is narrow.

    With ``n <= narrow``: a sum of ``n`` broadcast multiply-adds, which XLA fuses with the
    surrounding elementwise work instead of calling a matmul kernel; else with ``m <= narrow``:
    ``m`` matrix-vector products; else a plain matmul. At the NM-RNN paper's MWG sizes (rank 3,
    5 NM units, 3 inputs) this makes the compiled training step about 20% faster on CPU than plain
    matmuls (``benchmarks/bench_models.py``); results agree to rounding.
    """
    n, m = w.shape
    if n <= narrow:
        out = a[..., 0:1] * w[0]
        for k in range(1, n):
            out = out + a[..., k : k + 1] * w[k]
        return out
    if m <= narrow:
        return jnp.stack([a @ w[:, j] for j in range(m)], axis=-1)
    return a @ w


def leaky_update(x, drive, alpha: float, sigma: float = 0.0, key=None):
    """``(1 - alpha) x + alpha * drive + sqrt(2 alpha) sigma xi`` with ``xi ~ N(0, 1)``.

    Noise is added only when both ``sigma > 0`` and a key are given.
    """
    new = (1.0 - alpha) * x + alpha * drive
    if sigma > 0 and key is not None:
        new = new + jnp.sqrt(2.0 * alpha) * sigma * jr.normal(key, jnp.shape(new), new.dtype)
    return new


def zeros_state(batch_shape: tuple[int, ...], size: int) -> Array:
    return jnp.zeros((*batch_shape, size))


def normal_init(key, shape, scale: float) -> Array:
    return scale * jr.normal(key, shape)


#: How an orthonormalised factor is scaled: ``"sqrt_n"``: ``sqrt(N) Q`` with the signs fixed so
#: that R has a positive diagonal (``L'^T L' / N = I``, the normalisation of Proposition 1);
#: ``"unit"``: ``Q`` exactly as ``jnp.linalg.qr`` returns it (LAPACK's signs, unit-norm columns),
#: as the NM-RNN authors' code computes it at every forward pass.
ORTHONORMAL_SCALES = ("sqrt_n", "unit")


def orthonormal_columns(L: Array, scale: str = "sqrt_n") -> Array:
    """The orthonormalised factor of ``L = Q R``: ``sqrt(N) Q`` with a positive diagonal in R
    (``scale="sqrt_n"``, so ``L'^T L' / N = I``) or the raw ``Q`` (``scale="unit"``)."""
    q, r = jnp.linalg.qr(L)
    if scale == "unit":
        return q
    signs = jnp.sign(jnp.diagonal(r))
    signs = jnp.where(signs == 0, 1.0, signs)
    return jnp.sqrt(L.shape[0]) * q * signs


def readout_bias(key, n_out: int, n_hidden: int, init: str) -> Array:
    """The readout bias ``d``: zeros (``init="zeros"``) or ``N(0, 1/N)`` (``"normal"``, the NM-RNN
    authors' initialisation). ``key`` is only read for ``"normal"``."""
    if init == "normal":
        return normal_init(key, (n_out,), 1.0 / np.sqrt(n_hidden))
    return jnp.zeros(n_out)


#: Readout-bias initialisations (:func:`readout_bias`).
READOUT_BIAS_INITS = ("zeros", "normal")


ActivationName = str
StepFn = Callable[[State, Array], State]


def recurrent_mask(n: int, mask=None, spatial_grid=None, spatial_length: float = 0.1) -> Array | None:
    """The fixed ``(n, n)`` mask on a recurrent matrix: ``mask`` (checked), times the distance
    weights of a spatial embedding on ``spatial_grid`` (:func:`nmrnn.spatial.spatial_mask`);
    ``None`` when neither is given."""
    check_positive("spatial_length", spatial_length)
    out = None
    if mask is not None:
        if np.shape(mask) != (n, n):
            raise ValueError(f"mask must have shape (n_hidden, n_hidden)=({n}, {n}), got {np.shape(mask)}")
        out = jnp.asarray(mask, dtype=jnp.float32)
    if spatial_grid is not None:
        from ..spatial import spatial_mask

        weights = spatial_mask(spatial_grid, n, spatial_length)
        out = weights if out is None else out * weights
    return out


def replace_fields(module: eqx.Module, **changes: Any) -> eqx.Module:
    """A shallow copy of ``module`` with fields (static ones included) replaced.

    Used by ``materialize`` to swap a parameter for its derived value and switch the option off
    that derived it, without re-running the constructor.
    """
    new = copy.copy(module)
    for name, value in changes.items():
        object.__setattr__(new, name, value)
    return new
