#pragma once
// The tier board: one column per tier (most precise on the left), each a tree of its tensors grouped by
// block. Tensors, multi-selections or whole groups move by drag and drop, by the context menu (Move to),
// or from the keyboard (Ctrl+Left / Ctrl+Right: one tier more / less precise). Each move is one undo step.

#include <QSet>
#include <QWidget>

#include <vector>

class QHBoxLayout;
class QLabel;
class QTreeView;

class QMenu;

namespace qs {

class PlanDocument;
class RulesDialog;
class TierBoardModel;

class TierBoardView final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TierBoardView)

public:
    explicit TierBoardView(PlanDocument* document, QWidget* parent = nullptr);

    TierBoardModel* model() const { return m_model; }
    // The tree of board column `tier`, nullptr when out of range (for tests).
    QTreeView* tierView(int tier) const;
    int tierViewCount() const { return int(m_views.size()); }
    // Moves the selected tensors of `view` to board column `tier`.
    bool moveSelection(QTreeView* view, int tier);
    // Selects a tensor in its column (expanding its group) without emitting tensorSelected.
    void selectTensor(const QString& name);
    // The "Add Tier" menu (every format that is not a tier yet, grouped by kind, with bits per weight) and
    // the menu of a tier's header (move it, remove it); public for tests.
    QMenu* addTierMenu() const { return m_addMenu; }
    void fillTierMenu(QMenu* menu, int tier);
    void fillAddTierMenu(QMenu* menu);
    // Opens (or raises) the non-modal rules editor.
    RulesDialog* showRulesDialog();

signals:
    void tensorActivated(const QString& name);
    // A single tensor was selected on the board by the user.
    void tensorSelected(const QString& name);

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    void rebuildColumns();
    void createColumn();
    void configureColumn(int tier);
    void saveExpansion();
    void showContextMenu(QTreeView* view, const QPoint& pos);
    QStringList selectedNames(QTreeView* view) const;

    PlanDocument* m_document;
    TierBoardModel* m_model;
    QHBoxLayout* m_columns = nullptr;
    QMenu* m_addMenu = nullptr;
    RulesDialog* m_rulesDialog = nullptr;
    std::vector<QWidget*> m_panels;
    std::vector<QTreeView*> m_views;
    std::vector<QLabel*> m_headers;
    QSet<QString> m_expanded;
    bool m_selecting = false; // "tier format|group title" of expanded groups, kept across rebuilds
};

} // namespace qs
