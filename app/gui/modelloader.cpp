#include "app/gui/modelloader.h"

#include "core/jobs/jobs.h"
#include "widgets/jobrunner.h"

namespace qs {

ModelLoader::ModelLoader(QObject* parent) : QObject(parent) {}

ModelLoader::~ModelLoader()
{
    cancel(); // the worker holds its own job; cancelling lets it finish quickly on its own
}

JobRunner* ModelLoader::runner()
{
    if (!m_runner)
        m_runner = new JobRunner(this);
    return m_runner;
}

void ModelLoader::load(const QString& path)
{
    cancel();
    m_path = path;
    auto job = std::make_shared<LoadJob>(LoadParams{path.toStdString()});
    m_job = job;
    m_handle = runner()->start(job);
    connect(m_handle, &JobHandle::progressChanged, this, [this, job] {
        if (job == m_job)
            emit progress(m_handle->progress().fraction, QString::fromStdString(m_handle->progress().stage));
    });
    connect(m_handle, &JobHandle::finished, this,
            [this, job](JobStatus status, const QString& error) { onFinished(job, status, error); });
    emit started(path);
    emit progress(0.0, tr("Opening"));
}

void ModelLoader::cancel()
{
    if (m_job)
        m_job->cancel();
}

bool ModelLoader::isRunning() const
{
    return m_job != nullptr;
}

void ModelLoader::onFinished(const std::shared_ptr<LoadJob>& job, JobStatus status, const QString& error)
{
    if (job != m_job)
        return; // replaced by a newer load
    m_job.reset();
    m_handle = nullptr;
    const QString path = m_path;
    // A cancel that arrives after the worker finished still wins: the user asked not to see this model.
    if (status == JobStatus::Cancelled || job->control().cancelled())
        emit cancelled(path);
    else if (status == JobStatus::Failed)
        emit failed(path, error, QString::fromLatin1(errorCodeName(job->errorCode())));
    else if (!job->result().model)
        emit failed(path, tr("The loader returned no model."), QStringLiteral("internal"));
    else
        emit loaded(path, job->result().model);
}

} // namespace qs
