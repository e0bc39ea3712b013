"""Parameter counts (hand-derived formulas), the paper's parameter-matched sizes, and the
trainable / buffer split that staged training relies on."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
import pytest
from models_cases import CASE_IDS, CASES, N_IN, N_OUT, build

from nmrnn.models import (
    MODELS,
    count_for,
    group_names,
    hidden_multiple,
    match_size,
    param_breakdown,
    param_count,
    trainable_filter,
)


def expected_count(name: str, n: int, o: dict, p: int = N_IN, out: int = N_OUT) -> int:
    """Trainable scalars of each model, from its equations (SPEC.md section 1)."""
    readout = out * n + out  # C (O x N) and d (O)
    if name == "vanilla":
        # W (N x N), B (N x P), b (N) if bias
        return n * n + n * p + (n if o.get("bias") else 0) + readout
    if name == "lowrank":
        k = o.get("rank", 3)
        # L, R (N x K each), B (N x P), b (N) if bias
        return 2 * n * k + n * p + (n if o.get("bias") else 0) + readout
    if name == "nmrnn":
        m, k = o.get("n_nm", 5), o.get("rank", 3)
        p_x = len(o["x_inputs"]) if o.get("x_inputs") is not None else p
        p_z = len(o["z_inputs"]) if o.get("z_inputs") is not None else p
        nm = m * m + m * p_z + k * m + k + (m * n if o.get("feedback") else 0)  # W_z B_z A_z b_z B_zx
        low = n * k * (1 if o.get("symmetric") else 2) + n * p_x  # L (R) B_x
        return nm + low + readout
    if name == "enmrnn":
        m, q = o.get("n_nm", 4), o.get("t_rank")
        tensor = m * n * n if q is None else 2 * m * n * q  # full T or T_left, T_right
        excitability = 2 * n if o.get("activation", "relutanh") == "relutanh" else 0  # E, e
        # W, T, U (N x P), b, R (M x N), Z (M x M), D, d
        return n * n + tensor + n * p + n + m * n + m * m + excitability + readout
    if name == "gru":
        # W_ih (3N x P), W_hh (3N x N), b (3N: summed r,z biases and the input n bias), b_hn (N)
        return 3 * n * p + 3 * n * n + 3 * n + n + readout
    if name == "lstm":
        # W_ih (4N x P), W_hh (4N x N), b (4N: PyTorch's two bias vectors summed)
        return 4 * n * p + 4 * n * n + 4 * n + readout
    if name == "cornn":
        # W, W_z (N x N each), V (N x P), b (N)
        return 2 * n * n + n * p + n + readout
    if name == "hippo_legt":
        k, m = o.get("memory_order") or n, o.get("memory_size", 1)
        memory = m * (p + n + 1)  # W_fu (M x P), W_fh (M x N), b_f (M)
        hidden = n * (p + m * k + 1)  # W_hu (N x P), W_hc (N x MK), b_h (N); the gate likewise
        return memory + hidden * (2 if o.get("gate", True) else 1) + readout
    if name == "transformer":
        layers, f = o.get("n_layers", 2), o.get("d_ff") or 4 * n
        embedding = p * n + n + (o.get("max_len", 512) * n if o.get("positions") == "learned" else 0)
        attention = 3 * n * n + 3 * n + n * n + n  # W_qkv, b_qkv, W_o, b_o
        feedforward = f * n + f + n * f + n  # W_ff1, b_ff1, W_ff2, b_ff2
        norms = 4 * n  # two LayerNorms (gain, bias) per block
        final = 2 * n if o.get("norm", "pre") == "pre" else 0
        return embedding + layers * (attention + feedforward + norms) + final + readout
    raise AssertionError(name)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_param_count_matches_formula(case):
    _, name, n, options = case
    model = build(case)
    expected = expected_count(name, n, options)
    assert param_count(model) == expected
    assert sum(param_breakdown(model).values()) == expected
    assert count_for(name, n_in=N_IN, n_out=N_OUT, n_hidden=n, **options) == expected
    # the same count from the leaves eqx.partition hands to an optimiser
    params, _ = eqx.partition(model, trainable_filter(model))
    assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params)) == expected


@pytest.mark.parametrize(
    "name,options,n,expected",
    [
        ("nmrnn", dict(n_nm=5, rank=3), 100, 25 + 15 + 15 + 3 + 300 + 300 + 300 + 100 + 1),
        ("lowrank", dict(rank=3), 106, 318 + 318 + 318 + 106 + 1),
        ("vanilla", {}, 31, 961 + 93 + 31 + 1),
        ("lstm", {}, 15, 180 + 900 + 60 + 15 + 1),
        ("gru", {}, 17, 153 + 867 + 51 + 17 + 17 + 1),
        ("enmrnn", dict(n_nm=4), 128, 16384 + 4 * 16384 + 384 + 128 + 512 + 16 + 256 + 128 + 1),
        ("enmrnn", dict(n_nm=4, t_rank=2), 128, 16384 + 2 * 4 * 128 * 2 + 384 + 128 + 512 + 16 + 256 + 128 + 1),
        # HiPPO-LegT, K = N = 32, M = 1: memory 1 x 36, hidden and gate 32 x (3 + 32 + 1) each
        ("hippo_legt", {}, 32, 36 + 2 * 32 * 36 + 32 + 1),
        ("hippo_legt", dict(memory_order=8, memory_size=2, gate=False), 20, 2 * 24 + 20 * (3 + 16 + 1) + 20 + 1),
        # Transformer, D = 32, 2 pre-LN layers, F = 128: 12 D^2 + 13 D per layer, final LN, readout
        ("transformer", {}, 32, 96 + 32 + 2 * (12 * 1024 + 13 * 32) + 64 + 33),
        ("transformer", dict(n_layers=1, n_heads=4, d_ff=64, norm="post", positions="learned", max_len=100), 16,
         48 + 16 + 1600 + (4 * 256 + 2 * 16 * 64 + 64 + 9 * 16) + 17),
    ],
)
def test_paper_sizes_counts(name, options, n, expected):
    assert count_for(name, n_in=3, n_out=1, n_hidden=n, **options) == expected


def test_match_size_gives_the_papers_mwg_sizes():
    """NM-RNN paper, MWG rank 3: NM-RNN (N=100, M=5, K=3) has 1059 parameters; the matched
    baselines are LR-RNN N=106, vanilla N=31, LSTM N=15."""
    target = count_for("nmrnn", n_in=3, n_out=1, n_hidden=100, n_nm=5, rank=3)
    assert target == 1059
    assert match_size("lowrank", target, n_in=3, n_out=1, rank=3) == 106
    assert match_size("vanilla", target, n_in=3, n_out=1) == 31
    assert match_size("lstm", target, n_in=3, n_out=1) == 15


@pytest.mark.parametrize(
    "name,options",
    [("gru", {}), ("enmrnn", dict(n_nm=4)), ("enmrnn", dict(n_nm=4, t_rank=2)), ("vanilla", dict(bias=True)),
     ("hippo_legt", {}), ("hippo_legt", dict(memory_order=6, memory_size=2)), ("transformer", dict(n_heads=1))],
)
def test_match_size_is_the_smallest_size_reaching_the_target(name, options):
    target = 1059
    n = match_size(name, target, n_in=3, n_out=1, **options)
    assert count_for(name, n_in=3, n_out=1, n_hidden=n, **options) >= target
    assert count_for(name, n_in=3, n_out=1, n_hidden=n - 1, **options) < target


@pytest.mark.parametrize("options", [{}, dict(n_heads=4), dict(n_heads=3, n_layers=1, positions="learned", max_len=50)])
def test_match_size_searches_only_transformer_widths_divisible_by_the_heads(options):
    heads = options.get("n_heads", 2)
    assert MODELS["transformer"].min_hidden(**options) == heads
    assert hidden_multiple("transformer", **options) == heads
    assert hidden_multiple("vanilla") == 1
    for target in (1059, 5000, 20_000):
        n = match_size("transformer", target, n_in=3, n_out=1, **options)
        assert n % heads == 0
        assert count_for("transformer", n_in=3, n_out=1, n_hidden=n, **options) >= target
        if n > heads:
            assert count_for("transformer", n_in=3, n_out=1, n_hidden=n - heads, **options) < target
    # every multiple of the heads below max_hidden is too small: refused like any other model
    with pytest.raises(ValueError, match="no transformer with n_hidden <= 5 reaches 100000"):
        match_size("transformer", 100_000, n_in=3, n_out=1, max_hidden=5, **options)


@pytest.mark.parametrize("law", [lambda n: 3 * n * n + 2 * n + 7, lambda n: 40 * n + 3,
                                 lambda n: n**3 + 5, lambda n: 2**n, lambda n: 10 * (n // 3) + n])
def test_match_size_is_the_bisections_answer_whatever_the_count_grows_like(monkeypatch, law):
    """The quadratic guess is kept only when the counts confirm it: quadratic and linear counts
    take it, cubic, exponential and stepped ones fall back to the bisection; the answer is the
    smallest size reaching the target either way."""
    import nmrnn.models as models

    monkeypatch.setattr(models, "count_for", lambda name, *, n_in, n_out, n_hidden, **o: law(n_hidden))
    for target in [1, 5, 6, 7, 8, 12, 13, 100, 101, 999, 1000, 1001, 4097, 12_345]:
        expected = next(n for n in range(1, 5000) if law(n) >= target)
        assert match_size("vanilla", target, n_in=1, n_out=1, max_hidden=4096) == expected, target


def test_match_size_refuses_unreachable_targets():
    with pytest.raises(ValueError, match="no vanilla with n_hidden <= 8 reaches 10000"):
        match_size("vanilla", 10_000, n_in=3, n_out=1, max_hidden=8)
    with pytest.raises(ValueError, match="target must be a positive integer, got 0"):
        match_size("vanilla", 0, n_in=3, n_out=1)


# ------------------------------------------------------------------------------------------------
# trainable_filter: groups and buffers
# ------------------------------------------------------------------------------------------------


def expected_groups(name: str, o: dict) -> dict[str, set[str]]:
    """The parameter groups each model documents, with the fields an option switches off removed."""
    if name == "vanilla":
        return {"recurrent": {"W"} | ({"b"} if o.get("bias") else set()), "input": {"B"}, "readout": {"C", "d"}}
    if name == "lowrank":
        bias = {"b"} if o.get("bias") else set()
        return {"lowrank": {"L", "R"}, "recurrent": {"L", "R"} | bias, "input": {"B"}, "readout": {"C", "d"}}
    if name == "nmrnn":
        nm = {"W_z", "B_z", "A_z", "b_z"} | ({"B_zx"} if o.get("feedback") else set())
        low = {"L", "B_x", "C", "d"} | (set() if o.get("symmetric") else {"R"})
        return {"nm": nm, "lowrank": low, "readout": {"C", "d"}}
    if name == "enmrnn":
        relutanh = o.get("activation", "relutanh") == "relutanh"
        tensor = {"T"} if o.get("t_rank") is None else {"T_left", "T_right"}
        return {
            "neurons": {"W", "U", "b"} | ({"E", "e"} if relutanh else set()),
            "nm": tensor | {"R", "Z"},
            "readout": {"D", "d"},
        }
    if name == "gru":
        return {"recurrent": {"W_ih", "W_hh", "b", "b_hn"}, "readout": {"C", "d"}}
    if name == "lstm":
        return {"recurrent": {"W_ih", "W_hh", "b"}, "input": {"W_ih"}, "readout": {"C", "d"}}
    if name == "cornn":
        return {"recurrent": {"W", "W_z", "b"}, "input": {"V"}, "readout": {"C", "d"}}
    if name == "hippo_legt":
        gate = o.get("gate", True)
        return {
            "memory": {"W_fu", "W_fh", "b_f"},
            "recurrent": {"W_fh", "b_f", "W_hc", "b_h"} | ({"W_gc", "b_g"} if gate else set()),
            "input": {"W_fu", "W_hu"} | ({"W_gu"} if gate else set()),
            "readout": {"C", "d"},
        }
    if name == "transformer":
        return {
            "embedding": {"W_in", "b_in"} | ({"pos"} if o.get("positions") == "learned" else set()),
            "attention": {"W_qkv", "b_qkv", "W_o", "b_o"},
            "feedforward": {"W_ff1", "b_ff1", "W_ff2", "b_ff2"},
            "norm": {"ln1_g", "ln1_b", "ln2_g", "ln2_b"} | ({"lnf_g", "lnf_b"} if o.get("norm", "pre") == "pre" else set()),
            "readout": {"C", "d"},
        }
    raise AssertionError(name)


def _selected(model, spec) -> set[str]:
    import dataclasses

    dynamic = [f.name for f in dataclasses.fields(model) if not f.metadata.get("static", False)]
    return {name for name in dynamic if getattr(spec, name) is True}


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_trainable_filter_groups_select_the_documented_fields(case):
    _, name, _, options = case
    model = build(case)
    groups = expected_groups(name, options)
    assert set(group_names(model)) == {"all", *groups}
    all_fields = set().union(*groups.values())
    assert _selected(model, trainable_filter(model)) == all_fields
    for group, fields in groups.items():
        spec = trainable_filter(model, group)
        assert _selected(model, spec) == fields, group
        assert param_count(model, group) == sum(int(np.prod(getattr(model, f).shape)) for f in fields)
        # the spec partitions the model: chosen leaves on one side, everything else on the other
        params, static = eqx.partition(model, spec)
        assert {f for f in fields if getattr(params, f) is not None} == fields
        assert all(getattr(static, f) is None for f in fields)
    # buffers exist as arrays but are never trainable and never counted
    for buffer in type(model).buffers:
        for group in group_names(model):
            assert getattr(trainable_filter(model, group), buffer) is not True, (buffer, group)


def test_nmrnn_groups_split_the_model_in_two():
    case = CASES[CASE_IDS.index("nmrnn-feedback")]
    model = build(case)
    nm, low = (_selected(model, trainable_filter(model, g)) for g in ("nm", "lowrank"))
    assert nm == {"W_z", "B_z", "A_z", "b_z", "B_zx"}
    assert low == {"L", "R", "B_x", "C", "d"}
    assert not nm & low
    assert param_count(model, "nm") + param_count(model, "lowrank") == param_count(model)


@pytest.mark.parametrize(
    "case_id,buffers",
    [
        ("vanilla-dale-mask", ("sign", "mask")),
        ("enmrnn-dale-celltypes-tanh-nmrelu", ("sign", "release_mask")),
    ],
)
def test_buffers_are_arrays_but_not_parameters(case_id, buffers):
    case = CASES[CASE_IDS.index(case_id)]
    _, name, n, options = case
    model = build(case)
    for buffer in buffers:
        assert eqx.is_inexact_array(getattr(model, buffer)), buffer
    # the buffers have the values the options ask for
    exc = options.get("exc_fraction", 0.8)
    n_exc = int(round(exc * n))
    np.testing.assert_array_equal(np.asarray(model.sign), [1.0] * n_exc + [-1.0] * (n - n_exc))
    if "mask" in buffers:
        np.testing.assert_array_equal(np.asarray(model.mask), options["mask"])
    if "release_mask" in buffers:
        m = options["n_nm"]
        expected = np.array([[1.0 if i % m == k else 0.0 for i in range(n)] for k in range(m)])
        np.testing.assert_array_equal(np.asarray(model.release_mask), expected)
    plain = {k: v for k, v in options.items() if k not in ("dale", "mask", "cell_types", "exc_fraction")}
    assert param_count(model) == count_for(name, n_in=N_IN, n_out=N_OUT, n_hidden=n, **plain)


def test_unknown_group_is_refused_with_the_valid_ones():
    model = build(CASES[CASE_IDS.index("nmrnn")])
    with pytest.raises(ValueError, match=r"unknown parameter group 'input' for NMRNN; valid groups: all, nm, lowrank, readout"):
        trainable_filter(model, "input")
