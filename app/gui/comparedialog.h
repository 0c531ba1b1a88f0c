#pragma once
// File › Compare With… (and the Quantize dialog's Compare with Original): compares the open model with a second
// one tensor by tensor — a quantized output, llama-quantize's GGUF, a converted checkpoint — as a CompareJob
// through the window's JobRunner (job area: progress, ETA, cancel). Rows stream into a sortable table (types,
// SQNR, RMSE, max |Δ|, cosine; the reason for tensors that cannot be compared); selecting one draws the exact
// histogram of its difference (quantized − original). One dialog per window (showFor), non-modal.

#include "core/quant/compare.h"
#include "widgets/jobrunner.h"

#include <QDialog>
#include <QPointer>
#include <memory>

class QCheckBox;
class QCustomPlot;
class QLabel;
class QLineEdit;
class QMenu;
class QPushButton;
class QSortFilterProxyModel;
class QTableView;

namespace qs {

class CompareModel;
class MainWindow;

class CompareDialog final : public QDialog {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(CompareDialog)

public:
    static CompareDialog* showFor(MainWindow* window);
    // Adds File › Compare With… to the menu.
    static void addAction(QMenu* menu, MainWindow* window);

    void setCandidate(const QString& path);
    QString candidate() const;
    // Starts the comparison of the open model with the candidate; false (with the reason shown) when it cannot.
    bool run();
    void cancelRun();
    bool isRunning() const { return m_handle != nullptr; }
    CompareModel* model() const { return m_model; }
    QTableView* table() const { return m_table; }
    QCustomPlot* plot() const { return m_plot; }
    QString summaryText() const;
    // Draws the difference histogram of the model's row (source row, not the view's).
    void showTensor(int row);

signals:
    void runFinished(qs::JobStatus status, const QString& error);

private:
    explicit CompareDialog(MainWindow* window);
    void refresh(); // after a model change
    void drain();
    void onFinished(JobStatus status, const QString& error);
    void updateSummary();

    MainWindow* m_window;
    QLabel* m_reference;
    QLineEdit* m_candidate;
    QPushButton* m_run;
    QPushButton* m_stop;
    QLabel* m_summary;
    CompareModel* m_model;
    QSortFilterProxyModel* m_proxy;
    QTableView* m_table;
    QCustomPlot* m_plot;
    QCheckBox* m_logY;
    QLabel* m_plotTitle;
    QPointer<JobHandle> m_handle;
    std::shared_ptr<CompareJob> m_job;
    QString m_status;
    int m_shownRow = -1;
};

} // namespace qs
