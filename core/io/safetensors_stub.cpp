// Placeholder until the real loader lands.
#include "core/io/safetensors.h"
#include "core/util/error.h"

namespace qs {
std::shared_ptr<Model> loadSafetensors(const std::filesystem::path& path, JobControl*)
{
    throw Error(ErrorCode::Unsupported, path.string() + ": safetensors loading is not implemented yet");
}
} // namespace qs
