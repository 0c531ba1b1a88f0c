#include "widgets/statsstore.h"

#include "core/jobs/jobs.h"
#include "core/util/threadpool.h"
#include "widgets/jobrunner.h"

namespace qs {

StatsStore::StatsStore(QObject* parent) : QObject(parent) {}

StatsStore::~StatsStore()
{
    cancel(); // the worker keeps its own job alive and ends soon
}

JobRunner* StatsStore::runner()
{
    if (!m_runner)
        m_runner = new JobRunner(this);
    return m_runner;
}

void StatsStore::setModel(std::shared_ptr<const Model> model)
{
    cancel();
    m_job.reset(); // a running job is ignored from now on
    m_handle = nullptr;
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
    StatsParams params{m_model, baseOptions};
    // Leave one core to the UI thread: the analysis is memory-bound, the user is waiting on the window.
    if (params.options.threads == 0)
        params.options.threads = std::max(1u, resolveThreads(0) - 1);
    params.options.tensors.clear();
    for (size_t i = 0; i < m_stats.size(); ++i)
        if (!m_stats[i])
            params.options.tensors.push_back(i);
    if (params.options.tensors.empty()) {
        emit finished(false, {});
        return;
    }
    auto job = std::make_shared<StatsJob>(std::move(params));
    m_job = job;
    m_running = true;
    m_handle = runner()->start(job, m_deliveryMs);
    connect(m_handle, &JobHandle::progressChanged, this, [this, job] {
        if (job == m_job)
            deliver();
    });
    connect(m_handle, &JobHandle::finished, this, [this, job](JobStatus status, const QString& error) {
        if (job != m_job)
            return;
        deliver(); // whatever the worker queued last
        m_running = false;
        emit finished(status == JobStatus::Cancelled, error);
    });
    emit started();
    emit progressChanged(0.0, tr("Analysing"));
}

void StatsStore::cancel()
{
    if (m_job)
        m_job->cancel();
}

double StatsStore::progress() const
{
    return m_job ? m_job->control().progress().fraction : 0.0;
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
    if (!m_job)
        return;
    auto batch = m_job->finishedTensors().take();
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
    if (m_running && m_handle)
        emit progressChanged(m_handle->progress().fraction, QString::fromStdString(m_handle->progress().stage));
}

} // namespace qs
