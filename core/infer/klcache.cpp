// The model identity part of the ΔKL sensitivity cache, in a file of its own: core/model/modelidentity.h's
// ModelIdentity and core/plan/plan.h's share a name and cannot meet in one translation unit.
#include "core/infer/klsensitivity.h"
#include "core/model/modelidentity.h"

namespace qs {

std::string klModelKey(const Model& model)
{
    return modelIdentity(model).key;
}

std::filesystem::path klSensitivityCacheFile(const Model& model, const std::string& windowsHash,
                                             const std::filesystem::path& cacheDir)
{
    return modelCacheFile(model, cacheDir, ".kl-" + windowsHash.substr(0, 16) + ".json");
}

} // namespace qs
