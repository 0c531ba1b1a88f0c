#pragma once
// The sensitivity matrix of the open model, computed in the background (qs::computeSensitivity) the same way
// StatsStore runs the statistics: the worker queues finished cells, a 10 Hz timer hands them to the UI thread
// in batches, and a model change simply abandons a running worker (it keeps its own state alive).

#include "core/model/model.h"
#include "core/quant/sensitivity.h"

#include <QObject>
#include <QStringList>
#include <QTimer>
#include <map>
#include <memory>
#include <utility>
#include <vector>

namespace qs {

class SensitivityStore final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SensitivityStore)

public:
    explicit SensitivityStore(QObject* parent = nullptr);
    ~SensitivityStore() override;

    // Drops all results (cancelling a running computation) and remembers the model.
    void setModel(std::shared_ptr<const Model> model);
    const std::shared_ptr<const Model>& model() const { return m_model; }

    // The candidate formats; defaults to defaultSensitivityFormats().
    void setFormats(const QStringList& formats) { m_formats = formats; }
    QStringList formats() const { return m_formats; }
    // The tensors the matrix covers (isSensitivityCandidate), in model order.
    QStringList tensors() const;

    // Computes every cell (cached cells come back at once). One worker per core but one.
    void compute();
    void cancel();
    bool isRunning() const { return m_running; }
    double progress() const;

    // nullptr until that cell arrived.
    const SensitivityResult* result(const QString& tensor, const QString& format) const;
    size_t resultCount() const { return m_results.size(); }
    // Every cell that arrived (failed ones included), for errorTableFromSensitivity.
    std::vector<SensitivityResult> results() const;

    void setDeliveryInterval(int ms) { m_deliveryTimer.setInterval(ms); }

signals:
    void started();
    void resultsReady(const std::vector<qs::SensitivityResult>& results);
    void progressChanged(double fraction, const QString& stage);
    void finished(bool cancelled, const QString& error);
    void cleared();

private:
    struct Shared;
    void deliver();

    std::shared_ptr<const Model> m_model;
    QStringList m_formats;
    std::map<std::pair<QString, QString>, SensitivityResult> m_results;
    std::shared_ptr<Shared> m_shared;
    QTimer m_deliveryTimer;
    bool m_running = false;
};

} // namespace qs
