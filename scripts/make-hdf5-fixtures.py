#!/usr/bin/python3
"""Writes the small HDF5 test fixtures in tests/data/hdf5/ (run from anywhere; needs Debian's python3-h5py).

Every numeric dataset holds pattern(shape, seed): value i (row-major) = ((7 * i + seed) % 23 - 11) / 8,
exact in float16, float32 and float64; integer datasets hold ((7 * i + seed) % 23 - 11) (unsigned: % 23).
tests/core/tst_hdf5.cpp recomputes the same values, so the tests check decoded data, not just shapes.
The tests never need h5py: the generated files are committed.
"""
import json
import os
import sys

import h5py
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "hdf5")


def ints(shape, seed):
    n = int(np.prod(shape)) if len(shape) else 1
    return ((7 * np.arange(n, dtype=np.int64) + seed) % 23 - 11).reshape(shape)


def pattern(shape, seed, dtype=np.float32):
    return (ints(shape, seed) / 8.0).astype(dtype)


def keras_layers():
    # (layer name, [(weight name, shape)]) in Keras order: not alphabetical, so order bugs show.
    return [
        ("conv2d", [("conv2d/kernel:0", (3, 3, 1, 2)), ("conv2d/bias:0", (2,))]),
        ("batch_normalization", [("batch_normalization/gamma:0", (2,)), ("batch_normalization/beta:0", (2,)),
                                 ("batch_normalization/moving_mean:0", (2,)),
                                 ("batch_normalization/moving_variance:0", (2,))]),
        ("flatten", []),
        ("dense", [("dense/kernel:0", (8, 3)), ("dense/bias:0", (3,))]),
    ]


def write_layers(group, layers, seed0):
    seed = seed0
    for layer, weights in layers:
        g = group.create_group(layer)
        if weights:
            g.attrs["weight_names"] = np.array([w.encode() for w, _ in weights], dtype="S")
        else:
            g.attrs["weight_names"] = np.array([])  # what Keras writes for a layer without weights
        for w, shape in weights:
            g.create_dataset(w, data=pattern(shape, seed))
            seed += 1


