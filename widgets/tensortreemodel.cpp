#include "widgets/tensortreemodel.h"

#include "widgets/formatting.h"

#include <QFont>
#include <QStringList>

#include <algorithm>
#include <map>

namespace qs {

namespace {

// internalId 0 marks a group row; a tensor row stores its group's row + 1.
constexpr quintptr groupMarker = 0;

// modelHasBlocks: a norm outside the blocks is the final norm (head) only in a block-structured model;
// in a convolutional network it is just another layer.
TensorTreeModel::GroupKind groupKindOf(const TensorInfo& tensor, bool modelHasBlocks)
{
    using Kind = TensorTreeModel::GroupKind;
    if (tensor.role.block >= 0)
        return Kind::Block;
    switch (tensor.role.role) {
    case TensorRole::Embedding:
    case TensorRole::PositionEmbedding:
        return Kind::Embedding;
    case TensorRole::OutputHead:
        return Kind::Head;
    case TensorRole::Norm:
        return modelHasBlocks ? Kind::Head : Kind::Other;
    default:
        return Kind::Other;
    }
}

} // namespace

TensorTreeModel::TensorTreeModel(QObject* parent) : QAbstractItemModel(parent) {}

TensorTreeModel::~TensorTreeModel() = default;

void TensorTreeModel::setModel(std::shared_ptr<const Model> model)
{
    beginResetModel();
    m_model = std::move(model);
    m_groups.clear();
    m_tensorPosition.clear();
    if (m_model) {
        const auto& tensors = m_model->tensors();
        m_hasBlocks = std::any_of(tensors.begin(), tensors.end(), [](const TensorInfo& t) { return t.role.block >= 0; });
        // Ordered key: (kind order, block) so blocks come out numerically between embedding and head.
        std::map<std::pair<int, int>, Group> grouped;
        for (size_t i = 0; i < tensors.size(); ++i) {
            const TensorInfo& t = tensors[i];
            const GroupKind kind = groupKindOf(t, m_hasBlocks);
            const int order = kind == GroupKind::Embedding ? 0 : kind == GroupKind::Block ? 1
                              : kind == GroupKind::Head    ? 2 : 3;
            Group& g = grouped[{order, kind == GroupKind::Block ? t.role.block : -1}];
            g.kind = kind;
            g.block = kind == GroupKind::Block ? t.role.block : -1;
            g.tensors.push_back(int(i));
            g.parameters += t.elements();
            g.bytes += t.bytes;
        }
        m_tensorPosition.resize(tensors.size());
        for (auto& [key, group] : grouped) {
            QStringList dtypes;
            for (int ti : group.tensors) {
                const QString name = QString::fromLatin1(dtypeName(tensors[size_t(ti)].dtype));
                if (!dtypes.contains(name))
                    dtypes << name;
            }
            group.dtypes = dtypes.join(QStringLiteral(", "));
            const int groupRow = int(m_groups.size());
            for (size_t r = 0; r < group.tensors.size(); ++r)
                m_tensorPosition[size_t(group.tensors[r])] = {groupRow, int(r)};
            m_groups.push_back(std::move(group));
        }
    }
    endResetModel();
}

void TensorTreeModel::setFormatLookup(FormatLookup lookup)
{
    m_formatOf = std::move(lookup);
    planChanged();
}

void TensorTreeModel::planChanged()
{
    if (m_groups.empty())
        return;
    emit dataChanged(index(0, PlanColumn), index(groupCount() - 1, PlanColumn));
    for (int g = 0; g < groupCount(); ++g) {
        const QModelIndex parent = index(g, 0);
        const int rows = rowCount(parent);
        if (rows > 0)
            emit dataChanged(index(0, PlanColumn, parent), index(rows - 1, PlanColumn, parent));
    }
}

QModelIndex TensorTreeModel::indexForTensor(const QString& name) const
{
    if (!m_model)
        return {};
    const TensorInfo* t = m_model->find(name.toStdString());
    if (!t)
        return {};
    const auto ti = size_t(t - m_model->tensors().data());
    const auto [group, row] = m_tensorPosition[ti];
    return createIndex(row, 0, quintptr(group + 1));
}

QString TensorTreeModel::groupTitle(int group) const
{
    if (group < 0 || group >= groupCount())
        return {};
    const Group& g = m_groups[size_t(group)];
    switch (g.kind) {
    case GroupKind::Embedding:
        return tr("Embedding");
    case GroupKind::Block:
        return tr("Block %1").arg(g.block);
    case GroupKind::Head:
        return tr("Head");
    case GroupKind::Other:
        break;
    }
    return tr("Other");
}

QModelIndex TensorTreeModel::index(int row, int column, const QModelIndex& parent) const
{
    if (row < 0 || column < 0 || column >= ColumnCount)
        return {};
    if (!parent.isValid())
        return row < groupCount() ? createIndex(row, column, groupMarker) : QModelIndex();
    if (parent.internalId() != groupMarker || parent.row() >= groupCount())
        return {};
    if (row >= int(m_groups[size_t(parent.row())].tensors.size()))
        return {};
    return createIndex(row, column, quintptr(parent.row() + 1));
}

QModelIndex TensorTreeModel::parent(const QModelIndex& child) const
{
    if (!child.isValid() || child.internalId() == groupMarker)
        return {};
    return createIndex(int(child.internalId() - 1), 0, groupMarker);
}

int TensorTreeModel::rowCount(const QModelIndex& parent) const
{
    if (!parent.isValid())
        return groupCount();
    if (parent.column() != 0 || parent.internalId() != groupMarker)
        return 0;
    return int(m_groups[size_t(parent.row())].tensors.size());
}

int TensorTreeModel::columnCount(const QModelIndex&) const
{
    return ColumnCount;
}

QVariant TensorTreeModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid))
        return {};
    if (index.internalId() == groupMarker) {
        if (role == Qt::DisplayRole && index.column() == NameColumn)
            return groupTitle(index.row());
        if (role == FilterTextRole)
            return groupTitle(index.row());
        return groupData(m_groups[size_t(index.row())], index.column(), role);
    }
    const Group& g = m_groups[size_t(index.internalId() - 1)];
    return tensorData(g.tensors[size_t(index.row())], index.column(), role);
}

