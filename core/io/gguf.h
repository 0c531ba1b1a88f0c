#pragma once
#include "core/model/model.h"

namespace qs {
class JobControl;
// GGUF v2 / v3 (little-endian). Metadata keys land in Model::metadata(), architecture keys in config().
std::shared_ptr<Model> loadGguf(const std::filesystem::path& path, JobControl* job);
} // namespace qs
