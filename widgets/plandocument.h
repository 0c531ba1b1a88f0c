#pragma once
// The precision plan being edited for the open model, with its undo history. Every change (a drop on the
// tier board, a menu command, a preset) is one QUndoStack command holding the plan before and after —
// plans are plain values (core/plan/plan.h), so undo is exact.

#include "core/plan/modellayout.h"
#include "core/plan/plan.h"

#include <QObject>
#include <QStringList>

class QUndoStack;

namespace qs {

class PlanDocument final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(PlanDocument)

public:
    explicit PlanDocument(QObject* parent = nullptr);
    ~PlanDocument() override;

    // Starts a new plan for a model (the preset when it applies, else no assignments); clears the history.
    void setLayout(ModelLayout layout, const QString& preset = QStringLiteral("llama.cpp-Q4_K_M"));
    const ModelLayout& layout() const { return m_layout; }
    const Plan& plan() const { return m_plan; }
    bool hasModel() const { return !m_layout.tensors.empty(); }
    QUndoStack* undoStack() const { return m_undo; }

    // Each pushes one undo step when something changes and returns whether it did. An empty format
    // removes the assignments (the tensors keep their stored type). assign() never puts a tensor in a
    // format it cannot be stored in for the plan's target (storableFormat): where the target stores another
    // format instead (llama.cpp's fallback) that one is assigned, where it cannot at all the tensor is left
    // as it was; either way assignmentAdjusted() says which tensors and why.
    bool assign(const QStringList& tensors, const QString& format);
    bool applyPreset(const QString& preset);
    bool setPlan(const Plan& plan, const QString& description);
    // Tier (board column) edits, one undo step each. addTier places a new format by its bits per weight
    // among the tiers (most precise first) unless an index is given; removeTier returns the tier's tensors
    // to their stored type; moveTier moves a tier by `delta` columns.
    bool addTier(const QString& format, int index = -1);
    bool removeTier(const QString& format);
    bool moveTier(const QString& format, int delta);
    // The method a tier's tensors are quantized with; false (and no undo step) when unchanged or when the
    // method cannot produce the tier's format (quantMethodProblem).
    bool setTierMethod(const QString& format, QuantMethod method);
    // The tool the plan is for (presets applied later use it; the issues button checks against it).
    bool setTarget(ExportTarget target);

    // Every format the plan assigns becomes a tier, placed by its bits per weight (most precise first).
    static void ensureTiersForAssignments(Plan& plan);

    // Used by the undo commands.
    void restore(const Plan& plan);

signals:
    void planChanged();
    void layoutChanged();
    // An assign() stored some tensors in another format or refused them (one line per tensor).
    void assignmentAdjusted(const QStringList& reasons);

private:
    ModelLayout m_layout;
    Plan m_plan;
    QUndoStack* m_undo;
};

} // namespace qs
