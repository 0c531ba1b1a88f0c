// Placeholder until the real loader lands.
#include "core/io/gguf.h"
#include "core/util/error.h"

namespace qs {
std::shared_ptr<Model> loadGguf(const std::filesystem::path& path, JobControl*)
{
    throw Error(ErrorCode::Unsupported, path.string() + ": gguf loading is not implemented yet");
}
} // namespace qs
