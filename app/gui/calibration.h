#pragma once
// Calibration in the GUI (Analysis › Calibrate…, Load Importance File…, Clear Importance): runs the core
// CalibrateJob on a text through the window's JobRunner (the job area shows its progress, ETA and cancel),
// writes llama.cpp's importance file beside the model and makes it the session's importance: the
// sensitivity matrix is then weighted by it (and its k-quant cells quantized with it, as llama-quantize
// --imatrix does) and the Quantize dialog offers it. The importance belongs to the open model; opening
// another model clears it.
//
// The same run collects activation statistics (mean |x|, max |x| per input channel; written as an .h5 file
// when the dialog names one): they join the channel view's "Input activations" view. Loading an .h5
// activation statistics file as the importance does the same.

#include "app/gui/errorpresenter.h"
#include "core/infer/activationstats.h"
#include "core/model/model.h"
#include "core/quant/imatrix.h"
#include "core/util/job.h"
#include "widgets/jobrunner.h"

#include <QDialog>
#include <QObject>
#include <QPointer>
#include <memory>

class QAction;
class QLabel;
class QLineEdit;
class QMenu;
class QPushButton;
class QSpinBox;

namespace qs {

class CalibrateDialog;
class ChannelView;
class SensitivityStore;

class CalibrationControl final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(CalibrationControl)

public:
    CalibrationControl(JobRunner* runner, SensitivityStore* sensitivity, ErrorPresenter presentError,
                       QWidget* window);

    // Calibrate…, Load Importance File…, Clear Importance; enabled as the model allows.
    void addActions(QMenu* menu);
    void setModel(std::shared_ptr<const Model> model);
    const std::shared_ptr<const Model>& model() const { return m_model; }
    JobRunner* runner() const { return m_runner; }

    // The session's importance (nullptr: none) and the file it came from.
    const std::shared_ptr<const ImportanceMatrix>& importance() const { return m_importance; }
    QString importanceFile() const { return m_importanceFile; }
    // The session's activation statistics (nullptr: none; no Hessians are kept here).
    const std::shared_ptr<const ActivationStats>& activations() const { return m_activations; }
    // The channel view that shows them (and the importance's RMS where there are no statistics).
    void showActivationsIn(ChannelView* view);
    // Loads an importance file (GGUF, legacy .dat, or activation statistics .h5) for the open model as a
    // job in the job area (files are read off the UI thread); importanceLoaded() reports the outcome, an error
    // is presented. False when no job started (one is running, or no model).
    bool loadImportance(const QString& path);
    bool isLoading() const { return m_loading != nullptr; }
    void setImportance(std::shared_ptr<const ImportanceMatrix> importance, const QString& file,
                       std::shared_ptr<const ActivationStats> activations = nullptr);
    void clearImportance();
    // Opens (or raises) the Calibrate dialog.
    CalibrateDialog* calibrate();

signals:
    void importanceChanged();
    void importanceLoaded(bool ok);
    void message(const QString& text, int timeoutMs);

private:
    void updateActions();
    void browseImportance();

    JobRunner* m_runner;
    SensitivityStore* m_sensitivity;
    ErrorPresenter m_presentError;
    QWidget* m_window;
    std::shared_ptr<const Model> m_model;
    std::shared_ptr<const ImportanceMatrix> m_importance;
    std::shared_ptr<const ActivationStats> m_activations;
    QString m_importanceFile;
    QPointer<ChannelView> m_channels;
    QPointer<JobHandle> m_loading;
    QPointer<CalibrateDialog> m_dialog;
    QAction* m_calibrateAction = nullptr;
    QAction* m_loadAction = nullptr;
    QAction* m_clearAction = nullptr;
};

// Text, context, chunks and the output file; Calibrate starts the job, Stop cancels it. On success the
// written file becomes the session's importance.
class CalibrateDialog final : public QDialog {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(CalibrateDialog)

public:
    CalibrateDialog(CalibrationControl* control, QWidget* parent);

    // The default output: beside the model, "<model>.imatrix.gguf".
    static QString defaultOutput(const Model& model);
    void refresh(); // after a model change

    QLineEdit* textEdit() const { return m_text; }
    QLineEdit* outputEdit() const { return m_output; }
    QLineEdit* statsEdit() const { return m_stats; } // empty: no activation statistics file
    QSpinBox* contextSpin() const { return m_ctx; }
    QSpinBox* chunksSpin() const { return m_chunks; }
    QLabel* statusLabel() const { return m_status; }
    bool run();
    bool isRunning() const { return m_handle != nullptr; }

signals:
    void finished(qs::JobStatus status, const QString& error);

private:
    void onFinished(JobStatus status, const QString& error, const QString& output, const QString& text,
                    const QString& stats);

    CalibrationControl* m_control;
    QLineEdit* m_text;
    QLineEdit* m_output;
    QLineEdit* m_stats;
    QSpinBox* m_ctx;
    QSpinBox* m_chunks;
    QLabel* m_status;
    QPushButton* m_run;
    QPushButton* m_stop;
    QPointer<JobHandle> m_handle;
    std::shared_ptr<Job> m_job;
};

} // namespace qs
