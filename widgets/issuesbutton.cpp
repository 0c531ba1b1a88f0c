#include "widgets/issuesbutton.h"

#include "core/plan/plan.h"
#include "widgets/plandocument.h"

#include <QMenu>
#include <QStyle>

namespace qs {

IssuesButton::IssuesButton(PlanDocument* plan, QWidget* parent) : QToolButton(parent), m_plan(plan)
{
    setObjectName(QStringLiteral("planIssues"));
    setPopupMode(QToolButton::InstantPopup);
    setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    setMenu(new QMenu(this));
    connect(m_plan, &PlanDocument::planChanged, this, &IssuesButton::refresh);
    refresh();
}

void IssuesButton::refresh()
{
    QMenu* issuesMenu = menu();
    issuesMenu->clear();
    std::vector<PlanIssue> found;
    if (m_plan->hasModel()) {
        try {
            // Fused-group warnings where the plan's runtime fuses (vLLM-style), never for llama.cpp.
            const ExportTarget target = m_plan->plan().target();
            CheckOptions options = checkOptionsFor(target);
            options.fusedGroups = target == ExportTarget::PlanJson || targetFusesGroups(target);
            found = checkPlan(m_plan->plan(), m_plan->layout(), options);
        } catch (const std::exception&) {
            // A plan that cannot be checked has no issues to offer fixes for.
        }
    }
    m_count = int(found.size());
    setText(found.empty() ? tr("No issues") : tr("%1 issue(s)").arg(found.size()));
    setIcon(found.empty() ? QIcon() : style()->standardIcon(QStyle::SP_MessageBoxWarning));
    setEnabled(!found.empty());
    for (const PlanIssue& issue : found) {
        QMenu* sub = issuesMenu->addMenu(QString::fromStdString(issue.message).left(120));
        sub->setToolTipsVisible(true);
        for (const PlanFix& fix : issue.fixes)
            sub->addAction(QString::fromStdString(fix.label), this, [this, fix] {
                m_plan->setPlan(applyFix(m_plan->plan(), fix), QString::fromStdString(fix.label));
            });
        if (issue.fixes.empty())
            sub->addAction(tr("No automatic fix"))->setEnabled(false);
    }
    if (found.size() > 1) {
        issuesMenu->addSeparator();
        issuesMenu->addAction(tr("Apply Every Recommended Fix"), this, [this, found] {
            Plan fixed = m_plan->plan();
            for (const PlanIssue& issue : found)
                if (!issue.fixes.empty())
                    fixed = applyFix(fixed, issue.fixes.front());
            m_plan->setPlan(fixed, tr("Fix %1 issues").arg(found.size()));
        });
    }
}

} // namespace qs
