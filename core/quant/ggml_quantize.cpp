#include "core/quant/ggml.h"
#include "core/util/error.h"

namespace qs::ggml {
bool canQuantize(DType) { return false; }
uint64_t quantize(DType type, const float*, uint64_t, uint64_t, void*, const float*)
{
    throw Error(ErrorCode::Unsupported, std::string("cannot quantize to ") + dtypeName(type) + " yet");
}
} // namespace qs::ggml
