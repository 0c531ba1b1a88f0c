#include "widgets/tierboardmodel.h"

#include "widgets/formatting.h"
#include "widgets/plandocument.h"

#include <QDataStream>
#include <QFont>
#include <QIODevice>
#include <QMimeData>

#include <map>
#include <set>

namespace qs {

TierBoardModel::TierBoardModel(PlanDocument* document, QObject* parent) : QAbstractItemModel(parent), m_document(document)
{
    connect(document, &PlanDocument::planChanged, this, [this] {
        beginResetModel();
        rebuild();
        endResetModel();
        emit rebuilt();
    });
    rebuild();
}

void TierBoardModel::rebuild()
{
    m_tiers.clear();
    m_nodes.clear();
    const ModelLayout& layout = m_document->layout();
    const Plan& plan = m_document->plan();
    if (layout.tensors.empty())
        return;
    const TierBoard board = tierBoard(plan, layout);

    auto addTier = [&](const QString& title, const QString& format, bool droppable,
                       const std::vector<size_t>& tensors) {
        Tier tier{title, format, droppable, int(m_nodes.size())};
        Node tn;
        tn.kind = NodeKind::Tier;
        tn.row = int(m_tiers.size());
        tn.tier = tn.row;
        tn.title = title;
        m_nodes.push_back(tn);
        const int tierNode = tier.node;
        // Groups by block, in block order; tensors outside blocks last.
        std::map<int, std::vector<size_t>> groups;
        for (size_t ti : tensors)
            groups[planRole(layout.tensors[ti]).block < 0 ? INT_MAX : planRole(layout.tensors[ti]).block].push_back(ti);
        for (const auto& [block, members] : groups) {
            Node g;
            g.kind = NodeKind::Group;
            g.parent = tierNode;
            g.row = int(m_nodes[size_t(tierNode)].children.size());
            g.tier = m_nodes[size_t(tierNode)].tier;
            g.title = block == INT_MAX ? tr("Other") : tr("Block %1").arg(block);
            const int groupNode = int(m_nodes.size());
            m_nodes.push_back(g);
            m_nodes[size_t(tierNode)].children.push_back(groupNode);
            for (size_t ti : members) {
                const TensorInfo& t = layout.tensors[ti];
                Node n;
                n.kind = NodeKind::Tensor;
                n.parent = groupNode;
                n.row = int(m_nodes[size_t(groupNode)].children.size());
                n.tier = g.tier;
                n.tensor = ti;
                n.title = QString::fromStdString(t.name);
                n.names = {n.title};
                n.bytes = plannedBytes(plan, t);
                n.params = t.elements();
                const int tensorNode = int(m_nodes.size());
                m_nodes.push_back(n);
                m_nodes[size_t(groupNode)].children.push_back(tensorNode);
                for (int up : {groupNode, tierNode}) {
                    m_nodes[size_t(up)].names << n.title;
                    m_nodes[size_t(up)].bytes += n.bytes;
                    m_nodes[size_t(up)].params += n.params;
                }
            }
        }
        m_tiers.push_back(tier);
    };

    addTier(tr("Unchanged"), QString(), true, board.unassigned);
    for (size_t i = 0; i < plan.tiers().size(); ++i) {
        const QString format = QString::fromStdString(plan.tiers()[i]);
        addTier(format, format, true, board.columns[i]);
    }
    if (!board.otherFormats.empty())
        addTier(tr("Other formats"), QString(), false, board.otherFormats);
}

QModelIndex TierBoardModel::tierIndex(int tier) const
{
    return tier >= 0 && tier < tierCount() ? createIndex(tier, 0, quintptr(m_tiers[size_t(tier)].node)) : QModelIndex();
}

QString TierBoardModel::tierTitle(int tier) const
{
    return tier >= 0 && tier < tierCount() ? m_tiers[size_t(tier)].title : QString();
}

QString TierBoardModel::tierFormat(int tier) const
{
    return tier >= 0 && tier < tierCount() ? m_tiers[size_t(tier)].format : QString();
}

bool TierBoardModel::tierAcceptsDrops(int tier) const
{
    return tier >= 0 && tier < tierCount() && m_tiers[size_t(tier)].droppable;
}

int TierBoardModel::tierOf(const QModelIndex& index) const
{
    const Node* n = node(index);
    return n ? n->tier : -1;
}

int TierBoardModel::tierForFormat(const QString& format) const
{
    for (int t = 0; t < tierCount(); ++t)
        if (m_tiers[size_t(t)].droppable && m_tiers[size_t(t)].format.compare(format, Qt::CaseInsensitive) == 0)
            return t;
    return -1;
}

QModelIndex TierBoardModel::indexForTensor(const QString& name) const
{
    for (size_t i = 0; i < m_nodes.size(); ++i)
        if (m_nodes[i].kind == NodeKind::Tensor && m_nodes[i].title == name)
            return createIndex(m_nodes[i].row, 0, quintptr(i));
    return {};
}

const TierBoardModel::Node* TierBoardModel::node(const QModelIndex& index) const
{
    if (!index.isValid() || index.model() != this || index.internalId() >= m_nodes.size())
        return nullptr;
    return &m_nodes[size_t(index.internalId())];
}

QModelIndex TierBoardModel::index(int row, int column, const QModelIndex& parent) const
{
    if (row < 0 || column < 0 || column >= ColumnCount)
        return {};
    if (!parent.isValid())
        return row < tierCount() ? createIndex(row, column, quintptr(m_tiers[size_t(row)].node)) : QModelIndex();
    const Node* p = node(parent);
    if (!p || parent.column() != 0 || row >= int(p->children.size()))
        return {};
    return createIndex(row, column, quintptr(p->children[size_t(row)]));
}

QModelIndex TierBoardModel::parent(const QModelIndex& child) const
{
    const Node* n = node(child);
    if (!n || n->parent < 0)
        return {};
    const Node& p = m_nodes[size_t(n->parent)];
    return createIndex(p.row, 0, quintptr(n->parent));
}

int TierBoardModel::rowCount(const QModelIndex& parent) const
{
    if (!parent.isValid())
        return tierCount();
    const Node* p = node(parent);
    return p && parent.column() == 0 ? int(p->children.size()) : 0;
}

int TierBoardModel::columnCount(const QModelIndex&) const
{
    return ColumnCount;
}

QVariant TierBoardModel::data(const QModelIndex& index, int role) const
{
    const Node* n = node(index);
    if (!n)
        return {};
    switch (role) {
    case Qt::DisplayRole:
        if (index.column() == SizeColumn)
            return formatBytes(n->bytes);
        if (n->kind == NodeKind::Tensor) {
            // Inside "Block 3" the "model.layers.3." prefix says nothing new: show what follows it.
            const int block = planRole(m_document->layout().tensors[n->tensor]).block;
            if (block >= 0) {
                const QString marker = QStringLiteral(".%1.").arg(block);
                const int at = n->title.indexOf(marker);
                if (at >= 0)
                    return n->title.mid(at + marker.size());
            }
            return n->title;
        }
        return QStringLiteral("%1 (%2)").arg(n->title).arg(n->names.size());
    case Qt::ToolTipRole:
        if (n->kind == NodeKind::Tensor) {
            const TensorInfo& t = m_document->layout().tensors[n->tensor];
            return tr("%1\n%2, %3 parameters\nstored %4 as %5, planned %6")
                .arg(n->title, formatShape(t.shape), formatCount(t.elements()), formatBytes(t.bytes),
                     QString::fromLatin1(dtypeName(t.dtype)), formatBytes(n->bytes));
        }
        return tr("%1: %2 parameters, %3 — drag to move every tensor in it").arg(n->title, formatCount(n->params),
                                                                                  formatBytes(n->bytes));
    case Qt::TextAlignmentRole:
        return index.column() == SizeColumn ? QVariant(int(Qt::AlignRight | Qt::AlignVCenter)) : QVariant();
    case Qt::FontRole:
        if (n->kind != NodeKind::Tensor) {
            QFont f;
            f.setBold(true);
            return f;
        }
        return {};
    case TensorNamesRole:
        return n->names;
    case FormatRole:
        return m_tiers[size_t(n->tier)].format;
    case NodeKindRole:
        return int(n->kind);
    case BytesRole:
        return qulonglong(n->bytes);
    default:
        return {};
    }
}

QVariant TierBoardModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    return section == NameColumn ? tr("Tensor") : section == SizeColumn ? tr("Size") : QVariant();
}

