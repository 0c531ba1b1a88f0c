#pragma once
// The non-modal Quantize dialog (File › Quantize…, the Plan tab's Quantize button): writes the open model
// quantized with the current plan. The four targets (GGUF, compressed-tensors, GPTQ, fake-quant) are
// enabled only when they can express the plan for the model's format; each disabled one says why
// (quantizeTargetProblems). The run is a QuantizeJob started through the window's JobRunner, so it shows in
// the job area with its progress, ETA and cancel button; the dialog mirrors the progress and can stop it.
// At the end the dialog shows the bytes written against the prediction, the time and the throughput, a
// sortable per-tensor table (format, bytes, sampled SQNR), "Open result" and "Show in folder"; a failure or a
// cancel is shown in the dialog (the core leaves no partial output). One dialog per window (showFor).

#include "core/quant/quantize.h"
#include "core/util/job.h"

#include <QDialog>
#include <array>
#include <functional>
#include <memory>

class QCheckBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QRadioButton;
class QSpinBox;
class QTableView;
class QWidget;

namespace qs {

class JobHandle;
class MainWindow;
class QuantizeResultModel;

class QuantizeDialog final : public QDialog {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(QuantizeDialog)

public:
    // Shows the window's Quantize dialog, creating it the first time, and raises it.
    static QuantizeDialog* showFor(MainWindow* window);

    QuantizeTarget target() const { return m_target; }
    // Selects a target (ignored when it is disabled); returns whether it is now selected.
    bool setTarget(QuantizeTarget target);
    bool isTargetEnabled(QuantizeTarget target) const;
    // Why a target is disabled (empty when enabled).
    QString targetReason(QuantizeTarget target) const;

    QString outputPath() const;
    void setOutputPath(const QString& path);
    void setImportanceFile(const QString& path);
    // The text GPTQ and AWQ tiers calibrate on (enabled when the plan has such a tier).
    void setCalibrationFile(const QString& path);
    // GGUF: shards of at most this much tensor data (GiB; 0: one file).
    void setSplitGiB(double gib);
    void setThreads(int threads); // 0: automatic
    // GGUF: re-quantize tensors that are already quantized (lower quality; off by default).
    void setAllowRequantize(bool allow);

    // What the Quantize button does. False, with the reason shown in the dialog, when it cannot start.
    bool run();
    void cancelRun();
    bool isRunning() const { return m_handle != nullptr; }
    JobHandle* runHandle() const { return m_handle; }
    // The last successful run's result (nullptr before one).
    const QuantizeResult* result() const;
    // The message line: the summary after a run, the error after a failure.
    QString messageText() const;
    QuantizeResultModel* resultModel() const { return m_resultModel; }
    QTableView* resultView() const { return m_table; }
    // Where "Open result" opens (the output file or checkpoint folder), empty before a successful run.
    QString resultPath() const { return m_resultPath; }
    // For tests: called with every job before it starts (e.g. to install a progress handler).
    void setJobHook(std::function<void(QuantizeJob&)> hook) { m_jobHook = std::move(hook); }

signals:
    // A run ended (after the dialog has shown its outcome).
    void runFinished(qs::JobStatus status, const QString& error);

private:
    explicit QuantizeDialog(MainWindow* window);
    void refresh();           // targets, defaults and the prediction for the current model and plan
    void updateDefaultPath(); // unless the user chose a path
    void updatePrediction();
    void updateGgufOptions(); // importance file and re-quantize: GGUF only
    void setRunning(bool running);
    void showError(const QString& text);
    void onProgress();
    void onFinished(JobStatus status, const QString& error);
    void browseOutput();
    void browseImportance();
    void browseCalibration();

    MainWindow* m_window = nullptr;
    QuantizeTarget m_target = QuantizeTarget::Gguf;
    std::array<QRadioButton*, 4> m_targetButtons{};
    std::array<QLabel*, 4> m_reasonLabels{};
    std::array<QString, 4> m_reasons;
    QLabel* m_intro = nullptr;
    QLineEdit* m_output = nullptr;
    bool m_outputChosen = false;
    QLineEdit* m_importance = nullptr;
    bool m_importanceChosen = false; // typed or browsed: no longer follows the session's importance
    QPushButton* m_importanceBrowse = nullptr;
    QLineEdit* m_calibration = nullptr;
    QPushButton* m_calibrationBrowse = nullptr;
    QLabel* m_methodLabel = nullptr;
    QSpinBox* m_threads = nullptr;
    QDoubleSpinBox* m_split = nullptr;
    QCheckBox* m_requantize = nullptr;
    QLabel* m_prediction = nullptr;
    QProgressBar* m_progress = nullptr;
    QLabel* m_message = nullptr;
    QWidget* m_summary = nullptr;
    QTableView* m_table = nullptr;
    QuantizeResultModel* m_resultModel = nullptr;
    QPushButton* m_runButton = nullptr;
    QPushButton* m_stopButton = nullptr;
    QPushButton* m_openButton = nullptr;
    QPushButton* m_folderButton = nullptr;

    std::shared_ptr<QuantizeJob> m_job;
    JobHandle* m_handle = nullptr;
    std::function<void(QuantizeJob&)> m_jobHook;
    bool m_hasResult = false;
    QString m_resultPath;
};

} // namespace qs
