// Placeholder until the config.json reader lands.
#include "core/model/model.h"
#include "core/util/error.h"

namespace qs {
ModelConfig readHfConfig(const std::filesystem::path& path)
{
    throw Error(ErrorCode::Unsupported, path.string() + ": config.json reading is not implemented yet");
}
} // namespace qs