Qt::ItemFlags TierBoardModel::flags(const QModelIndex& index) const
{
    const Node* n = node(index);
    if (!n)
        return Qt::NoItemFlags;
    Qt::ItemFlags f = Qt::ItemIsEnabled | Qt::ItemIsSelectable | Qt::ItemIsDragEnabled;
    if (m_tiers[size_t(n->tier)].droppable)
        f |= Qt::ItemIsDropEnabled;
    if (n->kind == NodeKind::Tensor)
        f |= Qt::ItemNeverHasChildren;
    return f;
}

QStringList TierBoardModel::mimeTypes() const
{
    return {QString::fromLatin1(mimeType)};
}

QMimeData* TierBoardModel::mimeData(const QModelIndexList& indexes) const
{
    QStringList names;
    std::set<QString> seen;
    for (const QModelIndex& idx : indexes) {
        const Node* n = node(idx);
        if (!n)
            continue;
        for (const QString& name : n->names)
            if (seen.insert(name).second)
                names << name;
    }
    if (names.isEmpty())
        return nullptr;
    QByteArray bytes;
    QDataStream stream(&bytes, QIODevice::WriteOnly);
    stream.setVersion(QDataStream::Qt_6_0);
    stream << quint32(1) << names; // format version, then the names
    auto* mime = new QMimeData;
    mime->setData(QString::fromLatin1(mimeType), bytes);
    mime->setText(names.join(QLatin1Char('\n')));
    return mime;
}

