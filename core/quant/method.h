#pragma once
// How a tensor's values are chosen for its format: round-to-nearest (the format's own quantizer), GPTQ
// (error compensation with the layer's input Hessian from calibration data) or AWQ (activation-aware
// per-input-channel scaling folded into the preceding op, then the format's quantizer). A plan's tier names
// a format and a method (core/plan/plan.h).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace qs {

enum class QuantMethod : uint8_t { Rtn, Gptq, Awq };

// "rtn", "gptq", "awq"
const char* quantMethodName(QuantMethod method);
// "RTN", "GPTQ", "AWQ": what the GUI shows.
const char* quantMethodLabel(QuantMethod method);
// Case-insensitive; also accepts "round-to-nearest".
std::optional<QuantMethod> quantMethodFromName(std::string_view name);

// Why `method` cannot produce values for `format` (empty when it can): GPTQ needs a per-group or per-channel
// integer format or a ggml type it can round into (gptqConfigForFormat: its grids are chosen as it goes); AWQ needs a quantized format (scaling a float format changes
// nothing). RTN applies to every format.
std::string quantMethodProblem(QuantMethod method, std::string_view format);

} // namespace qs
