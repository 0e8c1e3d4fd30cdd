"""Random layer lists for the host tests (small, so every test stays fast)."""

from __future__ import annotations

FORMATS = ("dense", "bitmap", "block", "nm")
ACTS = ("none", "relu", "gelu", "sigmoid", "tanh", "identity")


def _fmt_fields(rng, fmt: str) -> dict:
    if fmt == "nm":
        m = int(rng.choice([2, 4, 8]))
        return {"format": "nm", "nm": f"{int(rng.integers(1, m + 1))}:{m}"}
    d = {"format": fmt, "density": float(rng.choice([0.0, 0.2, 0.5, 1.0]))}
    if fmt == "dense" and rng.random() < 0.5:
        del d["density"]
    return d


def random_network(rng, *, n_layers: int = 3, conv: bool | None = None, lut: bool | None = None,
                   formats=FORMATS) -> dict:
    """A chain of matmul / conv2d layers with random shapes, formats and activations.

    ``conv``: True -> start with an image and only conv2d layers up to a final matmul; False ->
    matmul only; None -> mixed.  ``lut``: force activations on (True) or off (False).
    """
    if conv is False:
        shape = [int(rng.integers(1, 20)), int(rng.integers(1, 6))]
    else:
        shape = [int(rng.integers(1, 4)), int(rng.integers(3, 9)), int(rng.integers(3, 9))]
    layers, image = [], len(shape) == 3
    for i in range(n_layers):
        last = i == n_layers - 1
        op = "conv2d" if image and (conv or (conv is None and rng.random() < 0.6)) \
            and not (conv and last) else "matmul"
        layer = {"name": f"l{i}", "op": op, **_fmt_fields(rng, formats[int(rng.integers(
            len(formats)))])}
        if op == "conv2d":
            if not image:
                raise AssertionError("unreachable")
            layer.update(out_channels=int(rng.integers(1, 6)), kernel=int(rng.choice([1, 2, 3])),
                         padding=int(rng.integers(0, 2)), stride=int(rng.choice([1, 1, 2])))
            if rng.random() < 0.4:  # per-axis geometry
                layer.update(kernel=[int(v) for v in rng.integers(1, 4, 2)],
                             padding=[int(v) for v in rng.integers(0, 2, 2)],
                             stride=[int(v) for v in rng.integers(1, 3, 2)])
        else:
            layer["out_features"] = int(rng.integers(1, 24))
            if image:
                layer["flatten"] = bool(rng.random() < 0.5)
        act = str(rng.choice(ACTS[1:] if lut else ACTS[:1] if lut is False else ACTS))
        layer["activation"] = act
        if lut is None and rng.random() < 0.3:
            layer["bias"] = False
        if last and lut is None and rng.random() < 0.25:
            layer.update(requant=False, activation="none")
        layers.append(layer)
        image = op == "conv2d"
    return {"name": "rand", "seed": int(rng.integers(1 << 30)),
            "input": {"shape": shape, "density": float(rng.choice([1.0, 0.6]))},
            "layers": layers}


def valid_network(rng, **kwargs):
    """`random_network` until the shapes chain (a kernel may not fit a small image)."""
    from sparsemac.host import NetworkError, network_from_dict

    for _ in range(100):
        d = random_network(rng, **kwargs)
        try:
            return d, network_from_dict(d)
        except NetworkError:
            continue
    raise AssertionError("no valid random network in 100 tries")


POOLS = ("maxpool2d", "avgpool2d", "global_avgpool")


def random_pool_network(rng, *, hw_limits: bool = True) -> dict:
    """conv2d -> pool -> (conv2d -> pool) -> matmul with random pools: max and average pools
    of random kernel, stride and padding (``hw_limits``: within the hardware's 15; an average
    pool with padding counts it or not, at random: the hardware runs both), or a global
    average pool."""
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(4, 13)), int(rng.integers(4, 13))
    shape = [c, h, w]
    layers = []
    for i in range(int(rng.integers(1, 3))):
        layers.append({"name": f"c{i}", "op": "conv2d", "out_channels": int(rng.integers(1, 7)),
                       "kernel": 3, "padding": 1,
                       "activation": str(rng.choice(["relu", "none", "gelu"])),
                       **_fmt_fields(rng, FORMATS[int(rng.integers(len(FORMATS)))])})
        op = POOLS[int(rng.integers(len(POOLS)))] if i else POOLS[int(rng.integers(2))]
        pool = {"name": f"p{i}", "op": op}
        if op != "global_avgpool":
            kh, kw = int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(w, 4) + 1))
            ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
            sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
            pool.update(kernel=[kh, kw], stride=[sh, sw], padding=[ph, pw])
            if op == "avgpool2d":
                pool["count_include_pad"] = bool(rng.random() < 0.5)
            h, w = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        else:
            h = w = 1
        layers.append(pool)
        if h < 3 or w < 3:
            break
    layers.append({"name": "fc", "op": "matmul", "out_features": int(rng.integers(2, 11))})
    return {"name": "pools", "seed": int(rng.integers(1 << 30)),
            "input": {"shape": shape},
            "layers": layers}
