#include "widgets/selectionhub.h"

#include "widgets/depthview.h"
#include "widgets/sensitivityview.h"
#include "widgets/statstableview.h"
#include "widgets/tensorfilterproxy.h"
#include "widgets/tensortreemodel.h"
#include "widgets/tierboardview.h"

#include <QItemSelectionModel>
#include <QTreeView>

namespace qs {

SelectionHub::SelectionHub(QObject* parent) : QObject(parent) {}

void SelectionHub::attachTree(QTreeView* view, TensorTreeModel* model, TensorFilterProxy* proxy)
{
    m_tree = view;
    m_treeModel = model;
    m_proxy = proxy;
    connect(view->selectionModel(), &QItemSelectionModel::selectionChanged, this,
            &SelectionHub::onTreeSelectionChanged);
}

void SelectionHub::attachStatsTable(StatsTableView* view)
{
    m_table = view;
    connect(view, &StatsTableView::selectionChanged, this, [this](const QStringList& names) {
        if (!m_syncing)
            select(names);
    });
}

void SelectionHub::attachTierBoard(TierBoardView* view)
{
    m_board = view;
    connect(view, &TierBoardView::tensorActivated, this, [this](const QString& name) { select({name}); });
    connect(view, &TierBoardView::tensorSelected, this, [this](const QString& name) {
        if (!m_syncing)
            select({name});
    });
}

void SelectionHub::attachDepth(DepthView* view)
{
    m_depth = view;
    connect(view, &DepthView::tensorActivated, this, [this](const QString& name) { select({name}); });
}

void SelectionHub::attachSensitivity(SensitivityView* view)
{
    m_sensitivity = view;
    connect(view, &SensitivityView::cellClicked, this,
            [this](const QString& tensor, const QString&) { select({tensor}); });
}

bool SelectionHub::shows(const QString& name) const
{
    if (m_names.contains(name))
        return true;
    for (const Group& g : m_groups)
        if (g.members.contains(name))
            return true;
    return false;
}

void SelectionHub::reset()
{
    m_names.clear();
    m_groups.clear();
    changed();
}

void SelectionHub::onTreeSelectionChanged()
{
    if (m_syncing)
        return;
    m_names.clear();
    m_groups.clear();
    for (const QModelIndex& idx : m_tree->selectionModel()->selectedRows()) {
        const QString name = idx.data(TensorTreeModel::TensorNameRole).toString();
        if (!name.isEmpty()) {
            m_names << name;
            continue;
        }
        QStringList members;
        const QModelIndex source = m_proxy->mapToSource(idx);
        for (int r = 0; r < m_treeModel->rowCount(source); ++r)
            members << m_treeModel->index(r, 0, source).data(TensorTreeModel::TensorNameRole).toString();
        m_groups.push_back({idx.data().toString(), members});
    }
    if (m_names.size() == 1) {
        m_syncing = true;
        showSingle(m_names.front());
        m_syncing = false;
    }
    changed();
}

void SelectionHub::select(const QStringList& names)
{
    m_syncing = true;
    if (m_tree) {
        QItemSelection selection;
        QModelIndex first;
        for (const QString& name : names) {
            const QModelIndex idx = m_proxy->mapFromSource(m_treeModel->indexForTensor(name));
            if (!idx.isValid())
                continue;
            if (!first.isValid())
                first = idx;
            m_tree->expand(idx.parent());
            selection.select(idx, idx);
        }
        m_tree->selectionModel()->select(selection,
                                         QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
        if (first.isValid()) {
            m_tree->selectionModel()->setCurrentIndex(first, QItemSelectionModel::NoUpdate);
            m_tree->scrollTo(first);
        }
    }
    if (names.size() == 1)
        showSingle(names.front());
    m_syncing = false;
    m_names = names;
    m_groups.clear();
    changed();
}

void SelectionHub::showSingle(const QString& name)
{
    // The table and the board show one tensor at a time.
    if (m_table)
        m_table->selectTensor(name);
    if (m_board)
        m_board->selectTensor(name);
}

void SelectionHub::changed()
{
    if (m_depth)
        m_depth->setHighlighted(m_names);
    if (m_sensitivity)
        m_sensitivity->setHighlighted(m_names);
    emit selectionChanged();
}

} // namespace qs
