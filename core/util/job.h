#pragma once
// The one job model for long core work: loading, statistics, sensitivity, the budget solve, and the
// coming quantize / calibrate / evaluate jobs.
//
// A job is a params struct in, a result struct out (see BasicJob), run on any thread by Job::run(), which
// never throws: it returns a JobStatus and keeps a typed error. While it runs, the job reports progress
// (fraction, stage text, bytes done / total for an ETA) through its JobControl and polls the same object
// for a cancel request.
//
// Cancel has ONE meaning everywhere: a cancel requested before the job finished makes the job end with
// JobStatus::Cancelled, and its result is not to be used. No job reports a cancel as an error or as a
// degraded result. Inside the core, cancellation unwinds with qs::CancelledError (throwIfCancelled());
// Job::run() turns it into the status.
//
// The core knows nothing about Qt signals: the GUI polls JobControl::progress() from its job runner
// (widgets/jobrunner.h); the CLI passes a progress handler.

#include "core/util/error.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace qs {

// A snapshot of a job's progress. bytesTotal == 0 when the job does not count bytes.
struct JobProgress {
    double fraction = 0.0; // [0, 1]
    std::string stage;
    uint64_t bytesDone = 0;
    uint64_t bytesTotal = 0;
};

class JobControl {
public:
    // Called on the reporting (worker) thread, one call at a time. Must be cheap.
    using ProgressHandler = std::function<void(const JobProgress&)>;

    // The same with the fraction and stage only (what most callers print).
    using FractionHandler = std::function<void(double fraction, const std::string& stage)>;

    JobControl() = default;
    explicit JobControl(ProgressHandler handler) : m_handler(std::move(handler)) {}
    explicit JobControl(FractionHandler handler)
        : m_handler([h = std::move(handler)](const JobProgress& p) { h(p.fraction, p.stage); })
    {
    }
    JobControl(const JobControl&) = delete;
    JobControl& operator=(const JobControl&) = delete;

    // Replaces the progress handler. Call it before the job runs (not thread-safe against report()).
    void setProgressHandler(ProgressHandler handler) { m_handler = std::move(handler); }

    // Thread-safe; may be called from any thread, any number of times.
    void cancel() { m_cancelled.store(true, std::memory_order_relaxed); }
    bool cancelled() const { return m_cancelled.load(std::memory_order_relaxed); }
    // Throws qs::CancelledError when cancel() was called.
    void throwIfCancelled() const;

    // Reports progress; fraction is clamped to [0, 1]. An empty stage keeps the previous one.
    void report(double fraction, const std::string& stage = {});
    // Reports progress in bytes (the fraction follows from them when total > 0).
    void reportBytes(uint64_t done, uint64_t total, const std::string& stage = {});
    // The latest report (thread-safe).
    JobProgress progress() const;

private:
    void publish(); // caller holds m_mutex

    std::atomic<bool> m_cancelled{false};
    ProgressHandler m_handler;
    mutable std::mutex m_mutex; // guards m_progress and serialises calls into m_handler
    JobProgress m_progress;
};

// Helpers for optional JobControl pointers (core functions take `JobControl* job = nullptr`).
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
inline void reportBytes(JobControl* job, uint64_t done, uint64_t total, const std::string& stage = {})
{
    if (job)
        job->reportBytes(done, total, stage);
}

enum class JobStatus {
    NotStarted,
    Running,
    Succeeded,
    Cancelled, // a cancel was requested before the job finished; the result is not to be used
    Failed,    // errorCode() / errorMessage() say why
};
const char* jobStatusName(JobStatus status);

// The base of every job. Subclasses implement execute(); callers use run() (on a worker thread from the
// GUI's job runner, or on the calling thread from the CLI and tests).
class Job {
public:
    explicit Job(std::string title);
    virtual ~Job();
    Job(const Job&) = delete;
    Job& operator=(const Job&) = delete;

    // A short human-readable title for the job area ("Analysing statistics").
    const std::string& title() const { return m_title; }
    JobControl& control() { return m_control; }
    const JobControl& control() const { return m_control; }
    void cancel() { m_control.cancel(); }

    // Runs execute() once on the calling thread. Never throws: a qs::Error becomes Failed with its code,
    // std::bad_alloc becomes Failed (Internal, "out of memory"), CancelledError or a cancel requested before
    // execute() returned becomes Cancelled.
    JobStatus run();

    // Thread-safe; valid at any time (NotStarted / Running while not finished).
    JobStatus status() const { return m_status.load(std::memory_order_acquire); }
    bool finished() const
    {
        const JobStatus s = status();
        return s == JobStatus::Succeeded || s == JobStatus::Cancelled || s == JobStatus::Failed;
    }
    // Meaningful once status() == Failed (read after finished(): run() publishes them before the status).
    ErrorCode errorCode() const { return m_errorCode; }
    const std::string& errorMessage() const { return m_errorMessage; }

protected:
    // The work. Throws qs::Error (or any std::exception) on failure; polls control.throwIfCancelled().
    virtual void execute(JobControl& control) = 0;

private:
    std::string m_title;
    JobControl m_control;
    std::atomic<JobStatus> m_status{JobStatus::NotStarted};
    ErrorCode m_errorCode = ErrorCode::Internal;
    std::string m_errorMessage;
};

// Params in, result out: the shape of every concrete job (qBittorrent's TorrentCreator is the model).
// The result is written by execute() on the worker thread and read by the owner after finished().
template <class Params, class Result>
class BasicJob : public Job {
public:
    BasicJob(std::string title, Params params) : Job(std::move(title)), m_params(std::move(params)) {}
    const Params& params() const { return m_params; }
    const Result& result() const { return m_result; }
    Result takeResult() { return std::move(m_result); }

protected:
    Params m_params;
    Result m_result;
};

// A job whose work is a callable: for small jobs that need no class of their own, and for tests.
class FunctionJob final : public Job {
public:
    FunctionJob(std::string title, std::function<void(JobControl&)> work)
        : Job(std::move(title)), m_work(std::move(work))
    {
    }

protected:
    void execute(JobControl& control) override { m_work(control); }

private:
    std::function<void(JobControl&)> m_work;
};

// Partial results a running job hands to its owner while it works (tensors whose statistics are done,
// sensitivity cells): the worker push()es, the owner take()s everything queued so far. Thread-safe.
template <class T>
class ResultQueue {
public:
    void push(T value)
    {
        std::lock_guard lock(m_mutex);
        m_items.push_back(std::move(value));
    }
    std::vector<T> take()
    {
        std::vector<T> out;
        std::lock_guard lock(m_mutex);
        out.swap(m_items);
        return out;
    }

private:
    std::mutex m_mutex;
    std::vector<T> m_items; // guarded by m_mutex
};

} // namespace qs
