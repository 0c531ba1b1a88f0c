#pragma once
// The Plan tab: a tool bar (preset, fit to budget, export, open / save, the issues button, undo / redo)
// over the tier board and the footprint panel. File operations go to the plan session; fitting to a
// budget is asked of the window, which knows the measured errors.

#include "app/gui/errorpresenter.h"

#include <QWidget>
#include <functional>

class QAction;

namespace qs {

class FootprintPanel;
class PlanSession;
class TierBoardView;

class PlanPage final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(PlanPage)

public:
    PlanPage(PlanSession* session, ErrorPresenter presentError, QWidget* parent = nullptr);

    TierBoardView* tierBoard() const { return m_tierBoard; }
    FootprintPanel* footprint() const { return m_footprint; }
    // For the Edit menu (they carry the shortcuts).
    QAction* undoAction() const { return m_undo; }
    QAction* redoAction() const { return m_redo; }

signals:
    void fitToBudgetRequested();
    void quantizeRequested();

private:
    QWidget* createToolBar(PlanSession* session, ErrorPresenter presentError);

    TierBoardView* m_tierBoard = nullptr;
    FootprintPanel* m_footprint = nullptr;
    QAction* m_undo = nullptr;
    QAction* m_redo = nullptr;
};

} // namespace qs