QVariant TensorTreeModel::groupData(const Group& group, int column, int role) const
{
    switch (role) {
    case Qt::DisplayRole:
        switch (column) {
        case DTypeColumn:
            return group.dtypes;
        case ParametersColumn:
            return formatCount(group.parameters);
        case SizeColumn:
            return formatBytes(group.bytes);
        case RoleColumn:
            return countNoun(group.tensors.size(), "tensor", "tensors");
        case PlanColumn: {
            if (!m_formatOf)
                return {};
            QStringList formats;
            for (int ti : group.tensors) {
                const QString f = m_formatOf(m_model->tensors()[size_t(ti)].name);
                if (!f.isEmpty() && !formats.contains(f))
                    formats << f;
            }
            return formats.join(QStringLiteral(", "));
        }
        default:
            return {};
        }
    case SortRole:
        switch (column) {
        case NameColumn: {
            // Keep groups in their natural order (embedding, blocks by index, head, other).
            const int order = group.kind == GroupKind::Embedding ? 0 : group.kind == GroupKind::Block ? 1
                              : group.kind == GroupKind::Head    ? 2 : 3;
            return qlonglong(order) * 1'000'000 + qMax(group.block, 0);
        }
        case ParametersColumn:
            return qulonglong(group.parameters);
        case SizeColumn:
            return qulonglong(group.bytes);
        default:
            return groupData(group, column, Qt::DisplayRole);
        }
    case Qt::FontRole: {
        QFont font;
        font.setBold(true);
        return font;
    }
    case Qt::TextAlignmentRole:
        if (column == ParametersColumn || column == SizeColumn)
            return int(Qt::AlignRight | Qt::AlignVCenter);
        if (column == PlanColumn)
            return int(Qt::AlignCenter);
        return {};
    case Qt::ToolTipRole:
        if (column == ParametersColumn)
            return tr("%1 parameters").arg(formatExact(group.parameters));
        if (column == SizeColumn)
            return tr("%1 bytes").arg(formatExact(group.bytes));
        return {};
    case TensorIndexRole:
        return -1;
    case GroupRole:
        return int(group.kind);
    case BlockRole:
        return group.block;
    case TensorNameRole:
        return QString();
    default:
        return {};
    }
}

