#pragma once
// What to do about an export refusal. exportPlan() throws an ExportError listing every (tensor, format,
// reason) the target cannot express; a user who sees "138 problems" needs the two or three one-click edits
// that remove them, each applied as one undo step (PlanFix, applyFix in plan.h).

#include "core/plan/export.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"

#include <string>
#include <vector>

namespace qs {

// "138 problems across 114 tensors" (one tensor can have several problems).
std::string describeProblemCount(const std::vector<ExportProblem>& problems);

// One-click fixes for the problems, most useful first:
//   - embedding / output head refused (integer targets quantize Linear layers only): keep them at 16 bits
//     (their stored 16-bit type, BF16 otherwise);
//   - fused groups (q/k/v, gate/up, experts) with different formats: raise every group to its most
//     precise member's format, as one edit.
// Problems without a mechanical fix (a ggml type for an integer target) get none: the caller lists them.
std::vector<PlanFix> exportFixes(const Plan& plan, const ModelLayout& model,
                                 const std::vector<ExportProblem>& problems);

} // namespace qs
