#pragma once
// The Evaluate tab: runs the evaluation job (core/infer/evaluate.h) on the current plan through the window's
// JobRunner (the job area shows its progress and cancel), shows perplexity of the original and the quantized
// model, the KL divergence statistics and a per-chunk KL plot, and keeps the last results of several plans
// side by side in a comparison table. The original's distributions are kept between runs on the same text
// and context, so comparing a second plan costs one pass over the text instead of two.

#include "core/infer/evaluate.h"
#include "core/infer/methodcompare.h"
#include "core/plan/memory.h"

#include <QString>
#include <QWidget>
#include <functional>
#include <memory>
#include <optional>

class QCheckBox;
class QCustomPlot;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace qs {

class JobHandle;
class JobRunner;
class Model;
class PlanSession;
class SensitivityStore;

class EvaluatePanel final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(EvaluatePanel)

public:
    using ModelGetter = std::function<std::shared_ptr<const Model>()>;
    // sensitivity: the window's matrix, read for the predicted KL when it holds measured ΔKL (may be null).
    EvaluatePanel(JobRunner* runner, PlanSession* session, ModelGetter model,
                  const SensitivityStore* sensitivity = nullptr, QWidget* parent = nullptr);
    ~EvaluatePanel() override;

    // Where the bundled evaluation text is (source tree or installed), empty when missing.
    static QString defaultTextPath();

    // Starts an evaluation of the current plan; false (with the reason in the status line) when it cannot.
    bool evaluate();
    // Evaluates a quantized file of the open model (a quantize output: RTN, GPTQ, AWQ) against the original on
    // the same text; its row joins the comparison table.
    bool evaluateFile(const QString& path);
    // Quantizes the current plan with each method into a temporary file (RTN, GPTQ and AWQ calibrated on
    // `calibrationText`) and evaluates each against the original (core/infer/methodcompare.h): one row per
    // method; a method that cannot run is named in the status line with the reason.
    bool compareMethods(const QString& calibrationText, std::vector<QuantMethod> methods);
    // Asks for the calibration text and the methods, then compareMethods().
    void chooseAndCompareMethods();
    bool isRunning() const { return m_handle != nullptr; }

    // For tests and screenshots.
    QLineEdit* textEdit() const { return m_text; }
    QSpinBox* contextSpin() const { return m_ctx; }
    QSpinBox* chunksSpin() const { return m_chunks; }
    QPushButton* evaluateButton() const { return m_run; }
    QPushButton* compareMethodsButton() const { return m_compare; }
    QCheckBox* llamaArithmeticBox() const { return m_llamaArithmetic; }
    // The last method comparison (for tests).
    const MethodComparisonResult& lastComparison() const { return m_lastComparison; }
    QTableWidget* comparisonTable() const { return m_table; }
    QCustomPlot* chunkPlot() const { return m_plot; }
    QLabel* statusLabel() const { return m_status; }
    const EvalResult& lastResult() const { return m_last; }
    // The parameters of the last started run (the plan it evaluated), for tests.
    const EvalParams& lastParams() const { return m_lastParams; }

    // The plan's predicted KL divergence: the sum of the measured ΔKL of its tensors (the window's
    // sensitivity matrix after Measure ΔKL Sensitivity); nullopt when not every planned tensor has one.
    std::optional<double> predictedKl(const Plan& plan) const;

signals:
    // Once per run, after the views were updated (status is the job's).
    void evaluated(qs::JobStatus status, const QString& error);

private:
    void onFinished(JobStatus status, const QString& error);
    void onMethodsFinished(JobStatus status, const QString& error);
    void showResult(const EvalResult& r);
    void addComparisonRow(const EvalResult& r);
    void modelChanged();
    QString planName() const;

    JobRunner* m_runner;
    PlanSession* m_session;
    ModelGetter m_model;
    const Model* m_shownModel = nullptr; // the model the table's rows belong to
    std::shared_ptr<EvalJob> m_job;
    std::shared_ptr<MethodComparisonJob> m_compareJob;
    MethodComparisonResult m_lastComparison;
    JobHandle* m_handle = nullptr;
    EvalParams m_lastParams;
    EvalResult m_last;
    std::shared_ptr<const EvalBaseline> m_baseline;
    QString m_runPlanName;
    QString m_tableKey; // text, context and chunks of the table's rows
    double m_runBpw = 0;
    uint64_t m_runBytes = 0;
    std::optional<double> m_runPredicted;
    // Whether a run can start (no run, a model, a text file); says why not in the status line.
    bool ready();
    // The tab's input: the model, text, context, chunks, arithmetic and the kept baseline.
    EvalParams tabInput() const;
    bool start(EvalParams params, const QString& name, const WeightSummary& weights, std::optional<double> predicted); // the plan's summed ΔKL when the matrix holds it

    QLineEdit* m_text;
    QSpinBox* m_ctx;
    QSpinBox* m_chunks;
    QPushButton* m_run;
    QPushButton* m_compare;
    QCheckBox* m_llamaArithmetic;
    QLabel* m_status;
    QLabel* m_summary;
    QCustomPlot* m_plot;
    QTableWidget* m_table;
    const SensitivityStore* m_sensitivity = nullptr;
};

} // namespace qs
