#pragma once
// Opens models in the background as a core LoadJob through the one job runner (widgets/jobrunner.h). One
// load at a time: starting a new one cancels the previous, whose result is then dropped. Results arrive
// through signals on the UI thread. Failures become a message (qs::FormatError's text names the field and
// byte offset).

#include "core/model/model.h"
#include "core/util/job.h"

#include <QObject>
#include <QPointer>

#include <memory>

namespace qs {

class JobHandle;
class JobRunner;
class LoadJob;

class ModelLoader final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ModelLoader)

public:
    explicit ModelLoader(QObject* parent = nullptr);
    ~ModelLoader() override;

    // The runner loads start on (the window's, so they show in its job area); without one the loader
    // makes its own.
    void setJobRunner(JobRunner* runner) { m_runner = runner; }

    void load(const QString& path);
    void cancel();
    bool isRunning() const;
    QString currentPath() const { return m_path; }

signals:
    void started(const QString& path);
    void progress(double fraction, const QString& stage);
    void loaded(const QString& path, std::shared_ptr<qs::Model> model);
    void failed(const QString& path, const QString& message, const QString& kind);
    void cancelled(const QString& path);

private:
    JobRunner* runner();
    void onFinished(const std::shared_ptr<LoadJob>& job, JobStatus status, const QString& error);

    JobRunner* m_runner = nullptr;
    std::shared_ptr<LoadJob> m_job;
    QPointer<JobHandle> m_handle;
    QString m_path;
    bool m_running = false; // from load() until a result signal was emitted
};

} // namespace qs
