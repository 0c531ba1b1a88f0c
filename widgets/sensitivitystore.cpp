#include "widgets/sensitivitystore.h"

#include "core/quant/format.h"
#include "core/util/error.h"
#include "core/util/threadpool.h"
#include "widgets/jobprogress.h"

#include <QFutureWatcher>
#include <QtConcurrent/QtConcurrentRun>
#include <algorithm>
#include <mutex>

namespace qs {

struct SensitivityStore::Shared {
    PolledJobProgress progress;
    std::mutex mutex;
    std::vector<SensitivityResult> queue; // guarded by mutex
    bool workerDone = false;              // guarded by mutex
    bool cancelled = false;
    QString error;
};

SensitivityStore::SensitivityStore(QObject* parent) : QObject(parent)
{
    for (const std::string& f : defaultSensitivityFormats())
        m_formats << QString::fromStdString(f);
    m_deliveryTimer.setInterval(100);
    connect(&m_deliveryTimer, &QTimer::timeout, this, &SensitivityStore::deliver);
}

SensitivityStore::~SensitivityStore()
{
    if (m_shared)
        m_shared->progress.cancel();
}

void SensitivityStore::setModel(std::shared_ptr<const Model> model)
{
    cancel();
    m_shared.reset();
    m_deliveryTimer.stop();
    m_running = false;
    m_model = std::move(model);
    m_results.clear();
    emit cleared();
}

QStringList SensitivityStore::tensors() const
{
    QStringList names;
    if (m_model)
        for (const TensorInfo& t : m_model->tensors())
            if (isSensitivityCandidate(t))
                names << QString::fromStdString(t.name);
    return names;
}

void SensitivityStore::compute()
{
    if (!m_model || m_running || m_model->format() == ModelFormat::ConfigOnly)
        return;
    SensitivityOptions options;
    for (const QString& f : m_formats)
        options.formats.push_back(f.toStdString());
    options.threads = std::max(1u, resolveThreads() - 1);
    options.useCache = true;
    auto shared = std::make_shared<Shared>();
    m_shared = shared;
    m_running = true;
    auto model = m_model;
    auto* watcher = new QFutureWatcher<void>(this);
    connect(watcher, &QFutureWatcher<void>::finished, this, [this, watcher, shared] {
        watcher->deleteLater();
        if (shared == m_shared)
            deliver();
    });
    watcher->setFuture(QtConcurrent::run([shared, model, options] {
        try {
            computeSensitivity(
                *model, options,
                [&shared](const SensitivityResult& r) {
                    std::lock_guard lock(shared->mutex);
                    shared->queue.push_back(r);
                },
                shared->progress.job());
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
    emit progressChanged(0.0, tr("Computing sensitivity"));
}

void SensitivityStore::cancel()
{
    if (m_shared)
        m_shared->progress.cancel();
}

double SensitivityStore::progress() const
{
    return m_shared ? m_shared->progress.fraction() : 0.0;
}

const SensitivityResult* SensitivityStore::result(const QString& tensor, const QString& format) const
{
    const auto it = m_results.find({tensor, format});
    return it == m_results.end() ? nullptr : &it->second;
}

std::vector<SensitivityResult> SensitivityStore::results() const
{
    std::vector<SensitivityResult> all;
    all.reserve(m_results.size());
    for (const auto& [key, r] : m_results)
        all.push_back(r);
    return all;
}

void SensitivityStore::deliver()
{
    if (!m_shared)
        return;
    std::vector<SensitivityResult> batch;
    bool done = false;
    {
        std::lock_guard lock(m_shared->mutex);
        batch.swap(m_shared->queue);
        done = m_shared->workerDone;
    }
    if (!batch.empty()) {
        for (const SensitivityResult& r : batch)
            m_results[{QString::fromStdString(r.tensor), QString::fromStdString(r.format)}] = r;
        emit resultsReady(batch);
    }
    if (!m_running)
        return;
    if (done) {
        m_running = false;
        m_deliveryTimer.stop();
        emit progressChanged(1.0, {});
        emit finished(m_shared->cancelled, m_shared->error);
    } else {
        emit progressChanged(m_shared->progress.fraction(), m_shared->progress.stage());
    }
}

} // namespace qs
