#pragma once
// The one GUI wrapper for core jobs (core/util/job.h). JobRunner::start() runs a job on the core thread
// pool and gives back a JobHandle that lives on the UI thread: it polls the job's progress at 10 Hz
// (worker threads never touch a QObject), computes an ETA, and emits finished() on the UI thread. Owners
// that stream partial results (statistics, sensitivity cells) drain the job's ResultQueue on
// progressChanged() and once more on finished().
//
// A job may outlive everything that started it: the worker holds the job by shared_ptr, and a handle that
// is gone is simply not told. Closing the window calls cancelAll() + waitForAll().
//
// Sequence of one job (docs/architecture.md has the diagram):
//   button -> owner creates job -> runner.start(job) -> ThreadPool::startJob(job->run())
//   10 Hz timer -> handle.progressChanged (owner drains partial results; JobArea repaints bar and ETA)
//   worker ends -> queued call -> handle.finished(status, error) -> owner reads job->result()

#include "core/util/job.h"

#include <QElapsedTimer>
#include <QList>
#include <QObject>
#include <QPointer>
#include <QTimer>

#include <memory>

namespace qs {

class JobHandle final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(JobHandle)

public:
    const std::shared_ptr<Job>& job() const { return m_job; }
    QString title() const;
    // The progress polled last (on the UI thread).
    const JobProgress& progress() const { return m_progress; }
    // Seconds left, estimated from the progress so far; negative while unknown.
    double etaSeconds() const;
    qint64 elapsedMs() const { return m_elapsed.elapsed(); }
    bool isFinished() const { return m_finished; }
    JobStatus status() const { return m_job->status(); }

    // Requests a cancel: the job ends soon with JobStatus::Cancelled.
    void cancel() { m_job->cancel(); }

signals:
    // Every poll while the job runs (10 Hz by default).
    void progressChanged();
    // Once, on the UI thread. error is empty unless status == Failed. The handle deletes itself later.
    void finished(qs::JobStatus status, const QString& error);

private:
    friend class JobRunner;
    JobHandle(std::shared_ptr<Job> job, int pollMs, QObject* parent);
    void poll();
    void complete();

    std::shared_ptr<Job> m_job;
    JobProgress m_progress;
    QTimer m_timer;
    QElapsedTimer m_elapsed;
    bool m_finished = false;
};

class JobRunner final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(JobRunner)

public:
    explicit JobRunner(QObject* parent = nullptr);
    ~JobRunner() override; // cancels running jobs and waits for them

    // Starts the job now (the pool always has a thread for a job). The handle is owned by the runner and
    // polls every pollMs (0: the runner's interval).
    JobHandle* start(std::shared_ptr<Job> job, int pollMs = 0);
    QList<JobHandle*> running() const;
    void cancelAll();
    // Blocks until every started job's run() has returned, or timeoutMs passed (then false). It waits on the
    // workers, not on the event loop: finished() signals come afterwards, from the event loop.
    bool waitForAll(int timeoutMs = 30000);

    // Poll interval for new handles (tests make it faster).
    void setPollInterval(int ms) { m_pollMs = ms; }

signals:
    void jobStarted(qs::JobHandle* handle);
    void jobFinished(qs::JobHandle* handle);

private:
    struct Tracker; // worker-side completion bookkeeping, outlives the runner if a worker still runs
    std::shared_ptr<Tracker> m_tracker;
    QList<QPointer<JobHandle>> m_handles;
    int m_pollMs = 100;
};

} // namespace qs
