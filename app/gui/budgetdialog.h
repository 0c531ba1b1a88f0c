#pragma once
// The non-blocking fit-to-budget dialog. Size page: the size / error trade-off curve to pick a point on, or a
// budget to type; "Fit" closes it and solves in the background as a BudgetJob through the job runner (its
// row in the job area can cancel it). GPU page (GpuFitPanel): the weights and the KV-cache type fitted
// together to a GPU at a context; "Fit" computes the alternatives first, then applies the selected one and
// shows its settings in the footprint panel. Solutions are applied to the plan as one undo step. A
// cancel, a failure or a model opened meanwhile leaves the plan as it was. The dialog deletes itself when
// it is done.

#include "app/gui/errorpresenter.h"
#include "core/plan/budget.h"
#include "core/util/job.h"

#include <QDialog>
#include <functional>

class QDoubleSpinBox;
class QTabWidget;

namespace qs {

class BudgetJob;
class FootprintPanel;
class GpuFitPanel;
class JobHandle;
class JobRunner;
class PlanDocument;

class BudgetDialog final : public QDialog {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(BudgetDialog)

public:
    // Opens the dialog for the plan's current state; ERRORS are the measured sensitivities (empty: the
    // size-based proxy). Returns nullptr, after presenting why, when the budget problem cannot be built.
    static BudgetDialog* openFor(PlanDocument* plan, JobRunner* runner, const ErrorTable& errors,
                                 ErrorPresenter presentError, QWidget* parent, FootprintPanel* footprint = nullptr);
    GpuFitPanel* gpuPage() const { return m_gpuPage; }
    // Shows the GPU page (or the size page).
    void showGpuPage(bool gpu);

    // The running solve, nullptr before "Fit" and after it ended.
    JobHandle* solveHandle() const { return m_handle; }

    void done(int result) override;

signals:
    // A solution was applied; the text says how well it fits.
    void fitted(const QString& message);

private:
    BudgetDialog(PlanDocument* plan, JobRunner* runner, ErrorPresenter presentError, QWidget* parent);
    void solve(uint64_t budgetBytes);
    void onSolved(JobStatus status, const QString& error, uint64_t budgetBytes);
    void applyGpuFit();

    PlanDocument* m_plan = nullptr;
    JobRunner* m_runner = nullptr;
    ErrorPresenter m_presentError;
    BudgetProblem m_problem;
    std::shared_ptr<BudgetJob> m_job;
    JobHandle* m_handle = nullptr;
    QDoubleSpinBox* m_spin = nullptr;
    QTabWidget* m_tabs = nullptr;
    GpuFitPanel* m_gpuPage = nullptr;
    FootprintPanel* m_footprint = nullptr;
};

} // namespace qs
