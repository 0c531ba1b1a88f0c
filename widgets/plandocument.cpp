#include "widgets/plandocument.h"

#include "core/quant/format.h"

#include <QUndoCommand>
#include <QUndoStack>

namespace qs {

namespace {

double bitsPerWeightOf(const std::string& format)
{
    const auto f = findFormat(format);
    const auto bytes = f ? f->storedBytes(1, 4096) : std::nullopt;
    return bytes ? 8.0 * double(*bytes) / 4096.0 : 0.0;
}

// Every format the plan uses becomes a column of the board, placed by its bits per weight among the
// tiers (most precise first), so no tensor hides in an "other formats" column.
void ensureTiersForAssignments(Plan& plan)
{
    for (const auto& [tensor, format] : plan.assignments()) {
        if (plan.tierIndex(format) >= 0 || !findFormat(format))
            continue;
        const double bits = bitsPerWeightOf(format);
        size_t at = plan.tiers().size();
        for (size_t i = 0; i < plan.tiers().size(); ++i)
            if (bitsPerWeightOf(plan.tiers()[i]) < bits) {
                at = i;
                break;
            }
        plan.addTier(format, at);
    }
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

} // namespace

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
    for (const QString& name : tensors) {
        const std::string n = name.toStdString();
        const TensorInfo* t = m_layout.find(n);
        if (!t || !isPlannable(*t))
            continue;
        changed += format.isEmpty() ? size_t(after.unassign(n)) : size_t(after.assign(n, format.toStdString()));
    }
    if (changed == 0)
        return false;
    const QString what = tensors.size() == 1 ? tensors.front() : tr("%1 tensors").arg(changed);
    const QString text = format.isEmpty() ? tr("Keep %1 stored").arg(what) : tr("Move %1 to %2").arg(what, format);
    m_undo->push(new PlanCommand(this, m_plan, std::move(after), text));
    return true;
}

bool PlanDocument::applyPreset(const QString& preset)
{
    const Plan built = makePreset(preset.toStdString(), m_layout);
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

void PlanDocument::restore(const Plan& plan)
{
    m_plan = plan;
    emit planChanged();
}

} // namespace qs
