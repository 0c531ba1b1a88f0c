#pragma once
// Runs the analyses of the open model, statistics and the sensitivity matrix, in the background: starts
// and cancels them, keeps the Sensitivity tab told what is going on, hands the measured errors to the
// footprint panel, and says how each run ended. The stores do the work; this decides when.

#include "core/model/model.h"

#include <QObject>
#include <memory>

namespace qs {

class FootprintPanel;
class SensitivityStore;
class SensitivityView;
class StatsStore;

class AnalysisControl final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(AnalysisControl)

public:
    AnalysisControl(StatsStore* stats, SensitivityStore* sensitivity, SensitivityView* sensitivityView,
                    FootprintPanel* footprint, QObject* parent = nullptr);

    void setModel(std::shared_ptr<const Model> model);
    // Whether the model has weights to analyse (not derived from config.json alone).
    bool canAnalyze() const;

    void analyze();
    void cancelAnalysis();
    bool isAnalyzing() const;
    void computeSensitivity();
    void cancelSensitivity();
    bool isComputingSensitivity() const;

signals:
    void analysisStarted();
    void analysisFinished(bool cancelled);
    void sensitivityStarted();
    void sensitivityFinished(bool cancelled);
    void message(const QString& text, int timeoutMs);

private:
    void onAnalysisFinished(bool cancelled, const QString& error);
    void onSensitivityFinished(bool cancelled, const QString& error);

    StatsStore* m_stats = nullptr;
    SensitivityStore* m_sensitivity = nullptr;
    SensitivityView* m_sensitivityView = nullptr;
    FootprintPanel* m_footprint = nullptr;
    std::shared_ptr<const Model> m_model;
};

} // namespace qs
