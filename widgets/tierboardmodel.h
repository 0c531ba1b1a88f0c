#pragma once
// The tier board as an item model: top-level rows are the board's columns ("Unchanged" — tensors kept in
// their stored type — then one per plan tier, then "Other formats" when a tensor has a format outside
// the tiers), each holding its tensors grouped by block. Drag and drop moves tensors between tiers: the
// private MIME type carries stable tensor names (QDataStream), and a drop becomes one undo command on
// the PlanDocument. A view shows one column by setting its root index to tierIndex(i).

#include <QAbstractItemModel>
#include <QStringList>

#include <vector>

namespace qs {

class PlanDocument;

class TierBoardModel final : public QAbstractItemModel {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TierBoardModel)

public:
    static constexpr const char* mimeType = "application/x-quantscope-tensor-names";
    enum Column { NameColumn, SizeColumn, ColumnCount };
    enum Roles {
        TensorNamesRole = Qt::UserRole + 1, // QStringList: every tensor under the node
        FormatRole,                         // QString: the format of the node's column ("" = unchanged)
        NodeKindRole,                       // int: NodeKind
        BytesRole,                          // qulonglong: planned bytes under the node
    };
    enum class NodeKind { Tier, Group, Tensor };

    explicit TierBoardModel(PlanDocument* document, QObject* parent = nullptr);

    int tierCount() const { return int(m_tiers.size()); }
    QModelIndex tierIndex(int tier) const;
    QString tierTitle(int tier) const;
    QString tierFormat(int tier) const;  // "" for Unchanged
    bool tierAcceptsDrops(int tier) const;
    // The board column a node belongs to, -1 for an invalid index.
    int tierOf(const QModelIndex& index) const;
    // Board column of the tier holding `format` ("" = Unchanged), -1 when none.
    int tierForFormat(const QString& format) const;
    QModelIndex indexForTensor(const QString& name) const;

    QModelIndex index(int row, int column, const QModelIndex& parent = {}) const override;
    QModelIndex parent(const QModelIndex& child) const override;
    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;
    Qt::ItemFlags flags(const QModelIndex& index) const override;

    QStringList mimeTypes() const override;
    QMimeData* mimeData(const QModelIndexList& indexes) const override;
    bool canDropMimeData(const QMimeData* data, Qt::DropAction action, int row, int column,
                         const QModelIndex& parent) const override;
    bool dropMimeData(const QMimeData* data, Qt::DropAction action, int row, int column,
                      const QModelIndex& parent) override;
    Qt::DropActions supportedDropActions() const override;
    Qt::DropActions supportedDragActions() const override;

    // Tensor names carried by a drag (empty when the data is not ours).
    static QStringList namesFromMime(const QMimeData* data);

signals:
    // After a rebuild, once every attached view has processed the reset (views reset their root index
    // then, so column views set theirs again on this signal).
    void rebuilt();

private:
    struct Node {
        NodeKind kind = NodeKind::Tier;
        int parent = -1;   // node index, -1 for tiers
        int row = 0;
        int tier = 0;
        size_t tensor = 0; // Tensor nodes: index into layout().tensors
        QString title;
        QStringList names; // every tensor under the node
        uint64_t bytes = 0;
        uint64_t params = 0;
        std::vector<int> children;
    };
    struct Tier {
        QString title;
        QString format;
        bool droppable = true;
        int node = -1;
    };
    void rebuild();
    const Node* node(const QModelIndex& index) const;

    PlanDocument* m_document;
    std::vector<Tier> m_tiers;
    std::vector<Node> m_nodes;
};

} // namespace qs
