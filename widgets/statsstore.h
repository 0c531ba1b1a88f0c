#pragma once
// Statistics of the open model's tensors, shared by every analysis view. The whole-model analysis runs
// in the background (qs::analyzeModel); finished tensors are queued by the worker and delivered to the UI
// thread in batches by a 10 Hz timer, so a model with thousands of tensors never floods the event loop.

#include "core/model/model.h"
#include "core/stats/stats.h"

#include <QObject>
#include <QTimer>

#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace qs {

class PolledJobProgress;

class StatsStore final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(StatsStore)

public:
    explicit StatsStore(QObject* parent = nullptr);
    ~StatsStore() override;

    // Drops all results (cancelling a running analysis) and remembers the model.
    void setModel(std::shared_ptr<const Model> model);
    const std::shared_ptr<const Model>& model() const { return m_model; }

    // Analyses every tensor without results yet (cached ones come back at once). options.threads == 0
    // means one worker per core but one, so the UI thread keeps a core.
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
    void setDeliveryInterval(int ms) { m_deliveryTimer.setInterval(ms); }

signals:
    void started();
    // Tensors whose statistics just arrived (indices into model()->tensors()).
    void tensorsReady(const std::vector<size_t>& indices);
    void progressChanged(double fraction, const QString& stage);
    // cancelled: stopped by cancel(); error: a failure of the analysis as a whole.
    void finished(bool cancelled, const QString& error);
    void cleared();

private:
    struct Shared; // worker-to-UI queue, outlives this object if a worker still runs
    void deliver();
    void onWorkerDone();

    std::shared_ptr<const Model> m_model;
    std::vector<std::shared_ptr<const TensorStats>> m_stats;
    size_t m_done = 0;
    std::shared_ptr<Shared> m_shared;
    QTimer m_deliveryTimer;
    bool m_running = false;
};

} // namespace qs
