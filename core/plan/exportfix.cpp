#include "core/plan/exportfix.h"

#include "core/model/tensorrole.h"

#include <set>

namespace qs {

std::string describeProblemCount(const std::vector<ExportProblem>& problems)
{
    std::set<std::string> tensors;
    for (const auto& p : problems)
        tensors.insert(p.tensor);
    auto plural = [](size_t n, const char* word) {
        return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
    };
    return plural(problems.size(), "problem") + " across " + plural(tensors.size(), "tensor");
}

std::vector<PlanFix> exportFixes(const Plan& plan, const ModelLayout& model,
                                 const std::vector<ExportProblem>& problems)
{
    std::set<std::string> refused;
    for (const auto& p : problems)
        refused.insert(p.tensor);

    std::vector<PlanFix> fixes;

    PlanFix keep16{"Keep the embedding and output head at 16 bits", {}};
    for (const auto& name : refused) {
        const TensorInfo* t = model.find(name);
        const TensorRole role = t ? t->role.role : classifyTensor(name).role;
        if (role != TensorRole::Embedding && role != TensorRole::OutputHead)
            continue;
        keep16.assignments[name] = t && t->dtype == DType::F16 ? "F16" : "BF16";
    }
    if (!keep16.assignments.empty())
        fixes.push_back(std::move(keep16));

    // checkPlan's fused-group issues carry "raise to the most precise member" as their first fix; merge
    // those of the refused groups into one edit.
    PlanFix raise{"", {}};
    size_t groups = 0;
    for (const PlanIssue& issue : checkPlan(plan, model, CheckOptions{.fusedGroups = true})) {
        if (issue.kind != PlanIssueKind::FusedMismatch || issue.fixes.empty())
            continue;
        bool hit = false;
        for (const auto& t : issue.tensors)
            hit |= refused.count(t) > 0;
        if (!hit)
            continue;
        ++groups;
        for (const auto& [t, f] : issue.fixes.front().assignments)
            raise.assignments[t] = f;
    }
    if (groups > 0) {
        raise.label = groups == 1 ? "Give the fused group one format (its most precise)"
                                  : "Give each of the " + std::to_string(groups) +
                                        " fused groups one format (its most precise)";
        fixes.push_back(std::move(raise));
    }
    return fixes;
}

} // namespace qs
