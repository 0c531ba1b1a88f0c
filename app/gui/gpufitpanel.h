#pragma once
// The GPU page of the fit dialog: a GPU, context, batch, runtime and KV-cache type ("auto": chosen with the
// weights), "Compute" runs jointFit (core/plan/gpufit.h) as a GpuFitJob, and the table shows one
// alternative per KV-cache type (best plan error, certified gap, weights, longest context), the chosen one
// selected; when nothing fits, the smallest changes. The dialog applies the selected alternative.

#include "core/jobs/gpufitjob.h"

#include <QWidget>
#include <memory>
#include <optional>

class QComboBox;
class QLabel;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace qs {

class FootprintPanel;
class JobHandle;
class JobRunner;
class PlanDocument;

class GpuFitPanel final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(GpuFitPanel)

public:
    // FOOTPRINT (may be null) supplies the starting GPU, context, batch and runtime.
    GpuFitPanel(PlanDocument* plan, JobRunner* runner, BudgetProblem problem, const FootprintPanel* footprint,
                QWidget* parent = nullptr);

    void compute();
    JobHandle* computeHandle() const { return m_handle; }
    bool hasResult() const { return m_result.has_value(); }
    const JointFitResult* result() const { return m_result ? &*m_result : nullptr; }
    // The alternative selected in the table (the chosen one after a compute); nullopt when none fits.
    std::optional<size_t> selected() const;
    // The request and GPU of the last compute.
    const JointFitRequest& request() const { return m_request; }
    QString gpuId() const { return m_gpuId; }
    QTableWidget* table() const { return m_table; }
    QLabel* summary() const { return m_summary; }

signals:
    void computed();
    void failed(const QString& error);

private:
    void show(const JointFitResult& fit);

    PlanDocument* m_plan;
    JobRunner* m_runner;
    BudgetProblem m_problem;
    GpuCatalog m_catalog;
    std::shared_ptr<GpuFitJob> m_job;
    JobHandle* m_handle = nullptr;
    std::optional<JointFitResult> m_result;
    JointFitRequest m_request;
    QString m_gpuId;

    QComboBox* m_gpu = nullptr;
    QSpinBox* m_context = nullptr;
    QSpinBox* m_batch = nullptr;
    QComboBox* m_runtime = nullptr;
    QComboBox* m_kv = nullptr;
    QPushButton* m_computeButton = nullptr;
    QTableWidget* m_table = nullptr;
    QLabel* m_summary = nullptr;
};

} // namespace qs
