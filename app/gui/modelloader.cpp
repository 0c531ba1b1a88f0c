#include "app/gui/modelloader.h"

#include "core/util/error.h"
#include "widgets/jobprogress.h"

#include <QtConcurrent/QtConcurrentRun>

namespace qs {

ModelLoader::ModelLoader(QObject* parent) : QObject(parent)
{
    m_pollTimer.setInterval(100);
    connect(&m_pollTimer, &QTimer::timeout, this, &ModelLoader::poll);
}

ModelLoader::~ModelLoader()
{
    // The worker only holds its own PolledJobProgress; cancelling lets it finish quickly on its own.
    if (m_progress)
        m_progress->cancel();
}

void ModelLoader::load(const QString& path)
{
    cancel();
    if (m_watcher) {
        m_watcher->disconnect(this);
        m_watcher->deleteLater();
    }
    m_path = path;
    m_progress = std::make_shared<PolledJobProgress>();
    auto job = m_progress;
    const std::filesystem::path fsPath = path.toStdString();
    m_watcher = new QFutureWatcher<Result>(this);
    connect(m_watcher, &QFutureWatcher<Result>::finished, this, &ModelLoader::onFinished);
    m_watcher->setFuture(QtConcurrent::run([job, fsPath]() -> Result {
        Result r;
        try {
            r.model = openModel(fsPath, job->job());
            if (job->cancelled())
                r = Result{nullptr, {}, {}, true};
        } catch (const CancelledError&) {
            r.cancelled = true;
        } catch (const Error& e) {
            r.error = QString::fromStdString(e.what());
            r.errorKind = QString::fromLatin1(errorCodeName(e.code()));
        } catch (const std::bad_alloc&) {
            r.error = QObject::tr("Out of memory while reading the model.");
            r.errorKind = QStringLiteral("Internal");
        } catch (const std::exception& e) {
            r.error = QString::fromStdString(e.what());
            r.errorKind = QStringLiteral("Internal");
        }
        return r;
    }));
    m_running = true;
    m_pollTimer.start();
    emit started(path);
    emit progress(0.0, tr("Opening"));
}

void ModelLoader::cancel()
{
    if (m_progress)
        m_progress->cancel();
}

bool ModelLoader::isRunning() const
{
    return m_running;
}

void ModelLoader::poll()
{
    if (m_progress && isRunning())
        emit progress(m_progress->fraction(), m_progress->stage());
}

void ModelLoader::onFinished()
{
    auto* watcher = m_watcher;
    if (sender() != watcher)
        return;
    m_pollTimer.stop();
    // A cancel that arrives after the worker finished still wins: the user asked not to see this model.
    const bool cancelledLate = m_progress && m_progress->cancelled();
    m_progress.reset();
    m_running = false;
    const Result r = watcher->result();
    const QString path = m_path;
    if (r.cancelled || cancelledLate)
        emit cancelled(path);
    else if (!r.error.isEmpty() || !r.model)
        emit failed(path, r.error.isEmpty() ? tr("The loader returned no model.") : r.error, r.errorKind);
    else
        emit loaded(path, r.model);
}

} // namespace qs
