#include "widgets/comparemodel.h"

#include "widgets/formatting.h"

#include <cmath>

namespace qs {

CompareModel::CompareModel(QObject* parent) : QAbstractTableModel(parent) {}

void CompareModel::clear()
{
    beginResetModel();
    m_tensors.clear();
    endResetModel();
}

void CompareModel::appendTensors(std::vector<TensorComparison> tensors)
{
    if (tensors.empty())
        return;
    const int first = int(m_tensors.size());
    beginInsertRows({}, first, first + int(tensors.size()) - 1);
    for (auto& t : tensors)
        m_tensors.push_back(std::move(t));
    endInsertRows();
}

const TensorComparison* CompareModel::tensorAt(int row) const
{
    return row >= 0 && row < int(m_tensors.size()) ? &m_tensors[size_t(row)] : nullptr;
}

int CompareModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : int(m_tensors.size());
}

int CompareModel::columnCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

QVariant CompareModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const TensorComparison& t = m_tensors[size_t(index.row())];
    const int column = index.column();
    const bool identical = t.ok() && t.metrics.mse == 0;
    if (role == Qt::TextAlignmentRole)
        return column >= SqnrColumn ? QVariant(Qt::AlignRight | Qt::AlignVCenter) : QVariant();
    if (role == Qt::ToolTipRole) {
        if (!t.ok())
            return QString::fromStdString(t.error);
        QString tip = tr("%1 values compared").arg(formatExact(t.metrics.count));
        if (t.candidate != t.reference)
            tip += tr("\nIn the candidate: %1").arg(QString::fromStdString(t.candidate));
        if (t.ropePermuted)
            tip += tr("\nRows matched through llama.cpp's q/k rope permutation");
        return tip;
    }
    if (role == SortRole) {
        switch (column) {
        case NameColumn:
            return QString::fromStdString(t.reference);
        case TypesColumn:
            return QString::fromStdString(t.candidateType);
        case SqnrColumn:
            return !t.ok() ? -1e300 : identical ? 1e300 : t.metrics.sqnrDb;
        case RmseColumn:
            return t.ok() ? std::sqrt(t.metrics.mse) : 1e300;
        case MaxDiffColumn:
            return t.ok() ? t.metrics.maxAbsErr : 1e300;
        case CosineColumn:
            return t.ok() ? t.metrics.cosine : -1e300;
        default:
            return {};
        }
    }
    if (role != Qt::DisplayRole)
        return {};
    if (column == NameColumn)
        return QString::fromStdString(t.reference);
    if (column == TypesColumn)
        return t.candidateType.empty() ? QString::fromStdString(t.referenceType)
                                       : QStringLiteral("%1 → %2").arg(QString::fromStdString(t.referenceType),
                                                                      QString::fromStdString(t.candidateType));
    if (!t.ok())
        return column == SqnrColumn ? QString::fromStdString(t.error) : QString();
    switch (column) {
    case SqnrColumn:
        return identical ? tr("identical") : QString::number(t.metrics.sqnrDb, 'f', 2);
    case RmseColumn:
        return QString::number(std::sqrt(t.metrics.mse), 'g', 4);
    case MaxDiffColumn:
        return QString::number(t.metrics.maxAbsErr, 'g', 4);
    case CosineColumn:
        return QString::number(t.metrics.cosine, 'f', 6);
    default:
        return {};
    }
}

QVariant CompareModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    switch (section) {
    case NameColumn:
        return tr("Tensor");
    case TypesColumn:
        return tr("Types");
    case SqnrColumn:
        return tr("SQNR (dB)");
    case RmseColumn:
        return tr("RMSE");
    case MaxDiffColumn:
        return tr("Max |Δ|");
    case CosineColumn:
        return tr("Cosine");
    default:
        return {};
    }
}

} // namespace qs
