// Placeholder until the ggml block codecs land (replaced by ggml_dequant.cpp / ggml_quant.cpp).
#include "core/quant/ggml.h"
#include "core/util/error.h"

namespace qs::ggml {
bool canDecode(DType) { return false; }
void decode(DType type, const void*, uint64_t, float*)
{
    throw Error(ErrorCode::Unsupported, std::string("cannot decode ") + dtypeName(type) + " yet");
}
bool canQuantize(DType) { return false; }
uint64_t quantize(DType type, const float*, uint64_t, uint64_t, void*, const float*)
{
    throw Error(ErrorCode::Unsupported, std::string("cannot quantize to ") + dtypeName(type) + " yet");
}
} // namespace qs::ggml
