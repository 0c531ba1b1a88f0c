#pragma once
// The sensitivity matrix of the open model, computed as a core SensitivityJob through the one job runner
// (widgets/jobrunner.h), like StatsStore's statistics: the worker queues finished cells, the runner's 10 Hz
// progress tick hands them to the UI thread in batches, and a model change simply abandons a running job
// (the worker keeps it alive until it ends).
//
// Weight-error cells come in two passes of the same job kind: first the sampled estimate (large tensors
// measured on a row sample, core/quant/sensitivity.h), which fills the heatmap in seconds, then — when any
// cell was sampled — an exact pass that replaces the estimates in place (cached exact cells come back at
// once). The store counts as running until the exact pass ends; started and finished are emitted once per
// compute(). A cancel during the exact pass keeps the estimates. setSampling(false) skips the estimate.

#include "core/model/model.h"
#include "core/quant/imatrix.h"
#include "core/quant/sensitivity.h"

#include <QObject>
#include <QStringList>
#include <QPointer>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

namespace qs {

class Job;
class JobHandle;
class JobRunner;
class SensitivityJob;

class SensitivityStore final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SensitivityStore)

public:
    explicit SensitivityStore(QObject* parent = nullptr);
    ~SensitivityStore() override;

    // The runner jobs start on (the window's, so they show in its job area); without one the store
    // makes its own.
    void setJobRunner(JobRunner* runner) { m_runner = runner; }

    // Drops all results (cancelling a running computation) and remembers the model.
    void setModel(std::shared_ptr<const Model> model);
    const std::shared_ptr<const Model>& model() const { return m_model; }

    // The importance matrix the cells are measured (and the k-quants quantized) with; nullptr: none.
    // Changing it drops the results (cancelling a running computation). Another model clears it.
    void setImportance(std::shared_ptr<const ImportanceMatrix> importance);
    const std::shared_ptr<const ImportanceMatrix>& importance() const { return m_importance; }

    // The candidate formats; defaults to defaultSensitivityFormats().
    void setFormats(const QStringList& formats) { m_formats = formats; }
    QStringList formats() const { return m_formats; }
    // The tensors the matrix covers (isSensitivityCandidate), in model order.
    QStringList tensors() const;
    // Weight tensors (2-D and up) the matrix does not cover, as "name: reason".
    QStringList skipped() const;

    // Computes every cell (cached cells come back at once). One worker per thread of the policy but one.
    void compute();
    // Estimate first, then refine to exact (the default); false: the exact pass only.
    void setSampling(bool on) { m_sampling = on; }
    bool sampling() const { return m_sampling; }
    // True while the exact pass replaces sampled estimates.
    bool isRefining() const { return m_running && m_phase == Phase::Refine; }
    // Every cell is there: not running, or only refining sampled estimates to exact values.
    bool hasEveryCell() const { return !m_running || isRefining(); }
    // Measures ΔKL instead (core/infer/klsensitivity.h: each tensor alone quantized, the model run on the
    // text): the cells carry deltaKl and its score −10·log10(ΔKL) where the views read SQNR, and
    // errorTableFromSensitivity(results()) gives ΔKL, so the budget fit minimises the summed ΔKL. Drops the
    // cells measured so far.
    void computeKl(const QString& textFile, uint64_t maxTokens = 4096);
    // What the current cells measure.
    enum class Measure { WeightError, DeltaKl };
    Measure measure() const { return m_measure; }
    void cancel();
    bool isRunning() const { return m_running; }
    double progress() const;

    // nullptr until that cell arrived.
    const SensitivityResult* result(const QString& tensor, const QString& format) const;
    size_t resultCount() const { return m_results.size(); }
    // Every cell that arrived (failed ones included), for errorTableFromSensitivity.
    std::vector<SensitivityResult> results() const;

    void setDeliveryInterval(int ms) { m_deliveryMs = ms; }

signals:
    void started();
    void resultsReady(const std::vector<qs::SensitivityResult>& results);
    void progressChanged(double fraction, const QString& stage);
    void finished(bool cancelled, const QString& error);
    void cleared();

private:
    JobRunner* runner();
    void deliver();
    void reset();
    void start(std::shared_ptr<Job> job, std::function<std::vector<SensitivityResult>()> take);
    void startWeightPass(bool exact);
    // Progress of the whole computation from the running pass's fraction.
    double overall(double passFraction) const;

    std::shared_ptr<const Model> m_model;
    std::shared_ptr<const ImportanceMatrix> m_importance;
    QStringList m_formats;
    std::map<std::pair<QString, QString>, SensitivityResult> m_results;
    JobRunner* m_runner = nullptr;
    std::shared_ptr<Job> m_job; // the running (or last) job; a replaced job is ignored
    std::function<std::vector<SensitivityResult>()> m_take; // the job's finished cells, as results
    Measure m_measure = Measure::WeightError;
    QPointer<JobHandle> m_handle;
    int m_deliveryMs = 100;
    bool m_running = false;
    bool m_sampling = true;
    // Single: one pass (exact weight error, or ΔKL); Estimate, Refine: the two weight-error passes.
    enum class Phase { Single, Estimate, Refine };
    Phase m_phase = Phase::Single;
    bool m_anySampled = false; // a cell of the estimate pass was sampled
};

} // namespace qs
