#include "app/gui/budgetdialog.h"

#include "core/jobs/jobs.h"
#include "core/plan/budget.h"
#include "core/plan/memory.h"
#include "core/plan/plan.h"
#include "widgets/formatting.h"
#include "widgets/jobrunner.h"
#include "widgets/plandocument.h"
#include "widgets/tradeoffview.h"

#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
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
                                    ErrorPresenter presentError, QWidget* parent)
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
    dialog->m_problem = std::move(problem);
    auto* layoutBox = new QVBoxLayout(dialog);
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
    spin->setValue(double(currentBytes) * 0.8 / mib);
    row->addWidget(spin, 1);
    layoutBox->addLayout(row);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    buttons->button(QDialogButtonBox::Ok)->setText(tr("Fit"));
    layoutBox->addWidget(buttons);
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

void BudgetDialog::done(int result)
{
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

} // namespace qs
