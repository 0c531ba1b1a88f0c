#pragma once
// Cooperative control for long core work (loading, statistics, sensitivity, quantization, export).
// The core knows nothing about Qt signals: a job polls cancelled() and calls report(); the GUI wraps a
// JobControl in a QFuture/QObject and forwards progress to the UI thread.

#include <atomic>
#include <functional>
#include <mutex>
#include <string>

namespace qs {

class JobControl {
public:
    // Called from worker threads; fraction in [0, 1]. Must be cheap and thread-safe.
    using ProgressHandler = std::function<void(double fraction, const std::string& stage)>;

    JobControl() = default;
    explicit JobControl(ProgressHandler handler) : m_handler(std::move(handler)) {}

    void cancel() { m_cancelled.store(true, std::memory_order_relaxed); }
    bool cancelled() const { return m_cancelled.load(std::memory_order_relaxed); }
    // Throws qs::CancelledError when cancel() was called.
    void throwIfCancelled() const;

    void report(double fraction, const std::string& stage = {});

private:
    std::atomic<bool> m_cancelled{false};
    ProgressHandler m_handler;
    std::mutex m_mutex; // serialises calls into m_handler
};

// Helpers for optional JobControl pointers.
inline void checkCancel(const JobControl* job)
{
    if (job)
        job->throwIfCancelled();
}
inline void reportProgress(JobControl* job, double fraction, const std::string& stage = {})
{
    if (job)
        job->report(fraction, stage);
}

} // namespace qs
