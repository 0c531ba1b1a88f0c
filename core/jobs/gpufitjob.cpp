#include "core/jobs/gpufitjob.h"

namespace qs {

GpuFitJob::GpuFitJob(GpuFitParams params) : BasicJob("Fitting plan to GPU", std::move(params)) {}

void GpuFitJob::execute(JobControl& control)
{
    m_result.fit = jointFit(m_params.problem, m_params.plan, m_params.model, m_params.gpu, m_params.request, &control);
    control.throwIfCancelled();
}

} // namespace qs
