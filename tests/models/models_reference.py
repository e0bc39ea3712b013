"""Plain NumPy (float64) loops of every model's equations, written from SPEC.md section 1.

Nothing here calls a model method: the reference reads the raw parameter arrays of a model, takes
the configuration from the test case's options (with the constructor defaults below where an
option is not given), and derives everything else itself -- Dale signs from ``exc_fraction``,
cell-type release masks, QR-orthonormalised factors, the factorised modulation tensor.

Every function runs one trial: ``u (T, P) -> (outputs (T, O), states dict name -> (T, size))``.
"""

from __future__ import annotations

import numpy as np

# Constructor defaults (documented in the model modules' signatures).
LEAKY_DEFAULTS = dict(tau=10.0, dt=1.0, activation="tanh", bias=False, dale=False,
                      exc_fraction=0.8, mask=None, readout_from="state")
LOWRANK_DEFAULTS = dict(tau=10.0, dt=1.0, activation="tanh", bias=False, scale_by_n=True,
                        orthonormalize=False, readout_from="state")
NMRNN_DEFAULTS = dict(tau_x=10.0, tau_z=100.0, dt=1.0, activation="tanh", x_activation=None, linearized=False,
                      symmetric=False, orthonormalize=None, feedback=False, scale_by_n=True,
                      x_inputs=None, z_inputs=None)
ENMRNN_DEFAULTS = dict(tau_r=10.0, tau_n=10.0, dt=1.0, activation="relutanh",
                       nm_activation="sigmoid", dale=False, exc_fraction=0.8, cell_types=False)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lif_rate(current, k=1.0, threshold=1.0, v_reset=0.0):
    """f(I) = -k / ln|(k T - I) / (k V_reset - I)| above rheobase k T, else 0 (paper 000, eq. 9)."""
    current = np.asarray(current, dtype=np.float64)
    out = np.zeros_like(current)
    above = current > k * threshold
    i = current[above]
    out[above] = -k / np.log(np.abs((k * threshold - i) / (k * v_reset - i)))
    return out


ACT = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "identity": lambda x: x,
    "sigmoid": _sigmoid,
    "softplus": lambda x: np.logaddexp(0.0, x),
    "relutanh": lambda x: np.maximum(np.tanh(x), 0.0),
    "lif": lif_rate,
}


