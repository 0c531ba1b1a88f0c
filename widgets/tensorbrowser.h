#pragma once
// The Tensors tab: a filter box over the tensor tree (groups of blocks and roles, sortable columns, the
// planned format of each tensor). A new model opens expanded when it is small, else with only its first
// groups expanded.

#include "core/model/model.h"

#include <QWidget>
#include <memory>

class QLineEdit;
class QTreeView;

namespace qs {

class TensorFilterProxy;
class TensorTreeModel;

class TensorBrowser final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TensorBrowser)

public:
    explicit TensorBrowser(QWidget* parent = nullptr);

    void setModel(std::shared_ptr<const Model> model);
    // Focuses the filter box with its text selected.
    void focusFilter();

    QTreeView* view() const { return m_view; }
    TensorTreeModel* treeModel() const { return m_model; }
    TensorFilterProxy* proxy() const { return m_proxy; }
    QLineEdit* filterEdit() const { return m_filter; }

private:
    void applyFilter(const QString& text);

    TensorTreeModel* m_model = nullptr;
    TensorFilterProxy* m_proxy = nullptr;
    QLineEdit* m_filter = nullptr;
    QTreeView* m_view = nullptr;
};

} // namespace qs
