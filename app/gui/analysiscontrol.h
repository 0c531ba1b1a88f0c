#pragma once
// Runs the analyses of the open model, statistics and the sensitivity matrix, in the background: starts
// and cancels them, keeps the Sensitivity tab told what is going on, hands the measured errors to the
// footprint panel, and says how each run ended. The stores do the work; this decides when.

#include "core/model/model.h"

#include <QObject>
#include <memory>

class QAction;
class QMenu;

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

    // Adds Analyse Model, Cancel Analysis, Compute / Cancel Sensitivity Matrix to MENU; they are enabled
    // as the model and the runs allow.
    void addActions(QMenu* menu);
    QAction* analyzeAction() const { return m_analyzeAction; }

    void setModel(std::shared_ptr<const Model> model);
    // Whether the model has weights to analyse (not derived from config.json alone).
    bool canAnalyze() const;

    void analyze();
    void cancelAnalysis();
    bool isAnalyzing() const;
    void computeSensitivity();
    // The ΔKL matrix on a calibration text (SensitivityStore::computeKl): Fit to Budget then minimises ΔKL.
    void measureKl(const QString& textFile);
    void cancelSensitivity();
    bool isComputingSensitivity() const;

signals:
    void analysisStarted();
    void analysisFinished(bool cancelled);
    void sensitivityStarted();
    void sensitivityFinished(bool cancelled);
    void message(const QString& text, int timeoutMs);
    // The Compute Sensitivity Matrix action was triggered: the matrix is worth showing.
    void sensitivityViewRequested();

private:
    void onAnalysisFinished(bool cancelled, const QString& error);
    void onSensitivityFinished(bool cancelled, const QString& error);

    StatsStore* m_stats = nullptr;
    SensitivityStore* m_sensitivity = nullptr;
    SensitivityView* m_sensitivityView = nullptr;
    FootprintPanel* m_footprint = nullptr;
    std::shared_ptr<const Model> m_model;
    QAction* m_analyzeAction = nullptr;
    QAction* m_cancelAnalysisAction = nullptr;
};

} // namespace qs