def _arr(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _opts(defaults, options):
    out = dict(defaults)
    out.update(options)
    return out


def dale_signs(n: int, exc_fraction: float) -> np.ndarray:
    """+1 for the first round(exc_fraction * n) presynaptic neurons, -1 for the rest."""
    n_exc = int(round(exc_fraction * n))
    return np.array([1.0 if i < n_exc else -1.0 for i in range(n)])


def orthonormalize(L: np.ndarray) -> np.ndarray:
    """sqrt(N) Q from a QR decomposition with a positive diagonal in R: columns span L, Q^T Q = I."""
    n = L.shape[0]
    q, r = np.linalg.qr(L)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return np.sqrt(n) * q * signs[None, :]


def leaky(model, options, u):
    """M1: x_t = (1-a) x_{t-1} + a (W phi(x_{t-1}) + B u_t + b), y = C x + d (or C phi(x) + d)."""
    o = _opts(LEAKY_DEFAULTS, options)
    W, B, C, d, b = (_arr(getattr(model, f)) for f in ("W", "B", "C", "d", "b"))
    n = W.shape[0]
    if o["dale"]:
        W = np.abs(W) * dale_signs(n, o["exc_fraction"])[None, :]
    if o["mask"] is not None:
        W = W * np.asarray(o["mask"], dtype=np.float64)
    if not o["bias"]:
        assert b is None
        b = np.zeros(n)
    return _leaky_loop(W, B, b, C, d, o, u)


def _leaky_loop(W, B, b, C, d, o, u):
    """The M1 recurrence for a given full W (shared by M1 and M2, which differ only in W)."""
    phi = ACT[o["activation"]]
    a = o["dt"] / o["tau"]
    x = np.zeros(W.shape[0])
    xs, ys = [], []
    for t in range(u.shape[0]):
        x = (1 - a) * x + a * (W @ phi(x) + B @ u[t] + b)
        xs.append(x)
        h = x if o["readout_from"] == "state" else phi(x)
        ys.append(C @ h + d)
    return np.array(ys), {"x": np.array(xs)}


def lowrank(model, options, u):
    """M2: M1 with W = L R^T (/ N), L optionally orthonormalised."""
    o = _opts(LOWRANK_DEFAULTS, options)
    L, R, B, C, d, b = (_arr(getattr(model, f)) for f in ("L", "R", "B", "C", "d", "b"))
    n = L.shape[0]
    if o["orthonormalize"]:
        L = orthonormalize(L)
    W = L @ R.T
    if o["scale_by_n"]:
        W = W / n
    if not o["bias"]:
        assert b is None
        b = np.zeros(n)
    return _leaky_loop(W, B, b, C, d, o, u)


def nmrnn(model, options, u):
    """M3 (NM-RNN), z updated first and its new gains scaling the x update (reference code order):

    z_t = (1 - a_z) z + a_z (W_z phi(z) + B_z u^z_t [+ B_zx x_{t-1}])
    s_t = sigmoid(A_z z_t + b_z)
    x_t = (1 - a_x) x + a_x (L diag(s_t) R^T phi_x(x_{t-1}) (/ N) + B_x u^x_t),  y_t = C x_t + d
    """
    o = _opts(NMRNN_DEFAULTS, options)
    f = {k: _arr(getattr(model, k)) for k in ("W_z", "B_z", "A_z", "b_z", "B_zx", "L", "R", "B_x", "C", "d")}
    n = f["L"].shape[0]
    ortho = o["symmetric"] if o["orthonormalize"] is None else o["orthonormalize"]
    L = orthonormalize(f["L"]) if ortho else f["L"]
    if o["symmetric"]:
        assert f["R"] is None
        R = L
    else:
        R = f["R"]
    if not o["feedback"]:
        assert f["B_zx"] is None
    scale = 1.0 / n if o["scale_by_n"] else 1.0
    phi = ACT[o["activation"]]
    if o["linearized"]:
        phi_x = ACT["identity"]
    else:
        phi_x = phi if o["x_activation"] is None else ACT[o["x_activation"]]
    tau_x = o["dt"] if o["linearized"] else o["tau_x"]
    a_x, a_z = o["dt"] / tau_x, o["dt"] / o["tau_z"]
    ux = u if o["x_inputs"] is None else u[:, list(o["x_inputs"])]
    uz = u if o["z_inputs"] is None else u[:, list(o["z_inputs"])]
    x, z = np.zeros(n), np.zeros(f["W_z"].shape[0])
    xs, zs, ys = [], [], []
    for t in range(u.shape[0]):
        z_drive = f["W_z"] @ phi(z) + f["B_z"] @ uz[t]
        if o["feedback"]:
            z_drive = z_drive + f["B_zx"] @ x
        z = (1 - a_z) * z + a_z * z_drive
        s = _sigmoid(f["A_z"] @ z + f["b_z"])
        x = (1 - a_x) * x + a_x * (scale * L @ np.diag(s) @ R.T @ phi_x(x) + f["B_x"] @ ux[t])
        xs.append(x)
        zs.append(z)
        ys.append(f["C"] @ x + f["d"])
    return np.array(ys), {"x": np.array(xs), "z": np.array(zs)}


def enmrnn(model, options, u):
    """M4 (e-nmRNN), Euler step of both equations from the state at t-1:

    r_t = r + a_r (-r + phi(W r + sum_k n_k T_k r + U u_t + b))
    n_t = n + a_n (-n + phi_n(R r + Z n)),     y_t = D r_t + d
    """
    o = _opts(ENMRNN_DEFAULTS, options)
    f = {k: _arr(getattr(model, k)) for k in ("W", "T", "T_left", "T_right", "U", "b", "R", "Z", "D", "d", "E", "e")}
    n_neurons, n_nm = f["W"].shape[0], f["Z"].shape[0]
    W = f["W"]
    if o["dale"]:
        W = np.abs(W) * dale_signs(n_neurons, o["exc_fraction"])[None, :]
    if f["T"] is not None:
        T = f["T"]
    else:
        T = np.stack([f["T_left"][k] @ f["T_right"][k].T for k in range(n_nm)])
    R = f["R"]
    if o["cell_types"]:
        release = np.zeros((n_nm, n_neurons))
        for i in range(n_neurons):
            release[i % n_nm, i] = 1.0
        R = R * release
    if o["activation"] == "relutanh":
        E, e = f["E"], f["e"]

        def phi(x):
            return E * np.maximum(np.tanh(x) + e, 0.0)
    else:
        assert f["E"] is None and f["e"] is None
        phi = ACT[o["activation"]]
    phi_n = ACT[o["nm_activation"]]
    a_r, a_n = o["dt"] / o["tau_r"], o["dt"] / o["tau_n"]
    r, c = np.zeros(n_neurons), np.zeros(n_nm)
    rs, cs, ys = [], [], []
    for t in range(u.shape[0]):
        w_eff = W + sum(c[k] * T[k] for k in range(n_nm))
        r_new = r + a_r * (-r + phi(w_eff @ r + f["U"] @ u[t] + f["b"]))
        c_new = c + a_n * (-c + phi_n(R @ r + f["Z"] @ c))
        r, c = r_new, c_new
        rs.append(r)
        cs.append(c)
        ys.append(f["D"] @ r + f["d"])
    return np.array(ys), {"r": np.array(rs), "n": np.array(cs)}


def gru(model, options, u):
    """PyTorch GRU equations (gate order r, z, n) with separate b_hn, and a linear readout."""
    W_ih, W_hh, b, b_hn, C, d = (_arr(getattr(model, k)) for k in ("W_ih", "W_hh", "b", "b_hn", "C", "d"))
    n = W_hh.shape[1]
    h = np.zeros(n)
    hs, ys = [], []
    for t in range(u.shape[0]):
        gi = W_ih @ u[t] + b
        gh = W_hh @ h
        r = _sigmoid(gi[:n] + gh[:n])
        z = _sigmoid(gi[n : 2 * n] + gh[n : 2 * n])
        cand = np.tanh(gi[2 * n :] + r * (gh[2 * n :] + b_hn))
        h = (1 - z) * cand + z * h
        hs.append(h)
        ys.append(C @ h + d)
    return np.array(ys), {"h": np.array(hs)}


def lstm(model, options, u):
    """PyTorch LSTM equations (gate order i, f, g, o), one summed bias, and a linear readout."""
    W_ih, W_hh, b, C, d = (_arr(getattr(model, k)) for k in ("W_ih", "W_hh", "b", "C", "d"))
    n = W_hh.shape[1]
    h, c = np.zeros(n), np.zeros(n)
    hs, cs, ys = [], [], []
    for t in range(u.shape[0]):
        g = W_ih @ u[t] + W_hh @ h + b
        i, f, gg, o = g[:n], g[n : 2 * n], g[2 * n : 3 * n], g[3 * n :]
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
        h = _sigmoid(o) * np.tanh(c)
        hs.append(h)
        cs.append(c)
        ys.append(C @ h + d)
    return np.array(ys), {"h": np.array(hs), "c": np.array(cs)}


def cornn(model, options, u):
    """coRNN (Rusch & Mishra 2021): the authors' explicit cell, or the paper's IMEX eq. 3."""
    W, W_z, V, b, C, d = (_arr(getattr(model, k)) for k in ("W", "W_z", "V", "b", "C", "d"))
    o = _opts(dict(dt=0.042, gamma=2.7, epsilon=4.7, scheme="code", init_value=0.0), options)
    dt, gamma, eps = o["dt"], o["gamma"], o["epsilon"]
    y = np.full(W.shape[0], o["init_value"])
    z = np.full(W.shape[0], o["init_value"])
    ys_, zs, out = [], [], []
    for t in range(u.shape[0]):
        drive = np.tanh(W @ y + W_z @ z + V @ u[t] + b)
        if o["scheme"] == "code":
            z = z + dt * (drive - gamma * y - eps * z)
        else:
            z = (z + dt * (drive - gamma * y)) / (1 + dt * eps)
        y = y + dt * z
        ys_.append(y)
        zs.append(z)
        out.append(C @ y + d)
    return np.array(out), {"y": np.array(ys_), "z": np.array(zs)}


HIPPO_DEFAULTS = dict(memory_order=None, memory_size=1, theta=100.0, dt=1.0, transition="legt",
                      discretization="bilinear", gate=True, init_value=0.0)


def legendre_memory_matrices(order: int, transition: str):
    """Continuous (A, B) of the Legendre memory of window 1, entry by entry.

    HiPPO-LegT (Gu et al. 2020, the authors' normalisation): A_nk = -sqrt(2n+1) sqrt(2k+1) for
    n >= k, -(-1)^(n-k) sqrt(2n+1) sqrt(2k+1) for n < k; B_n = sqrt(2n+1).
    LMU (Voelker et al. 2019, eq. 2): A_nk = (2n+1) (-1)^(n-k+1) for n >= k, -(2n+1) for n < k;
    B_n = (2n+1) (-1)^n.
    """
    A, B = np.zeros((order, order)), np.zeros(order)
    for n in range(order):
        B[n] = np.sqrt(2 * n + 1) if transition == "legt" else (2 * n + 1) * (-1) ** n
        for k in range(order):
            if transition == "legt":
                sign = 1.0 if n >= k else (-1.0) ** (n - k)
                A[n, k] = -sign * np.sqrt(2 * n + 1) * np.sqrt(2 * k + 1)
            else:
                A[n, k] = (2 * n + 1) * ((-1.0) ** (n - k + 1) if n >= k else -1.0)
    return A, B


def hippo_legt(model, options, u):
    """HiPPO-LegT cell (the HiPPO authors' MemoryCell + LTICell wiring), memory discretised by
    scipy.signal.cont2discrete from the window-theta system (A / theta, B / theta):

    f_t = W_fu u_t + W_fh h_{t-1} + b_f;  c_t[m] = A_d c_{t-1}[m] + B_d f_t[m]
    h~ = tanh(W_hu u_t + W_hc vec c_t + b_h);  g = sigmoid(W_gu u_t + W_gc vec c_t + b_g)
    h_t = (1 - g) h_{t-1} + g h~  (h_t = h~ without the gate);  y_t = C h_t + d
    """
    from scipy.signal import cont2discrete

    o = _opts(HIPPO_DEFAULTS, options)
    f = {k: _arr(getattr(model, k)) for k in ("W_fu", "W_fh", "b_f", "W_hu", "W_hc", "b_h", "W_gu", "W_gc", "b_g", "C", "d")}
    n, m = f["W_hu"].shape[0], f["W_fu"].shape[0]
    order = n if o["memory_order"] is None else o["memory_order"]
    assert m == o["memory_size"]
    A, B = legendre_memory_matrices(order, o["transition"])
    A_d, B_d, *_ = cont2discrete((A / o["theta"], B[:, None] / o["theta"], np.eye(order), np.zeros((order, 1))),
                                 dt=o["dt"], method=o["discretization"])
    B_d = B_d[:, 0]
    if not o["gate"]:
        assert f["W_gu"] is None and f["W_gc"] is None and f["b_g"] is None
    h = np.full(n, o["init_value"])
    c = np.full((m, order), o["init_value"])
    hs, cs, ys = [], [], []
    for t in range(u.shape[0]):
        drive = f["W_fu"] @ u[t] + f["W_fh"] @ h + f["b_f"]
        c = np.stack([A_d @ c[j] + B_d * drive[j] for j in range(m)])
        flat = c.reshape(-1)
        cand = np.tanh(f["W_hu"] @ u[t] + f["W_hc"] @ flat + f["b_h"])
        if o["gate"]:
            g = _sigmoid(f["W_gu"] @ u[t] + f["W_gc"] @ flat + f["b_g"])
            h = (1 - g) * h + g * cand
        else:
            h = cand
        hs.append(h)
        cs.append(flat)
        ys.append(f["C"] @ h + f["d"])
    return np.array(ys), {"h": np.array(hs), "c": np.array(cs)}


TRANSFORMER_DEFAULTS = dict(n_layers=2, n_heads=2, d_ff=None, positions="sinusoidal", max_len=512,
                            norm="pre", activation="relu")


def _layer_norm(x, g, b, eps=1e-5):
    mu = x.mean()
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean() + eps) * g + b


