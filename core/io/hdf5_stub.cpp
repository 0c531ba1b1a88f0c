// Placeholder until the real loader lands.
#include "core/io/hdf5.h"
#include "core/util/error.h"

namespace qs {
std::shared_ptr<Model> loadHdf5(const std::filesystem::path& path, JobControl*)
{
    throw Error(ErrorCode::Unsupported, path.string() + ": hdf5 loading is not implemented yet");
}
} // namespace qs
