#pragma once
// The one selection of tensors every view shows. Views are attached once; a selection made in any of them
// (tree rows or whole groups, a statistics table row, a depth-chart point, a tier-board card, a sensitivity
// cell) becomes the hub's selection, and the hub shows it in all the others. Nothing else cross-wires views.

#include <QObject>
#include <QStringList>
#include <vector>

class QTreeView;

namespace qs {

class DepthView;
class SensitivityView;
class StatsTableView;
class TensorFilterProxy;
class TensorTreeModel;
class TierBoardView;

class SelectionHub final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SelectionHub)

public:
    // A selected group row of the tree (a block, a role ...): its title and member tensors.
    struct Group {
        QString title;
        QStringList members;
    };

    explicit SelectionHub(QObject* parent = nullptr);

    // The tree's view shows proxy over model.
    void attachTree(QTreeView* view, TensorTreeModel* model, TensorFilterProxy* proxy);
    void attachStatsTable(StatsTableView* view);
    void attachTierBoard(TierBoardView* view);
    void attachDepth(DepthView* view);
    void attachSensitivity(SensitivityView* view);

    // Selects tensors by name in every view.
    void select(const QStringList& names);
    // Forgets the selection without touching the views (their model is being replaced).
    void reset();

    QStringList names() const { return m_names; }
    const std::vector<Group>& groups() const { return m_groups; }
    // Whether the tensor is selected, itself or as a member of a selected group.
    bool shows(const QString& name) const;

signals:
    void selectionChanged();

private:
    void onTreeSelectionChanged();
    void showSingle(const QString& name);
    void changed();

    QTreeView* m_tree = nullptr;
    TensorTreeModel* m_treeModel = nullptr;
    TensorFilterProxy* m_proxy = nullptr;
    StatsTableView* m_table = nullptr;
    TierBoardView* m_board = nullptr;
    DepthView* m_depth = nullptr;
    SensitivityView* m_sensitivity = nullptr;
    QStringList m_names;
    std::vector<Group> m_groups;
    // Set while the hub pushes a selection into the views, so their echo is not taken as a new one.
    bool m_syncing = false;
};

} // namespace qs
