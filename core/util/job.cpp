#include "core/util/job.h"

#include <algorithm>
#include <new>

namespace qs {

void JobControl::throwIfCancelled() const
{
    if (cancelled())
        throw CancelledError();
}

void JobControl::report(double fraction, const std::string& stage)
{
    std::lock_guard lock(m_mutex);
    m_progress.fraction = std::clamp(fraction, 0.0, 1.0);
    if (!stage.empty())
        m_progress.stage = stage;
    publish();
}

void JobControl::reportBytes(uint64_t done, uint64_t total, const std::string& stage)
{
    std::lock_guard lock(m_mutex);
    m_progress.bytesDone = std::min(done, total);
    m_progress.bytesTotal = total;
    if (total > 0)
        m_progress.fraction = double(m_progress.bytesDone) / double(total);
    if (!stage.empty())
        m_progress.stage = stage;
    publish();
}

JobProgress JobControl::progress() const
{
    std::lock_guard lock(m_mutex);
    return m_progress;
}

void JobControl::publish()
{
    if (m_handler)
        m_handler(m_progress);
}

const char* jobStatusName(JobStatus status)
{
    switch (status) {
    case JobStatus::NotStarted: return "not-started";
    case JobStatus::Running: return "running";
    case JobStatus::Succeeded: return "succeeded";
    case JobStatus::Cancelled: return "cancelled";
    case JobStatus::Failed: return "failed";
    }
    return "unknown";
}

Job::Job(std::string title) : m_title(std::move(title)) {}

Job::~Job() = default;

JobStatus Job::run()
{
    m_status.store(JobStatus::Running, std::memory_order_release);
    JobStatus status = JobStatus::Succeeded;
    try {
        execute(m_control);
    } catch (const CancelledError&) {
        status = JobStatus::Cancelled;
    } catch (const Error& e) {
        status = JobStatus::Failed;
        m_errorCode = e.code();
        m_errorMessage = e.what();
    } catch (const std::bad_alloc&) {
        status = JobStatus::Failed;
        m_errorCode = ErrorCode::Internal;
        m_errorMessage = "out of memory";
    } catch (const std::exception& e) {
        status = JobStatus::Failed;
        m_errorCode = ErrorCode::Internal;
        m_errorMessage = e.what();
    } catch (...) {
        status = JobStatus::Failed;
        m_errorCode = ErrorCode::Internal;
        m_errorMessage = "unknown failure";
    }
    // One meaning of cancel: requested before the job finished, whatever execute() did with it.
    if (status != JobStatus::Failed && m_control.cancelled())
        status = JobStatus::Cancelled;
    if (status == JobStatus::Failed && m_errorCode == ErrorCode::Cancelled)
        status = JobStatus::Cancelled;
    if (status == JobStatus::Succeeded)
        m_control.report(1.0);
    m_status.store(status, std::memory_order_release);
    return status;
}

} // namespace qs
