#include "core/jobs/jobs.h"

namespace qs {

LoadJob::LoadJob(LoadParams params) : BasicJob("Opening model", std::move(params)) {}

void LoadJob::execute(JobControl& control)
{
    m_result.model = openModel(m_params.path, &control);
}

StatsJob::StatsJob(StatsParams params) : BasicJob("Analysing statistics", std::move(params)) {}

void StatsJob::execute(JobControl& control)
{
    if (!m_params.model)
        throw Error(ErrorCode::BadValue, "no model to analyse");
    m_result.tensors = analyzeModel(*m_params.model, m_params.options, &control,
                                    [this](size_t index, const TensorStats& s) { m_finished.push({index, s}); });
}

SensitivityJob::SensitivityJob(SensitivityParams params)
    : BasicJob("Computing sensitivity", std::move(params))
{
}

void SensitivityJob::execute(JobControl& control)
{
    if (!m_params.model)
        throw Error(ErrorCode::BadValue, "no model to measure");
    if (m_params.importance)
        m_params.options.importance = m_params.importance.get();
    m_result.cells = computeSensitivity(
        *m_params.model, m_params.options, [this](const SensitivityResult& r) { m_finished.push(r); }, &control);
}

BudgetJob::BudgetJob(BudgetParams params) : BasicJob("Fitting plan to budget", std::move(params)) {}

void BudgetJob::execute(JobControl& control)
{
    m_result.solution = solveBudget(m_params.problem, m_params.budgetBytes, &control, m_params.options);
    control.throwIfCancelled(); // a solve stopped by cancel is Cancelled, not a degraded "not optimal" plan
}

} // namespace qs
