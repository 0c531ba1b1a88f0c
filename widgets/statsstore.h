#pragma once
// Statistics of the open model's tensors, shared by every analysis view. The whole-model analysis runs
// as a core StatsJob through the one job runner (widgets/jobrunner.h); finished tensors are queued by the
// worker and drained on the runner's 10 Hz progress tick, so a model with thousands of tensors never
// floods the event loop.

#include "core/model/model.h"
#include "core/stats/stats.h"

#include <QObject>
#include <QPointer>

#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace qs {

class JobHandle;
class JobRunner;
class StatsJob;

class StatsStore final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(StatsStore)

public:
    explicit StatsStore(QObject* parent = nullptr);
    ~StatsStore() override;

    // The runner jobs start on (the window's, so they show in its job area); without one the store
    // makes its own.
    void setJobRunner(JobRunner* runner) { m_runner = runner; }

    // Drops all results (cancelling a running analysis) and remembers the model.
    void setModel(std::shared_ptr<const Model> model);
    const std::shared_ptr<const Model>& model() const { return m_model; }

    // Analyses every tensor without results yet (cached ones come back at once). options.threads == 0
    // means one worker per thread of the thread policy but one, so the UI thread keeps a core.
    void analyze(const StatsOptions& options = {});
    void cancel();
    bool isRunning() const { return m_running; }
    double progress() const;

    // nullptr until the tensor is done.
    const TensorStats* stats(size_t tensorIndex) const;
    const TensorStats* stats(const QString& tensorName) const;
    // The same, shareable: views keep what they plot alive across a model change.
    std::shared_ptr<const TensorStats> shared(size_t tensorIndex) const;
    int tensorIndex(const QString& tensorName) const; // -1 when unknown
    size_t doneCount() const { return m_done; }

    // Interval at which finished tensors are handed to the UI thread.
    void setDeliveryInterval(int ms) { m_deliveryMs = ms; }

signals:
    void started();
    // Tensors whose statistics just arrived (indices into model()->tensors()).
    void tensorsReady(const std::vector<size_t>& indices);
    void progressChanged(double fraction, const QString& stage);
    // cancelled: stopped by cancel(); error: a failure of the analysis as a whole.
    void finished(bool cancelled, const QString& error);
    void cleared();

private:
    JobRunner* runner();
    void deliver();

    std::shared_ptr<const Model> m_model;
    std::vector<std::shared_ptr<const TensorStats>> m_stats;
    size_t m_done = 0;
    JobRunner* m_runner = nullptr;
    std::shared_ptr<StatsJob> m_job; // the running (or last) job; a replaced job is ignored
    QPointer<JobHandle> m_handle;
    int m_deliveryMs = 100;
    bool m_running = false;
};

} // namespace qs
