#include "widgets/plandocument.h"

#include "core/quant/format.h"
#include "core/util/error.h"

#include <QUndoCommand>
#include <QUndoStack>

namespace qs {

namespace {

// At a typical 4096 x 4096 matrix, as the tier headers show it (per-column parts such as packed zero points
// spread over many rows, as in a real model).
double bitsPerWeightOf(const std::string& format)
{
    const auto f = findFormat(format);
    const auto bits = f ? formatBitsPerWeight(*f, 4096, 4096) : std::nullopt;
    return bits.value_or(0.0);
}

class PlanCommand final : public QUndoCommand {
public:
    PlanCommand(PlanDocument* document, Plan before, Plan after, const QString& text)
        : QUndoCommand(text), m_document(document), m_before(std::move(before)), m_after(std::move(after))
    {
    }
    void undo() override { m_document->restore(m_before); }
    void redo() override { m_document->restore(m_after); }

private:
    PlanDocument* m_document;
    Plan m_before;
    Plan m_after;
};

// Where a new tier for `format` goes: before the first tier storing fewer bits per weight.
size_t tierPosition(const Plan& plan, const std::string& format)
{
    const double bits = bitsPerWeightOf(format);
    for (size_t i = 0; i < plan.tiers().size(); ++i)
        if (bitsPerWeightOf(plan.tiers()[i]) < bits)
            return i;
    return plan.tiers().size();
}

} // namespace

// Every format the plan uses becomes a column of the board, placed by its bits per weight among the
// tiers (most precise first), so no tensor hides in an "other formats" column.
void PlanDocument::ensureTiersForAssignments(Plan& plan)
{
    for (const auto& [tensor, format] : plan.assignments()) {
        if (plan.tierIndex(format) >= 0 || !findFormat(format))
            continue;
        plan.addTier(format, tierPosition(plan, format));
    }
}

PlanDocument::PlanDocument(QObject* parent) : QObject(parent), m_undo(new QUndoStack(this)) {}

PlanDocument::~PlanDocument() = default;

void PlanDocument::setLayout(ModelLayout layout, const QString& preset)
{
    m_undo->clear();
    m_layout = std::move(layout);
    m_plan = Plan();
    m_plan.setIdentity(identityOf(m_layout));
    if (!preset.isEmpty() && !m_layout.tensors.empty()) {
        try {
            m_plan = makePreset(preset.toStdString(), m_layout);
            ensureTiersForAssignments(m_plan);
        } catch (const std::exception&) {
            // An architecture the preset does not know: start from an empty plan.
        }
    }
    emit layoutChanged();
    emit planChanged();
}

bool PlanDocument::assign(const QStringList& tensors, const QString& format)
{
    Plan after = m_plan;
    size_t changed = 0;
    QStringList adjusted;
    for (const QString& name : tensors) {
        const std::string n = name.toStdString();
        const TensorInfo* t = m_layout.find(n);
        if (!t || !isPlannable(*t))
            continue;
        if (format.isEmpty()) {
            changed += size_t(after.unassign(n));
            continue;
        }
        const StorableFormat stored = storableFormat(format.toStdString(), *t, m_plan.target());
        if (stored.refused()) {
            adjusted << tr("%1 not moved: %2").arg(name, QString::fromStdString(stored.reason));
            continue;
        }
        if (stored.changed())
            adjusted << tr("%1 stored as %2: %3")
                            .arg(name, QString::fromStdString(stored.format), QString::fromStdString(stored.reason));
        changed += size_t(after.assign(n, stored.format));
    }
    if (!adjusted.isEmpty())
        emit assignmentAdjusted(adjusted);
    if (changed == 0)
        return false;
    ensureTiersForAssignments(after); // a substitute becomes a tier of its own
    const QString what = tensors.size() == 1 ? tensors.front() : tr("%1 tensors").arg(changed);
    const QString text = format.isEmpty() ? tr("Keep %1 stored").arg(what) : tr("Move %1 to %2").arg(what, format);
    m_undo->push(new PlanCommand(this, m_plan, std::move(after), text));
    return true;
}

bool PlanDocument::applyPreset(const QString& preset)
{
    // For the plan's tool when it can express the preset; otherwise the preset's own (an all-INT4 preset
    // on a llama.cpp plan makes it a plan for any tool, and the target box says so).
    Plan built;
    try {
        built = makePreset(preset.toStdString(), m_layout, m_plan.target());
    } catch (const Error& e) {
        if (m_plan.target() == ExportTarget::PlanJson)
            throw;
        built = makePreset(preset.toStdString(), m_layout);
    }
    // Keep the user's tier list; add the preset's formats that are missing from it.
    Plan after = built;
    after.setTiers(m_plan.tiers());
    for (const auto& tier : built.tiers())
        if (after.tierIndex(tier) < 0)
            after.addTier(tier);
    ensureTiersForAssignments(after);
    return setPlan(after, tr("Apply preset %1").arg(preset));
}

bool PlanDocument::setPlan(const Plan& plan, const QString& description)
{
    if (plan == m_plan)
        return false;
    m_undo->push(new PlanCommand(this, m_plan, plan, description));
    return true;
}

bool PlanDocument::addTier(const QString& format, int index)
{
    const auto f = findFormat(format.toStdString());
    if (!f || m_plan.tierIndex(f->name()) >= 0)
        return false;
    Plan after = m_plan;
    after.addTier(f->name(), index >= 0 ? size_t(index) : tierPosition(after, f->name()));
    return setPlan(after, tr("Add tier %1").arg(QString::fromStdString(f->name())));
}

bool PlanDocument::removeTier(const QString& format)
{
    const int i = m_plan.tierIndex(format.toStdString());
    if (i < 0)
        return false;
    Plan after = m_plan;
    const std::string name = after.tiers()[size_t(i)];
    std::vector<std::string> members;
    for (const auto& [tensor, assigned] : after.assignments())
        if (after.tierIndex(assigned) == i)
            members.push_back(tensor);
    for (const auto& t : members)
        after.unassign(t);
    after.removeTier(name);
    return setPlan(after, members.empty() ? tr("Remove tier %1").arg(QString::fromStdString(name))
                                          : tr("Remove tier %1 (%2 tensors back to their stored type)")
                                                .arg(QString::fromStdString(name))
                                                .arg(members.size()));
}

bool PlanDocument::moveTier(const QString& format, int delta)
{
    const int i = m_plan.tierIndex(format.toStdString());
    const int to = i + delta;
    if (i < 0 || to < 0 || to >= int(m_plan.tiers().size()) || delta == 0)
        return false;
    Plan after = m_plan;
    after.moveTier(size_t(i), size_t(to));
    return setPlan(after, tr("Move tier %1").arg(QString::fromStdString(m_plan.tiers()[size_t(i)])));
}

bool PlanDocument::setTierMethod(const QString& format, QuantMethod method)
{
    const std::string name = format.toStdString();
    if (m_plan.tierIndex(name) < 0 || !quantMethodProblem(method, name).empty() || m_plan.tierMethod(name) == method)
        return false;
    Plan after = m_plan;
    after.setTierMethod(name, method);
    return setPlan(after, tr("Quantize tier %1 with %2").arg(format, QString::fromLatin1(quantMethodLabel(method))));
}

bool PlanDocument::setTarget(ExportTarget target)
{
    if (target == m_plan.target())
        return false;
    Plan after = m_plan;
    after.setTarget(target);
    return setPlan(after, tr("Plan for %1").arg(QString::fromLatin1(exportTargetName(target))));
}

void PlanDocument::restore(const Plan& plan)
{
    m_plan = plan;
    emit planChanged();
}

} // namespace qs
