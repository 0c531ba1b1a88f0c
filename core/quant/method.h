#pragma once
// How the quantize job rounds: plain round-to-nearest with the format's own codec, AWQ (activation-aware
// scales folded into the model before rounding, core/infer/awqmodel.h) or GPTQ.

#include <cstdint>
#include <optional>
#include <string_view>

namespace qs {

enum class QuantMethod : uint8_t { Rtn, Awq, Gptq };

// "rtn", "awq", "gptq"
const char* quantMethodName(QuantMethod method);
// Case-insensitive; nullopt for an unknown name.
std::optional<QuantMethod> quantMethodFromName(std::string_view name);

} // namespace qs