def keras_model():
    config = {"class_name": "Sequential", "config": {"name": "tiny_convnet", "layers": [
        {"class_name": "Conv2D", "config": {"name": "conv2d", "filters": 2, "kernel_size": [3, 3]}},
        {"class_name": "BatchNormalization", "config": {"name": "batch_normalization"}},
        {"class_name": "Flatten", "config": {"name": "flatten"}},
        {"class_name": "Dense", "config": {"name": "dense", "units": 3}}]}}
    with h5py.File(os.path.join(OUT, "keras_model.h5"), "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        mw = f.create_group("model_weights")
        layers = keras_layers()
        mw.attrs["layer_names"] = np.array([name.encode() for name, _ in layers], dtype="S")
        mw.attrs["backend"] = "tensorflow"
        mw.attrs["keras_version"] = "2.15.0"
        write_layers(mw, layers, 1)
        opt = f.create_group("optimizer_weights")
        opt.create_dataset("training/Adam/iter:0", data=np.int64(7))


def keras_split():
    # save_weights() layout (layers at the root) with layer_names and one weight_names split into
    # numbered chunks, as Keras does when an attribute would exceed HDF5's 64 KB header limit.
    layers = [
        ("dense", [("dense/kernel:0", (4, 5)), ("dense/bias:0", (5,))]),
        ("dense_1", [("dense_1/kernel:0", (5, 5)), ("dense_1/bias:0", (5,))]),
        ("dense_2", [("dense_2/kernel:0", (5, 2)), ("dense_2/bias:0", (2,))]),
    ]
    with h5py.File(os.path.join(OUT, "keras_split.h5"), "w") as f:
        f.attrs["layer_names0"] = np.array([b"dense_2", b"dense"], dtype="S")
        f.attrs["layer_names1"] = np.array([b"dense_1"], dtype="S")
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.4.0"
        seed = 100
        for layer, weights in layers:
            g = f.create_group(layer)
            names = [w.encode() for w, _ in weights]
            if layer == "dense_1":
                g.attrs["weight_names0"] = np.array(names[:1], dtype="S")
                g.attrs["weight_names1"] = np.array(names[1:], dtype="S")
            else:
                g.attrs["weight_names"] = np.array(names, dtype="S")
            for w, shape in weights:
                g.create_dataset(w, data=pattern(shape, seed))
                seed += 1


def plain():
    with h5py.File(os.path.join(OUT, "plain.h5"), "w") as f:
        f.attrs["description"] = "quantscope plain HDF5 fixture"
        f.attrs["answer"] = np.int32(42)
        c = f.create_group("a/b/c")
        c.create_dataset("ints", data=ints((2, 3), 1).astype(np.int32))
        f["a"].create_dataset("half", data=pattern((4,), 2, np.float16))
        f.create_dataset("u8", data=(np.arange(6) * 40 % 256).astype(np.uint8).reshape(2, 3))
        f.create_dataset("i8", data=ints((5,), 3).astype(np.int8))
        f.create_dataset("i64", data=ints((3,), 4).astype(np.int64))
        f.create_dataset("f64", data=pattern((2, 2), 5, np.float64))
        f.create_dataset("flags", data=np.array([True, False, True]))
        f.create_dataset("scalar", data=np.float32(2.5))
        f.create_dataset("compressed", data=pattern((10, 7), 6), chunks=(4, 4), compression="gzip", shuffle=True)
        f.create_dataset("chunked3d", data=pattern((3, 4, 5), 13), chunks=(2, 3, 2), compression="gzip")
        f.create_dataset("big_endian", data=pattern((5,), 7).astype(">f4"))
        f.create_dataset("big_endian_i16", data=ints((4,), 8).astype(">i2"))
        f.create_dataset("names", data=[b"alpha", b"beta"])
        # Compact layout: the data lives in the object header.
        space = h5py.h5s.create_simple((3,))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        ds = h5py.h5d.create(f.id, b"compact", h5py.h5t.IEEE_F32LE, space, dcpl)
        ds.write(h5py.h5s.ALL, h5py.h5s.ALL, pattern((3,), 9))
        f["alias"] = h5py.SoftLink("/a/half")
        f["outside"] = h5py.ExternalLink("keras_model.h5", "/model_weights")


def external_storage():
    path = os.path.join(OUT, "external_storage.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("inside", data=pattern((4,), 10))
        # Raw data in a separate file: the loader must report it and never read that file.
        f.create_dataset("outside", shape=(4,), dtype="f4", external=[("external_storage.bin", 0, 16)])
        f["outside"][...] = pattern((4,), 11)
        # A virtual dataset: its data is assembled from other datasets (here in this file); never read.
        layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
        layout[:] = h5py.VirtualSource(".", "inside", shape=(4,))
        f.create_virtual_dataset("virtual", layout)


def userblock():
    # A 512-byte user block before the HDF5 superblock: offsets must still be absolute.
    with h5py.File(os.path.join(OUT, "userblock.h5"), "w", userblock_size=512) as f:
        f.create_dataset("w", data=pattern((3, 4), 12))
    with open(os.path.join(OUT, "userblock.h5"), "r+b") as f:
        f.write(b"quantscope user block\n")


def corrupt_chunk():
    # Two gzip-compressed chunks, the second with its deflate stream overwritten: the first dataset and
    # the intact one must load, the damaged one must be reported, not crash anything.
    path = os.path.join(OUT, "corrupt_chunk.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("good", data=pattern((8,), 14))
        ds = f.create_dataset("damaged", data=pattern((8,), 15), chunks=(4,), compression="gzip")
        info = ds.id.get_chunk_info(1)
        where, size = info.byte_offset, info.size
    with open(path, "r+b") as f:
        f.seek(where)
        f.write(bytes(0xA5 for _ in range(size)))


def bad_files():
    with open(os.path.join(OUT, "not_hdf5.h5"), "wb") as f:
        f.write(b"This is not an HDF5 file, only text with an .h5 name.\n" * 4)
    with open(os.path.join(OUT, "plain.h5"), "rb") as f:
        data = f.read()
    with open(os.path.join(OUT, "truncated.h5"), "wb") as f:
        f.write(data[: len(data) // 3])


def main():
    os.makedirs(OUT, exist_ok=True)
    os.chdir(OUT)  # external storage paths are relative to the working directory
    keras_model()
    keras_split()
    plain()
    external_storage()
    userblock()
    corrupt_chunk()
    bad_files()
    print("wrote", sorted(os.listdir(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
