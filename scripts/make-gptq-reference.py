#!/usr/bin/python3
"""Writes tests/data/reference/gptq-reference-small.h5 from ../shared/reference/gptq-reference.h5 (needs Debian's
python3-h5py; run from anywhere: scripts/make-gptq-reference.py [SOURCE.h5]).

The source holds the original GPTQ implementation's results (IST-DASLab/gptq fasterquant, blocksize 128,
percdamp 0.01, float32 on CPU) for four real stories260K layers and a synthetic 256 x 512 layer with outlier
activations, for five configs. The copy keeps what tests/core/tst_gptq.cpp needs, gzip-compressed:
- per case: W and H_upper, the upper triangle of H row by row (H = 2/n X^T X before dampening, symmetric;
  the calibration inputs X are left out);
- per config: Q (GPTQ's dequantized result), Q_rtn (round-to-nearest), and a float64 dataset `ref` =
  [bits, groupsize (-1 = per channel), sym, actorder, gptq_loss, proxy_err, proxy_err_rtn] (the source's
  attributes, which are copied too).
GPTQ quantizes every output row independently given H, so a subset of rows is an exact reference for those
rows: the synthetic case keeps its first SYNTHETIC_ROWS rows, and its proxy_err / proxy_err_rtn in `ref` are
recomputed here in float64 as trace((W-Q) H (W-Q)^T) over those rows (gptq_loss stays the whole layer's, so the
test does not compare it for that case). For the full cases the recomputed values are checked against the
source's attributes.
"""
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "reference", "gptq-reference.h5")
OUT = os.path.join(HERE, "..", "tests", "data", "reference", "gptq-reference-small.h5")
SYNTHETIC_ROWS = 32


def proxy(w, q, h):
    d = w.astype(np.float64) - q.astype(np.float64)
    return float(np.einsum("ij,jk,ik->", d, h.astype(np.float64), d))


def main():
    src = h5py.File(SRC, "r")
    with h5py.File(OUT + ".tmp", "w") as dst:
        dst.attrs["description"] = (
            "Reduced copy of gptq-reference.h5 made by scripts/make-gptq-reference.py: W, H_upper (upper triangle of H, row by row), per config Q, Q_rtn "
            "and ref = [bits, groupsize, sym, actorder, gptq_loss, proxy_err, proxy_err_rtn]; the synthetic case "
            f"keeps its first {SYNTHETIC_ROWS} rows and its proxy errors are recomputed over them. Source: "
            + src.attrs["description"])
        for case in src:
            g = src[case]
            rows = SYNTHETIC_ROWS if case.startswith("synthetic") else g["W"].shape[0]
            w = g["W"][:rows]
            h = g["H"][...]
            out = dst.create_group(case)
            opts = dict(compression="gzip", compression_opts=9, shuffle=True)
            out.create_dataset("W", data=w, **opts)
            out.create_dataset("H_upper", data=h[np.triu_indices(h.shape[0])], **opts)
            for cfg in g:
                if not isinstance(g[cfg], h5py.Group):
                    continue
                a = g[cfg].attrs
                q = g[cfg]["Q"][:rows]
                qr = g[cfg]["Q_rtn"][:rows]
                pe, per = proxy(w, q, h), proxy(w, qr, h)
                if rows == g["W"].shape[0]:
                    assert abs(pe / a["proxy_err"] - 1) < 1e-6 and abs(per / a["proxy_err_rtn"] - 1) < 1e-6, case
                c = out.create_group(cfg)
                for k, v in a.items():
                    c.attrs[k] = v
                c.create_dataset("Q", data=q, **opts)
                c.create_dataset("Q_rtn", data=qr, **opts)
                c.create_dataset("ref", data=np.array([a["bits"], a["groupsize"], float(a["sym"]),
                                                       float(a["actorder"]), a["gptq_loss"], pe, per],
                                                      dtype=np.float64))
    os.replace(OUT + ".tmp", OUT)
    print(OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
