#pragma once
// Fit to a GPU off the UI thread: jointFit (core/plan/gpufit.h) as a job. A cancel ends it as Cancelled.

#include "core/plan/gpufit.h"
#include "core/plan/plan.h"
#include "core/util/job.h"

namespace qs {

struct GpuFitParams {
    BudgetProblem problem;
    Plan plan;
    ModelLayout model;
    GpuSpec gpu;
    JointFitRequest request;
};
struct GpuFitResult {
    JointFitResult fit;
};
class GpuFitJob final : public BasicJob<GpuFitParams, GpuFitResult> {
public:
    explicit GpuFitJob(GpuFitParams params);

protected:
    void execute(JobControl& control) override;
};

} // namespace qs
