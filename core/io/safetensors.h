#pragma once
#include "core/model/model.h"

namespace qs {
class JobControl;
// Single .safetensors file, or a sharded checkpoint given as its folder or model.safetensors.index.json.
// config.json beside the weights fills ModelConfig when present.
std::shared_ptr<Model> loadSafetensors(const std::filesystem::path& path, JobControl* job);
} // namespace qs