def _gelu(x):
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def transformer(model, options, u):
    """Causal Transformer, one step and one head at a time: step t attends to steps 0..t only.

    x_t = W_in u_t + b_in + p_t (sinusoidal p[t, 2i] = sin(t w_i), p[t, 2i+1] = cos(t w_i),
    w_i = 10000^(-2i/D); or the learned row t); pre-LN blocks x += Attn(LN1 x), x += FF(LN2 x)
    and a final LN; post-LN blocks x = LN1(x + Attn x), x = LN2(x + FF x); y_t = C h_t + d.
    """
    o = _opts(TRANSFORMER_DEFAULTS, options)
    f = {k: _arr(getattr(model, k)) for k in ("W_in", "b_in", "pos", "W_qkv", "b_qkv", "W_o", "b_o", "W_ff1", "b_ff1",
                                               "W_ff2", "b_ff2", "ln1_g", "ln1_b", "ln2_g", "ln2_b", "lnf_g", "lnf_b", "C", "d")}
    T, D, H = u.shape[0], f["W_in"].shape[0], o["n_heads"]
    dh = D // H
    act = _gelu if o["activation"] == "gelu" else ACT["relu"]
    x = np.zeros((T, D))
    for t in range(T):
        if o["positions"] == "learned":
            p = f["pos"][t]
        else:
            p = np.zeros(D)
            for j in range(D):
                w = 10000.0 ** (-(j - j % 2) / D)
                p[j] = np.sin(t * w) if j % 2 == 0 else np.cos(t * w)
        x[t] = f["W_in"] @ u[t] + f["b_in"] + p
    for l in range(o["n_layers"]):
        ln1 = lambda a, l=l: _layer_norm(a, f["ln1_g"][l], f["ln1_b"][l])  # noqa: E731
        ln2 = lambda a, l=l: _layer_norm(a, f["ln2_g"][l], f["ln2_b"][l])  # noqa: E731
        Wq, Wk, Wv = np.split(f["W_qkv"][l], 3)
        bq, bk, bv = np.split(f["b_qkv"][l], 3)

        def attend(z, Wq=Wq, Wk=Wk, Wv=Wv, bq=bq, bk=bk, bv=bv, l=l):
            out = np.zeros((T, D))
            for t in range(T):
                heads = []
                for hd in range(H):
                    sl = slice(hd * dh, (hd + 1) * dh)
                    q = Wq[sl] @ z[t] + bq[sl]
                    scores = np.array([q @ (Wk[sl] @ z[s] + bk[sl]) / np.sqrt(dh) for s in range(t + 1)])
                    w = np.exp(scores - scores.max())
                    w /= w.sum()
                    heads.append(sum(w[s] * (Wv[sl] @ z[s] + bv[sl]) for s in range(t + 1)))
                out[t] = f["W_o"][l] @ np.concatenate(heads) + f["b_o"][l]
            return out

        def ff(a, l=l):
            return f["W_ff2"][l] @ act(f["W_ff1"][l] @ a + f["b_ff1"][l]) + f["b_ff2"][l]

        if o["norm"] == "pre":
            x = x + attend(np.array([ln1(a) for a in x]))
            x = x + np.array([ff(ln2(a)) for a in x])
        else:
            x = np.array([ln1(a) for a in x + attend(x)])
            x = np.array([ln2(a + ff(a)) for a in x])
    if o["norm"] == "pre":
        h = np.array([_layer_norm(a, f["lnf_g"], f["lnf_b"]) for a in x])
    else:
        assert f["lnf_g"] is None and f["lnf_b"] is None
        h = x
    return np.array([f["C"] @ a + f["d"] for a in h]), {"h": h}


REFERENCE = {"vanilla": leaky, "lowrank": lowrank, "nmrnn": nmrnn, "enmrnn": enmrnn, "gru": gru, "lstm": lstm,
             "cornn": cornn, "hippo_legt": hippo_legt, "transformer": transformer}


def reference_simulate(name, model, options, u):
    """Run the reference over ``u (T, P)`` or ``(B, T, P)``; returns (outputs, states) likewise."""
    u = np.asarray(u, dtype=np.float64)
    fn = REFERENCE[name]
    if u.ndim == 2:
        return fn(model, options, u)
    runs = [fn(model, options, trial) for trial in u]
    outputs = np.stack([r[0] for r in runs])
    states = {k: np.stack([r[1][k] for r in runs]) for k in runs[0][1]}
    return outputs, states
