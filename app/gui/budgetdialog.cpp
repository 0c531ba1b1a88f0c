#include "app/gui/budgetdialog.h"

#include <algorithm>
#include "app/gui/gpufitpanel.h"

#include "core/jobs/jobs.h"
#include "core/plan/budget.h"
#include "core/plan/memory.h"
#include "core/plan/plan.h"
#include "widgets/footprintpanel.h"
#include "widgets/formatting.h"
#include "widgets/jobrunner.h"
#include "widgets/plandocument.h"
#include "widgets/tradeoffview.h"

#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QTabWidget>
#include <QVBoxLayout>

namespace qs {

namespace {
constexpr double mib = 1024.0 * 1024.0;
}

BudgetDialog::BudgetDialog(PlanDocument* plan, JobRunner* runner, ErrorPresenter presentError,
                           QWidget* parent)
    : QDialog(parent), m_plan(plan), m_runner(runner), m_presentError(std::move(presentError))
{
    setObjectName(QStringLiteral("budgetDialog"));
    setWindowTitle(tr("Fit to Budget"));
}

BudgetDialog* BudgetDialog::openFor(PlanDocument* plan, JobRunner* runner, const ErrorTable& errors,
                                    ErrorPresenter presentError, QWidget* parent, FootprintPanel* footprint)
{
    if (!plan->hasModel())
        return nullptr;
    const ModelLayout& layout = plan->layout();
    BudgetProblem problem;
    std::vector<TradeoffPoint> curve;
    try {
        // Options are the formats the plan's target stores (llama.cpp's fallbacks, no INT4 for llama.cpp);
        // vLLM-style targets keep fused groups together.
        BudgetOptions options;
        options.target = plan->plan().target();
        options.tieFusedGroups = targetFusesGroups(options.target);
        problem = makeBudgetProblem(plan->plan(), layout, errors, options);
        curve = tradeoffCurve(problem);
    } catch (const std::exception& e) {
        presentError(tr("Fit to Budget"), tr("The budget problem could not be built."),
                     QString::fromStdString(e.what()));
        return nullptr;
    }
    const uint64_t currentBytes = summarizeWeights(layout, planBytesFn(plan->plan())).bytes;
    double currentError = 0;
    size_t currentMissing = 0;
    try {
        const PlanErrorSummary summary = planError(plan->plan(), layout, errors);
        // A tensor assigned a format the matrix has no cell for (n/a) has no known error: no honest point.
        currentMissing = summary.missing;
        currentError = currentMissing ? 0.0 : summary.error;
    } catch (const std::exception&) {
        // No current point on the curve; the dialog still works.
    }

    auto* dialog = new BudgetDialog(plan, runner, std::move(presentError), parent);
    dialog->m_footprint = footprint;
    dialog->m_problem = std::move(problem);
    auto* outer = new QVBoxLayout(dialog);
    dialog->m_tabs = new QTabWidget;
    outer->addWidget(dialog->m_tabs, 1);
    auto* sizePage = new QWidget;
    dialog->m_tabs->addTab(sizePage, tr("Size budget"));
    dialog->m_gpuPage = new GpuFitPanel(plan, runner, dialog->m_problem, footprint);
    dialog->m_tabs->addTab(dialog->m_gpuPage, tr("GPU (with KV cache)"));
    auto* layoutBox = new QVBoxLayout(sizePage);
    QString errorSource;
    if (errors.empty()) {
        errorSource =
            tr("Without a sensitivity matrix (Sensitivity tab › Compute) the error is a size-based proxy.");
    } else {
        errorSource = tr("Errors are the measured sensitivity matrix (total squared error per tensor; "
                         "tensors without measurements use the size-based proxy).");
        if (currentMissing)
            errorSource +=
                QLatin1Char(' ') + tr("The current plan is not shown: %1 a format the matrix marks n/a.")
                                       .arg(countNoun(currentMissing, "tensor has", "tensors have"));
    }
    auto* intro =
        new QLabel(tr("Each tensor gets the tier that minimises the total predicted error within the budget "
                      "(exact multiple-choice knapsack). %1 Click the curve to pick a size.")
                       .arg(errorSource));
    intro->setWordWrap(true);
    layoutBox->addWidget(intro);
    auto* view = new TradeoffView;
    view->setCurve(curve, currentBytes, currentError);
    layoutBox->addWidget(view, 1);
    auto* row = new QHBoxLayout;
    row->addWidget(new QLabel(tr("Weight budget:")));
    auto* spin = new QDoubleSpinBox;
    dialog->m_spin = spin;
    spin->setDecimals(3);
    spin->setRange(0.001, 1e9);
    spin->setSuffix(tr(" MiB"));
    // 80 % of the current plan, but never below the smallest plan the tiers can make (that would not fit).
    const double smallest = curve.empty() ? 0.0 : double(curve.front().bytes);
    spin->setValue(std::max(double(currentBytes) * 0.8, smallest) / mib);
    row->addWidget(spin, 1);
    layoutBox->addLayout(row);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    buttons->button(QDialogButtonBox::Ok)->setText(tr("Fit"));
    outer->addWidget(buttons);
    connect(dialog->m_gpuPage, &GpuFitPanel::failed, dialog, [dialog](const QString& error) {
        dialog->m_presentError(tr("Fit to GPU"), tr("The fit could not be computed."), error);
    });
    view->setBudget(uint64_t(spin->value() * mib));
    connect(view, &TradeoffView::budgetChosen, spin,
            [spin](uint64_t bytes) { spin->setValue(double(bytes) / mib); });
    connect(spin, &QDoubleSpinBox::valueChanged, view,
            [view](double value) { view->setBudget(uint64_t(value * mib)); });
    connect(buttons, &QDialogButtonBox::rejected, dialog, &QDialog::reject);
    connect(buttons, &QDialogButtonBox::accepted, dialog, &QDialog::accept);
    dialog->resize(640, 480);
    dialog->open();
    return dialog;
}

void BudgetDialog::showGpuPage(bool gpu)
{
    m_tabs->setCurrentWidget(gpu ? static_cast<QWidget*>(m_gpuPage) : m_tabs->widget(0));
}

void BudgetDialog::done(int result)
{
    if (result == Accepted && m_tabs->currentWidget() == m_gpuPage) {
        // The GPU page: compute first (the dialog stays open to show the alternatives), then apply.
        if (m_gpuPage->computeHandle())
            return;
        if (!m_gpuPage->hasResult()) {
            m_gpuPage->compute();
            return;
        }
        if (!m_gpuPage->selected())
            return; // nothing fits: the page lists the smallest changes
        applyGpuFit();
        QDialog::done(result);
        deleteLater();
        return;
    }
    if (m_gpuPage->computeHandle())
        m_gpuPage->computeHandle()->cancel();
    QDialog::done(result);
    if (result == Accepted && !m_handle)
        solve(uint64_t(m_spin->value() * mib));
    else if (!m_handle)
        deleteLater();
}

void BudgetDialog::solve(uint64_t budgetBytes)
{
    m_job = std::make_shared<BudgetJob>(BudgetParams{m_problem, budgetBytes, {}});
    m_handle = m_runner->start(m_job);
    connect(m_handle, &JobHandle::finished, this,
            [this, budgetBytes](JobStatus status, const QString& error) {
                onSolved(status, error, budgetBytes);
            });
    // The problem was built for this model: a solution is meaningless for the next one.
    connect(m_plan, &PlanDocument::layoutChanged, m_handle, &JobHandle::cancel);
}

void BudgetDialog::onSolved(JobStatus status, const QString& error, uint64_t budgetBytes)
{
    m_handle = nullptr;
    deleteLater();
    if (status == JobStatus::Failed) {
        m_presentError(tr("Fit to Budget"), tr("The budget could not be solved."), error);
        return;
    }
    if (status != JobStatus::Succeeded)
        return; // cancelled: the plan stays as it was
    const BudgetSolution& solution = m_job->result().solution;
    if (!solution.feasible) {
        m_presentError(tr("Fit to Budget"), tr("No plan fits in %1.").arg(formatBytes(budgetBytes)),
                       tr("The smallest plan with these tiers needs %1.").arg(formatBytes(solution.bytes)));
        return;
    }
    try {
        m_plan->setPlan(applySolution(m_plan->plan(), m_problem, solution),
                        tr("Fit to %1").arg(formatBytes(budgetBytes)));
    } catch (const std::exception& e) {
        m_presentError(tr("Fit to Budget"), tr("The budget could not be applied."),
                       QString::fromStdString(e.what()));
        return;
    }
    emit fitted(tr("Fitted to %1: %2%3")
                    .arg(formatBytes(budgetBytes), formatBytes(solution.bytes),
                         solution.optimal
                             ? tr(", proven optimal")
                             : tr(", error at most %1% above the best possible (search stopped early)")
                                   .arg(solution.error > 0 ? 100.0 * solution.gap / solution.error : 0.0, 0, 'f',
                                        1)));
}

void BudgetDialog::applyGpuFit()
{
    const JointFitResult& fit = *m_gpuPage->result();
    const size_t index = *m_gpuPage->selected();
    const KvAlternative& a = fit.alternatives[index];
    const QString kv = QString::fromLatin1(kvCacheTypeName(a.kvType));
    try {
        m_plan->setPlan(applySolution(m_plan->plan(), m_problem, a.solution),
                        tr("Fit to GPU (KV %1, %2 tokens)").arg(kv).arg(a.context));
    } catch (const std::exception& e) {
        m_presentError(tr("Fit to GPU"), tr("The fit could not be applied."), QString::fromStdString(e.what()));
        return;
    }
    if (m_footprint) {
        FootprintRequest shown = m_gpuPage->request().footprint;
        shown.kvType = a.kvType;
        shown.context = a.context;
        m_footprint->showRequest(m_gpuPage->gpuId(), shown);
    }
    emit fitted(tr("Fitted to the GPU: KV %1 at %2 tokens, weights %3%4")
                    .arg(kv)
                    .arg(a.context)
                    .arg(formatBytes(a.weightsBytes))
                    .arg(a.solution.optimal
                             ? tr(", proven optimal")
                             : tr(", error at most %1% above the best possible (certified gap)")
                                   .arg(a.solution.error > 0 ? 100.0 * a.solution.gap / a.solution.error : 0.0, 0,
                                        'g', 3)));
}

} // namespace qs
