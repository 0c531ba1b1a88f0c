#pragma once
// The concrete long-running jobs of the core, each a params struct in and a result struct out (see
// core/util/job.h for the job model). The GUI runs them through its one job runner (widgets/jobrunner.h),
// the CLI calls run() on its own thread. Jobs that produce partial results while they work (a tensor's
// statistics, a sensitivity cell) hand them over through a ResultQueue the owner drains.
//
// Adding a job: a Params and a Result struct, a class deriving from BasicJob<Params, Result> whose
// execute() calls the module's free function with &control, and (for the GUI) a start through JobRunner.

#include "core/model/model.h"
#include "core/plan/budget.h"
#include "core/quant/sensitivity.h"
#include "core/stats/stats.h"
#include "core/util/job.h"

#include <filesystem>
#include <memory>
#include <utility>
#include <vector>

namespace qs {

// Opens a model (openModel): safetensors, GGUF, HDF5/Keras, config.json.
struct LoadParams {
    std::filesystem::path path;
};
struct LoadResult {
    std::shared_ptr<Model> model;
};
class LoadJob final : public BasicJob<LoadParams, LoadResult> {
public:
    explicit LoadJob(LoadParams params);

protected:
    void execute(JobControl& control) override;
};

// Statistics of a model's tensors (analyzeModel). Finished tensors stream through finishedTensors().
struct StatsParams {
    std::shared_ptr<const Model> model;
    StatsOptions options;
};
struct StatsResult {
    std::vector<TensorStats> tensors; // in the order of options.tensors (or model order)
};
class StatsJob final : public BasicJob<StatsParams, StatsResult> {
public:
    explicit StatsJob(StatsParams params);
    // (index into model->tensors(), statistics), as each tensor finishes.
    ResultQueue<std::pair<size_t, TensorStats>>& finishedTensors() { return m_finished; }

protected:
    void execute(JobControl& control) override;

private:
    ResultQueue<std::pair<size_t, TensorStats>> m_finished;
};

// The weight-error sensitivity matrix (computeSensitivity). Cells stream through finishedCells().
struct SensitivityParams {
    std::shared_ptr<const Model> model;
    SensitivityOptions options;
    // Kept alive by the job; when set, it is the options' importance.
    std::shared_ptr<const ImportanceMatrix> importance;
};
struct SensitivityJobResult {
    std::vector<SensitivityResult> cells;
};
class SensitivityJob final : public BasicJob<SensitivityParams, SensitivityJobResult> {
public:
    explicit SensitivityJob(SensitivityParams params);
    ResultQueue<SensitivityResult>& finishedCells() { return m_finished; }

protected:
    void execute(JobControl& control) override;

private:
    ResultQueue<SensitivityResult> m_finished;
};

// Fit a plan to a byte budget (solveBudget). A cancel ends it as Cancelled, never as "not optimal".
struct BudgetParams {
    BudgetProblem problem;
    uint64_t budgetBytes = 0;
    SolveOptions options;
};
struct BudgetResult {
    BudgetSolution solution;
};
class BudgetJob final : public BasicJob<BudgetParams, BudgetResult> {
public:
    explicit BudgetJob(BudgetParams params);

protected:
    void execute(JobControl& control) override;
};

} // namespace qs
