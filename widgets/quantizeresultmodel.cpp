#include "widgets/quantizeresultmodel.h"

#include "widgets/formatting.h"

#include <cmath>

namespace qs {

QuantizeResultModel::QuantizeResultModel(QObject* parent) : QAbstractTableModel(parent) {}

void QuantizeResultModel::setTensors(std::vector<QuantizedTensor> tensors)
{
    beginResetModel();
    m_tensors = std::move(tensors);
    endResetModel();
}

int QuantizeResultModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : int(m_tensors.size());
}

int QuantizeResultModel::columnCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

QVariant QuantizeResultModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const QuantizedTensor& t = m_tensors[size_t(index.row())];
    const int column = index.column();
    if (role == Qt::TextAlignmentRole)
        return column >= BytesColumn ? QVariant(Qt::AlignRight | Qt::AlignVCenter) : QVariant();
    if (role == Qt::ToolTipRole) {
        if (column == SqnrColumn)
            return t.copied ? tr("Copied unchanged: no error")
                            : tr("Measured on %1 values (sampled rows)").arg(formatExact(t.sampledValues));
        if (column == BytesColumn)
            return tr("%1 bytes").arg(formatExact(t.bytes));
        return {};
    }
    if (role == SortRole) {
        switch (column) {
        case NameColumn:
            return QString::fromStdString(t.name);
        case FormatColumn:
            return QString::fromStdString(t.format);
        case BytesColumn:
            return QVariant::fromValue<qulonglong>(t.bytes);
        case SqnrColumn:
            return std::isfinite(t.sqnrDb) ? t.sqnrDb : (t.sqnrDb > 0 ? 1e300 : -1e300);
        default:
            return {};
        }
    }
    if (role != Qt::DisplayRole)
        return {};
    switch (column) {
    case NameColumn:
        return QString::fromStdString(t.name);
    case FormatColumn:
        return t.copied ? tr("%1 (copied)").arg(QString::fromStdString(t.format)) : QString::fromStdString(t.format);
    case BytesColumn:
        return formatBytes(t.bytes);
    case SqnrColumn:
        if (std::isfinite(t.sqnrDb))
            return QString::number(t.sqnrDb, 'f', 2);
        return t.sqnrDb > 0 ? tr("exact") : tr("−∞");
    default:
        return {};
    }
}

QVariant QuantizeResultModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    switch (section) {
    case NameColumn:
        return tr("Tensor");
    case FormatColumn:
        return tr("Format");
    case BytesColumn:
        return tr("Bytes");
    case SqnrColumn:
        return tr("SQNR (dB)");
    default:
        return {};
    }
}

} // namespace qs
