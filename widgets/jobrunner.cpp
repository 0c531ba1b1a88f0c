#include "widgets/jobrunner.h"

#include "core/util/threadpool.h"

#include <QMetaObject>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace qs {

// Shared between the runner (UI thread) and the workers. A worker that finishes after the runner is gone
// finds `runner` null and only counts itself out.
struct JobRunner::Tracker {
    std::mutex mutex;
    std::condition_variable idle;
    int running = 0;             // guarded by mutex
    JobRunner* runner = nullptr; // guarded by mutex; null once the runner is destroyed
};

JobHandle::JobHandle(std::shared_ptr<Job> job, int pollMs, QObject* parent)
    : QObject(parent), m_job(std::move(job))
{
    m_elapsed.start();
    m_timer.setInterval(pollMs);
    connect(&m_timer, &QTimer::timeout, this, &JobHandle::poll);
    m_timer.start();
}

QString JobHandle::title() const
{
    return QString::fromStdString(m_job->title());
}

double JobHandle::etaSeconds() const
{
    const double f = m_progress.fraction;
    const double elapsed = double(m_elapsed.elapsed()) / 1000.0;
    if (m_finished || f <= 0.01 || elapsed < 1.0)
        return -1.0;
    return elapsed * (1.0 - f) / f;
}

void JobHandle::poll()
{
    if (m_finished)
        return;
    m_progress = m_job->control().progress();
    emit progressChanged();
}

void JobHandle::complete()
{
    if (m_finished)
        return;
    poll(); // last progress and a last chance to drain partial results
    m_finished = true;
    m_timer.stop();
    const JobStatus status = m_job->status();
    const QString error =
        status == JobStatus::Failed ? QString::fromStdString(m_job->errorMessage()) : QString();
    emit finished(status, error);
    deleteLater();
}

JobRunner::JobRunner(QObject* parent) : QObject(parent), m_tracker(std::make_shared<Tracker>())
{
    m_tracker->runner = this;
}

JobRunner::~JobRunner()
{
    cancelAll();
    waitForAll();
    std::lock_guard lock(m_tracker->mutex);
    m_tracker->runner = nullptr;
}

JobHandle* JobRunner::start(std::shared_ptr<Job> job, int pollMs)
{
    m_handles.removeIf([](const QPointer<JobHandle>& h) { return !h || h->isFinished(); });
    auto* handle = new JobHandle(job, pollMs > 0 ? pollMs : m_pollMs, this);
    m_handles.append(handle);
    QPointer<JobHandle> guard(handle);
    auto tracker = m_tracker;
    {
        std::lock_guard lock(tracker->mutex);
        ++tracker->running;
    }
    ThreadPool::instance().startJob([job, tracker, guard] {
        job->run();
        std::lock_guard lock(tracker->mutex);
        if (tracker->runner) {
            // Queued to the runner (UI thread); the runner outlives this call because its destructor
            // waits for `running` to reach zero before it clears `runner`.
            QMetaObject::invokeMethod(
                tracker->runner,
                [runner = tracker->runner, guard] {
                    if (guard) {
                        guard->complete();
                        emit runner->jobFinished(guard.data());
                    }
                },
                Qt::QueuedConnection);
        }
        --tracker->running;
        tracker->idle.notify_all();
    });
    emit jobStarted(handle);
    return handle;
}

QList<JobHandle*> JobRunner::running() const
{
    QList<JobHandle*> list;
    for (const auto& h : m_handles)
        if (h && !h->isFinished())
            list.append(h.data());
    return list;
}

void JobRunner::cancelAll()
{
    for (const auto& h : m_handles)
        if (h)
            h->cancel();
}

bool JobRunner::waitForAll(int timeoutMs)
{
    std::unique_lock lock(m_tracker->mutex);
    return m_tracker->idle.wait_for(lock, std::chrono::milliseconds(timeoutMs),
                                    [this] { return m_tracker->running == 0; });
}

} // namespace qs
