// Placeholder classification; the full HF/GGUF naming table replaces it.
#include "core/model/tensorrole.h"

namespace qs {
RoleInfo classifyTensor(std::string_view) { return {}; }
const char* roleName(TensorRole) { return "other"; }
bool roleFromName(std::string_view, TensorRole*) { return false; }
bool roleIsQuantizable(TensorRole) { return false; }
} // namespace qs
