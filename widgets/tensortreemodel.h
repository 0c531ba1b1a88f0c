#pragma once
// The tensors of a model as a two-level tree: groups (Embedding, Block 0 … N, Head, Other) holding
// tensors in file order. Group rows aggregate parameters and bytes so a user sees at once which blocks
// dominate the size. Views sort through a QSortFilterProxyModel using SortRole (numbers, not text).

#include "core/model/model.h"

#include <QAbstractItemModel>

#include <functional>
#include <memory>
#include <vector>

namespace qs {

class TensorTreeModel final : public QAbstractItemModel {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TensorTreeModel)

public:
    enum Column {
        NameColumn, RoleColumn, ShapeColumn, DTypeColumn, ParametersColumn, SizeColumn, PlanColumn, ColumnCount
    };
    enum Roles {
        TensorNameRole = Qt::UserRole + 1, // QString: full tensor name (stable id); empty on group rows
        TensorIndexRole,                   // int: index into Model::tensors(), -1 on group rows
        SortRole,                          // QVariant that sorts numerically where it should
        GroupRole,                         // int: the group's kind (GroupKind)
        BlockRole,                         // int: block index, -1 outside blocks
        FilterTextRole,                    // QString: name and role, what the filter box matches
    };
    enum class GroupKind { Embedding, Block, Head, Other };

    explicit TensorTreeModel(QObject* parent = nullptr);
    ~TensorTreeModel() override;

    void setModel(std::shared_ptr<const Model> model);
    // Where the Plan column reads a tensor's assigned format from (empty: none); call planChanged() after
    // every edit of the plan.
    using FormatLookup = std::function<QString(const std::string& tensorName)>;
    void setFormatLookup(FormatLookup lookup);
    void planChanged();
    const std::shared_ptr<const Model>& model() const { return m_model; }

    // The index of a tensor by name (column 0), invalid when unknown.
    QModelIndex indexForTensor(const QString& name) const;
    int groupCount() const { return int(m_groups.size()); }
    QString groupTitle(int group) const;

    QModelIndex index(int row, int column, const QModelIndex& parent = {}) const override;
    QModelIndex parent(const QModelIndex& child) const override;
    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;
    Qt::ItemFlags flags(const QModelIndex& index) const override;

private:
    struct Group {
        GroupKind kind = GroupKind::Other;
        int block = -1;
        std::vector<int> tensors; // indices into Model::tensors()
        uint64_t parameters = 0;
        uint64_t bytes = 0;
        QString dtypes; // e.g. "Q4_0, F32"
    };
    QVariant groupData(const Group& group, int column, int role) const;
    QVariant tensorData(int tensorIndex, int column, int role) const;

    std::shared_ptr<const Model> m_model;
    bool m_hasBlocks = false;
    FormatLookup m_formatOf;
    std::vector<Group> m_groups;
    std::vector<std::pair<int, int>> m_tensorPosition; // tensor index -> (group, row)
};

} // namespace qs
