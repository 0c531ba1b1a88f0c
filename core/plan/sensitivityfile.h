#pragma once
// Sensitivity files for the budget fit: the JSON of `quantscope-cli sensitivity --json` (weight errors:
// {"results": [{"tensor", "format", "rows", "cols", "mse", "weighted_mse"?}, ...]}; each error is the
// tensor's total squared error, mse x rows x cols, weighted_mse instead when preferred and present) and of
// `sensitivity --measure kl --json` ("measure": "kl"; each cell's "delta_kl" is the error as measured: the
// increase of the output's KL divergence when that tensor alone is quantized, core/infer/klsensitivity.h).
// errorTableFromJson / loadErrorTable (budget.h) read both and drop which one it was.

#include "core/plan/budget.h"

#include <filesystem>
#include <string>

namespace qs {

// What an error table's numbers are. ΔKL (nats) is additive by assumption: the sum over a plan's tensors is
// the plan's predicted KL divergence (planError(...).error), to be checked with the evaluation job.
enum class ErrorMeasure { WeightError, DeltaKl };

struct SensitivityTable {
    ErrorTable errors;
    ErrorMeasure measure = ErrorMeasure::WeightError;
};

// Throws qs::FormatError on malformed input, an unknown "measure", and ΔKL measured per layer group
// ("granularity": "group": a group's ΔKL says nothing about a mix of formats inside it).
SensitivityTable sensitivityTableFromJson(const std::string& json, bool preferWeighted = true,
                                          const std::string& fileName = {});
SensitivityTable loadSensitivityTable(const std::filesystem::path& path, bool preferWeighted = true);

} // namespace qs
