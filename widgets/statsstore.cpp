#include "widgets/statsstore.h"

#include "core/util/error.h"
#include "core/util/threadpool.h"
#include "widgets/jobprogress.h"

#include <QFutureWatcher>
#include <QtConcurrent/QtConcurrentRun>

#include <algorithm>

namespace qs {

struct StatsStore::Shared {
    PolledJobProgress progress;
    std::mutex mutex;
    std::vector<std::pair<size_t, TensorStats>> queue; // guarded by mutex
    bool workerDone = false;                          // guarded by mutex
    bool cancelled = false;
    QString error;
};

StatsStore::StatsStore(QObject* parent) : QObject(parent)
{
    m_deliveryTimer.setInterval(100);
    connect(&m_deliveryTimer, &QTimer::timeout, this, &StatsStore::deliver);
}

StatsStore::~StatsStore()
{
    if (m_shared)
        m_shared->progress.cancel();
}

void StatsStore::setModel(std::shared_ptr<const Model> model)
{
    cancel();
    m_shared.reset(); // a running worker keeps its own reference and is ignored from now on
    m_deliveryTimer.stop();
    m_running = false;
    m_model = std::move(model);
    m_stats.clear();
    m_stats.resize(m_model ? m_model->tensors().size() : 0);
    m_done = 0;
    emit cleared();
}

void StatsStore::analyze(const StatsOptions& baseOptions)
{
    if (!m_model || m_running)
        return;
    StatsOptions options = baseOptions;
    // Leave one core to the UI thread: the analysis is memory-bound, the user is waiting on the window.
    if (options.threads == 0)
        options.threads = std::max(1u, resolveThreads() - 1);
    options.tensors.clear();
    for (size_t i = 0; i < m_stats.size(); ++i)
        if (!m_stats[i])
            options.tensors.push_back(i);
    if (options.tensors.empty()) {
        emit finished(false, {});
        return;
    }
    auto shared = std::make_shared<Shared>();
    m_shared = shared;
    m_running = true;
    auto model = m_model;
    auto* watcher = new QFutureWatcher<void>(this);
    connect(watcher, &QFutureWatcher<void>::finished, this, [this, watcher, shared] {
        watcher->deleteLater();
        if (shared == m_shared)
            onWorkerDone();
    });
    watcher->setFuture(QtConcurrent::run([shared, model, options] {
        try {
            analyzeModel(*model, options, shared->progress.job(), [&shared](size_t index, const TensorStats& s) {
                std::lock_guard lock(shared->mutex);
                shared->queue.emplace_back(index, s);
            });
        } catch (const CancelledError&) {
            shared->cancelled = true;
        } catch (const std::exception& e) {
            shared->error = QString::fromStdString(e.what());
        }
        std::lock_guard lock(shared->mutex);
        shared->workerDone = true;
    }));
    m_deliveryTimer.start();
    emit started();
    emit progressChanged(0.0, tr("Analysing"));
}

void StatsStore::cancel()
{
    if (m_shared)
        m_shared->progress.cancel();
}

double StatsStore::progress() const
{
    return m_shared ? m_shared->progress.fraction() : 0.0;
}

const TensorStats* StatsStore::stats(size_t tensorIndex) const
{
    return tensorIndex < m_stats.size() ? m_stats[tensorIndex].get() : nullptr;
}

const TensorStats* StatsStore::stats(const QString& tensorName) const
{
    const int index = tensorIndex(tensorName);
    return index >= 0 ? stats(size_t(index)) : nullptr;
}

std::shared_ptr<const TensorStats> StatsStore::shared(size_t tensorIndex) const
{
    return tensorIndex < m_stats.size() ? m_stats[tensorIndex] : nullptr;
}

int StatsStore::tensorIndex(const QString& tensorName) const
{
    if (!m_model)
        return -1;
    const TensorInfo* t = m_model->find(tensorName.toStdString());
    return t ? int(t - m_model->tensors().data()) : -1;
}

void StatsStore::deliver()
{
    if (!m_shared)
        return;
    std::vector<std::pair<size_t, TensorStats>> batch;
    {
        std::lock_guard lock(m_shared->mutex);
        batch.swap(m_shared->queue);
    }
    if (!batch.empty()) {
        std::vector<size_t> indices;
        indices.reserve(batch.size());
        for (auto& [index, s] : batch) {
            if (index >= m_stats.size())
                continue;
            if (!m_stats[index])
                ++m_done;
            m_stats[index] = std::make_shared<const TensorStats>(std::move(s));
            indices.push_back(index);
        }
        emit tensorsReady(indices);
    }
    if (m_running)
        emit progressChanged(m_shared->progress.fraction(), m_shared->progress.stage());
}

void StatsStore::onWorkerDone()
{
    deliver(); // whatever the worker queued last
    m_deliveryTimer.stop();
    m_running = false;
    const bool cancelled = m_shared->cancelled || m_shared->progress.cancelled();
    const QString error = m_shared->error;
    emit finished(cancelled, error);
}

} // namespace qs
