#pragma once
#include "core/model/model.h"

namespace qs {
class JobControl;

// Knobs for loading HDF5; the defaults suit the application, tests tighten them.
struct Hdf5Options {
    std::string probe;               // quantscope-h5probe to run; empty: QUANTSCOPE_H5PROBE, beside the
                                     // executable, install path, build tree (in that order)
    int inactivityTimeoutMs = 20000; // a probe without progress for this long is treated as hung and killed
    uint64_t memoryLimitBytes = 2ull << 30; // at most h5::kProbeMemoryLimitBytes: the probe caps itself there
    std::string decodeDir; // where decoded datasets are written; empty: QDir::tempPath() (TMPDIR)
};

// Keras .h5 or plain HDF5, parsed in the sandboxed quantscope-h5probe helper process so that a libhdf5
// crash or hang on a hostile file becomes a qs::Error(Crashed) instead of taking the application down.
//
// Keras files (a `layer_names` / `layer_names0…` attribute on /model_weights or on the root) give a
// ModelFormat::Keras model whose tensors are named and ordered as Keras lists them ("dense/kernel:0");
// optimizer state under /optimizer_weights is left out. Any other file gives ModelFormat::Hdf5 with one
// tensor per numeric dataset, named by its path without the leading slash ("encoder/layer0/w").
// Contiguous little-endian datasets are views into the memory-mapped file. Compressed, chunked, compact
// and big-endian datasets are decoded by the probe into an unlinked temporary file (in TMPDIR) that is
// mapped as a second file, capped at 8 × the file size + 256 MB; what cannot be loaded (external storage,
// virtual datasets, unavailable filter plugins, non-numeric data, links leaving the file) is listed in
// the metadata key "hdf5.warnings".
std::shared_ptr<Model> loadHdf5(const std::filesystem::path& path, JobControl* job);
std::shared_ptr<Model> loadHdf5(const std::filesystem::path& path, JobControl* job,
                                const Hdf5Options& options);
} // namespace qs
