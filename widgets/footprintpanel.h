#pragma once
// Live memory footprint of the plan: total weight size, average bits per weight, and for each chosen GPU
// a stacked bar (weights / KV cache / overhead) against the memory the runtime may use, with fit,
// headroom, maximum context and a bandwidth bound on decode speed (core/plan/memory.h).

#include "core/plan/budget.h"
#include "core/plan/gpucatalog.h"
#include "core/plan/memory.h"

#include <QWidget>

#include <vector>

class QAction;
class QComboBox;
class QCustomPlot;
class QDoubleSpinBox;
class QFormLayout;
class QLabel;
class QListWidget;
class QSpinBox;
class QTableWidget;
class QToolButton;

namespace qs {

class PlanDocument;

class FootprintPanel final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(FootprintPanel)

public:
    explicit FootprintPanel(PlanDocument* document, QWidget* parent = nullptr);

    // GPU ids (catalogue keys) to compare against.
    void setGpus(const QStringList& ids);
    // Measured errors (errorTableFromSensitivity) for the predicted-error line; empty: the size proxy.
    void setErrorTable(ErrorTable errors);
    QStringList gpus() const;
    // The figures shown, for tests.
    uint64_t weightBytes() const { return m_weights.bytes; }
    double bitsPerWeight() const;
    const std::vector<GpuFit>& fits() const { return m_fits; }
    QCustomPlot* plot() const { return m_plot; }
    QString summaryText() const; // the weights / predicted-error lines, as rich text
    // The context, batch, KV type, runtime with its settings, and GPU count shown.
    FootprintRequest currentRequest() const { return request(); }
    // Shows a fit's settings: its context, batch, KV type, runtime settings and GPU count, with the GPU checked.
    void showRequest(const QString& gpuId, const FootprintRequest& request);

public slots:
    void refresh();

private:
    FootprintRequest request() const;
    void showRuntimeSettings(); // only the chosen runtime's settings are offered

    PlanDocument* m_document;
    GpuCatalog m_catalog;
    WeightSummary m_weights;
    ErrorTable m_errors;
    std::vector<GpuFit> m_fits;
    std::vector<const GpuSpec*> m_shownGpus;

    QLabel* m_summary = nullptr;
    QSpinBox* m_context = nullptr;
    QSpinBox* m_batch = nullptr;
    QComboBox* m_kvType = nullptr;
    QComboBox* m_runtime = nullptr;
    QToolButton* m_options = nullptr; // the runtime's settings: llama.cpp -fa / --swa-full, transformers' attention
    QAction* m_flashAttention = nullptr;
    QAction* m_swaFull = nullptr;
    QAction* m_eager = nullptr;
    QAction* m_padded = nullptr;
    QDoubleSpinBox* m_utilization = nullptr; // vLLM --gpu-memory-utilization
    QSpinBox* m_gpuCount = nullptr;          // tensor parallel degree
    QFormLayout* m_form = nullptr;
    QListWidget* m_gpuList = nullptr;
    QCustomPlot* m_plot = nullptr;
    QTableWidget* m_table = nullptr;
};

} // namespace qs
