#include "widgets/sensitivitystore.h"

#include "core/infer/klsensitivity.h"

#include "core/jobs/jobs.h"
#include "core/quant/format.h"
#include "core/util/threadpool.h"
#include "widgets/jobrunner.h"

namespace qs {

SensitivityStore::SensitivityStore(QObject* parent) : QObject(parent)
{
    for (const std::string& f : defaultSensitivityFormats())
        m_formats << QString::fromStdString(f);
}

SensitivityStore::~SensitivityStore()
{
    cancel();
}

JobRunner* SensitivityStore::runner()
{
    if (!m_runner)
        m_runner = new JobRunner(this);
    return m_runner;
}

void SensitivityStore::reset()
{
    cancel();
    m_job.reset();
    m_take = nullptr;
    m_handle = nullptr;
    m_running = false;
    m_measure = Measure::WeightError;
    m_phase = Phase::Single;
    m_results.clear();
    emit cleared();
}

void SensitivityStore::setModel(std::shared_ptr<const Model> model)
{
    if (model != m_model)
        m_importance.reset(); // it belongs to the previous model
    m_model = std::move(model);
    reset();
}

void SensitivityStore::setImportance(std::shared_ptr<const ImportanceMatrix> importance)
{
    if (importance == m_importance)
        return;
    m_importance = std::move(importance);
    reset();
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

QStringList SensitivityStore::skipped() const
{
    // Weight-like tensors only (2-D and up): 1-D norms and biases are never quantized, listing them is noise.
    QStringList out;
    if (m_model)
        for (const TensorInfo& t : m_model->tensors())
            if (t.shape.size() >= 2)
                if (const std::string why = sensitivitySkipReason(t); !why.empty())
                    out << QStringLiteral("%1: %2").arg(QString::fromStdString(t.name), QString::fromStdString(why));
    return out;
}

void SensitivityStore::compute()
{
    if (!m_model || m_running || m_model->format() == ModelFormat::ConfigOnly)
        return;
    m_measure = Measure::WeightError;
    m_phase = m_sampling ? Phase::Estimate : Phase::Single;
    m_anySampled = false;
    startWeightPass(!m_sampling);
    emit started();
    emit progressChanged(0.0, m_sampling ? tr("Estimating sensitivity (row sample)") : tr("Computing sensitivity"));
}

void SensitivityStore::startWeightPass(bool exact)
{
    SensitivityParams params{m_model, {}, m_importance};
    for (const QString& f : m_formats)
        params.options.formats.push_back(f.toStdString());
    params.options.threads = std::max(1u, resolveThreads(0) - 1);
    params.options.useCache = true;
    params.options.exact = exact;
    auto job = std::make_shared<SensitivityJob>(std::move(params));
    start(job, [job] { return job->finishedCells().take(); });
}

double SensitivityStore::overall(double passFraction) const
{
    // The estimate costs about a seventh of the exact pass (docs/performance.md).
    constexpr double kEstimateShare = 0.15;
    switch (m_phase) {
    case Phase::Estimate:
        return kEstimateShare * passFraction;
    case Phase::Refine:
        return kEstimateShare + (1 - kEstimateShare) * passFraction;
    case Phase::Single:
        break;
    }
    return passFraction;
}

void SensitivityStore::computeKl(const QString& textFile, uint64_t maxTokens)
{
    if (!m_model || m_running || m_model->format() == ModelFormat::ConfigOnly)
        return;
    KlSensitivityParams params;
    params.model = m_model;
    params.textFile = textFile.toStdString();
    for (const QString& f : m_formats)
        params.options.formats.push_back(f.toStdString());
    params.options.maxTokens = maxTokens;
    params.options.useCache = true;
    auto job = std::make_shared<KlSensitivityJob>(std::move(params));
    reset();
    m_measure = Measure::DeltaKl;
    m_phase = Phase::Single;
    const QString stage = tr("Measuring ΔKL");
    start(job,
          [job, model = m_model] {
              std::vector<SensitivityResult> cells;
              for (const KlSensitivityCell& c : job->finishedCells().take())
                  if (auto r = sensitivityCellFromKl(c, *model))
                      cells.push_back(std::move(*r));
              return cells;
          });
    emit started();
    emit progressChanged(0.0, stage);
}

void SensitivityStore::start(std::shared_ptr<Job> job, std::function<std::vector<SensitivityResult>()> take)
{
    m_job = job;
    m_take = std::move(take);
    m_running = true;
    m_handle = runner()->start(job, m_deliveryMs);
    connect(m_handle, &JobHandle::progressChanged, this, [this, job] {
        if (job == m_job)
            deliver();
    });
    connect(m_handle, &JobHandle::finished, this, [this, job](JobStatus status, const QString& error) {
        if (job != m_job)
            return;
        deliver();
        if (m_phase == Phase::Estimate && status == JobStatus::Succeeded && m_anySampled) {
            m_phase = Phase::Refine; // the estimates stand; the exact cells replace them as they arrive
            startWeightPass(true);
            emit progressChanged(overall(0.0), tr("Refining sensitivity to exact"));
            return;
        }
        m_running = false;
        emit progressChanged(1.0, {});
        emit finished(status == JobStatus::Cancelled, error);
    });
}

void SensitivityStore::cancel()
{
    if (m_job)
        m_job->cancel();
}

double SensitivityStore::progress() const
{
    return m_job ? overall(m_job->control().progress().fraction) : 0.0;
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
    if (!m_job)
        return;
    const std::vector<SensitivityResult> batch = m_take ? m_take() : std::vector<SensitivityResult>{};
    if (!batch.empty()) {
        for (const SensitivityResult& r : batch) {
            m_anySampled = m_anySampled || r.isSampled();
            m_results[{QString::fromStdString(r.tensor), QString::fromStdString(r.format)}] = r;
        }
        emit resultsReady(batch);
    }
    if (m_running && m_handle)
        emit progressChanged(overall(m_handle->progress().fraction),
                             QString::fromStdString(m_handle->progress().stage));
}

} // namespace qs
