#pragma once
// The plan's constraint warnings (fused q/k/v, unsupported shapes ...) as a tool button: its text counts
// them, its menu lists each with its one-click fixes (each fix one undo step) and "apply every
// recommended fix". Follows every plan edit.

#include <QToolButton>

namespace qs {

class PlanDocument;

class IssuesButton final : public QToolButton {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(IssuesButton)

public:
    explicit IssuesButton(PlanDocument* plan, QWidget* parent = nullptr);

    int issueCount() const { return m_count; }

private:
    void refresh();

    PlanDocument* m_plan = nullptr;
    int m_count = 0;
};

} // namespace qs
