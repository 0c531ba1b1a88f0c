#pragma once
#include "core/model/model.h"

namespace qs {
class JobControl;
// Keras .h5 or plain HDF5, parsed in the sandboxed quantscope-h5probe helper process so that a libhdf5
// crash or hang on a hostile file becomes a qs::Error(Crashed) instead of taking the application down.
std::shared_ptr<Model> loadHdf5(const std::filesystem::path& path, JobControl* job);
} // namespace qs