QStringList TierBoardModel::namesFromMime(const QMimeData* data)
{
    if (!data || !data->hasFormat(QString::fromLatin1(mimeType)))
        return {};
    QByteArray bytes = data->data(QString::fromLatin1(mimeType));
    QDataStream stream(&bytes, QIODevice::ReadOnly);
    stream.setVersion(QDataStream::Qt_6_0);
    quint32 version = 0;
    QStringList names;
    stream >> version;
    if (version != 1)
        return {};
    stream >> names;
    return stream.status() == QDataStream::Ok ? names : QStringList();
}

bool TierBoardModel::canDropMimeData(const QMimeData* data, Qt::DropAction action, int, int,
                                     const QModelIndex& parent) const
{
    return (action == Qt::MoveAction || action == Qt::CopyAction) && tierAcceptsDrops(tierOf(parent)) &&
           data && data->hasFormat(QString::fromLatin1(mimeType));
}

bool TierBoardModel::dropMimeData(const QMimeData* data, Qt::DropAction action, int row, int column,
                                  const QModelIndex& parent)
{
    if (!canDropMimeData(data, action, row, column, parent))
        return false;
    const QStringList names = namesFromMime(data);
    if (names.isEmpty())
        return false;
    const QString format = tierFormat(tierOf(parent));
    m_document->assign(names, format); // one undo step; the model rebuilds on planChanged
    return true;
}

Qt::DropActions TierBoardModel::supportedDropActions() const
{
    return Qt::MoveAction | Qt::CopyAction;
}

Qt::DropActions TierBoardModel::supportedDragActions() const
{
    return Qt::MoveAction;
}

} // namespace qs