QVariant TensorTreeModel::tensorData(int tensorIndex, int column, int role) const
{
    const TensorInfo& t = m_model->tensors()[size_t(tensorIndex)];
    switch (role) {
    case Qt::DisplayRole:
        switch (column) {
        case NameColumn:
            return QString::fromStdString(t.name);
        case RoleColumn:
            return QString::fromLatin1(roleName(t.role.role));
        case ShapeColumn:
            return formatShape(t.shape);
        case DTypeColumn:
            return QString::fromLatin1(dtypeName(t.dtype));
        case ParametersColumn:
            return formatCount(t.elements());
        case SizeColumn:
            return formatBytes(t.bytes);
        case PlanColumn:
            return m_formatOf ? m_formatOf(t.name) : QString();
        default:
            return {};
        }
    case SortRole:
        switch (column) {
        case NameColumn:
            return tensorIndex; // file order
        case ShapeColumn:
            return qulonglong(t.elements());
        case ParametersColumn:
            return qulonglong(t.elements());
        case SizeColumn:
            return qulonglong(t.bytes);
        default:
            return tensorData(tensorIndex, column, Qt::DisplayRole);
        }
    case Qt::TextAlignmentRole:
        if (column == ParametersColumn || column == SizeColumn)
            return int(Qt::AlignRight | Qt::AlignVCenter);
        if (column == PlanColumn)
            return int(Qt::AlignCenter);
        return {};
    case Qt::ToolTipRole:
        switch (column) {
        case NameColumn:
            return QString::fromStdString(t.name);
        case ParametersColumn:
            return tr("%1 parameters").arg(formatExact(t.elements()));
        case SizeColumn:
            return tr("%1 bytes (%2 bits per weight)")
                .arg(formatExact(t.bytes))
                .arg(t.elements() ? 8.0 * double(t.bytes) / double(t.elements()) : 0.0, 0, 'f', 2);
        default:
            return {};
        }
    case TensorNameRole:
        return QString::fromStdString(t.name);
    case TensorIndexRole:
        return tensorIndex;
    case GroupRole:
        return int(groupKindOf(t, m_hasBlocks));
    case BlockRole:
        return t.role.block;
    case FilterTextRole:
        return QString::fromStdString(t.name) + QLatin1Char(' ') + QString::fromLatin1(roleName(t.role.role));
    default:
        return {};
    }
}

QVariant TensorTreeModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || section < 0 || section >= ColumnCount)
        return {};
    if (role == Qt::DisplayRole) {
        switch (section) {
        case NameColumn:
            return tr("Name");
        case RoleColumn:
            return tr("Role");
        case ShapeColumn:
            return tr("Shape");
        case DTypeColumn:
            return tr("DType");
        case ParametersColumn:
            return tr("Parameters");
        case SizeColumn:
            return tr("Size");
        case PlanColumn:
            return tr("Plan");
        default:
            return {};
        }
    }
    if (role == Qt::TextAlignmentRole && (section == ParametersColumn || section == SizeColumn))
        return int(Qt::AlignRight | Qt::AlignVCenter);
    return {};
}

Qt::ItemFlags TensorTreeModel::flags(const QModelIndex& index) const
{
    if (!index.isValid())
        return Qt::NoItemFlags;
    Qt::ItemFlags f = Qt::ItemIsEnabled | Qt::ItemIsSelectable;
    if (index.internalId() == groupMarker)
        return f;
    return f | Qt::ItemNeverHasChildren;
}

} // namespace qs
