#include "widgets/statstablemodel.h"

#include "core/stats/stats.h"
#include "widgets/formatting.h"
#include "widgets/statsstore.h"

#include <QBrush>
#include <QColor>
#include <QIODevice>
#include <QTextStream>

#include <algorithm>
#include <cmath>

namespace qs {

namespace {

// Ratio of the largest per-channel absmax to the median one: how much the worst channel dominates.
std::optional<double> channelRatio(const TensorStats& s)
{
    if (s.channelAbsmax.size() < 2)
        return std::nullopt;
    std::vector<float> v = s.channelAbsmax;
    auto mid = v.begin() + std::ptrdiff_t(v.size() / 2);
    std::nth_element(v.begin(), mid, v.end());
    const double median = *mid;
    const double maximum = *std::max_element(s.channelAbsmax.begin(), s.channelAbsmax.end());
    if (median <= 0)
        return std::nullopt;
    return maximum / median;
}

bool isCountColumn(int column)
{
    using C = StatsTableModel::Column;
    return column == C::ElementsColumn || column == C::ZerosColumn || column == C::NanColumn ||
           column == C::InfColumn;
}

} // namespace

StatsTableModel::StatsTableModel(StatsStore* store, QObject* parent) : QAbstractTableModel(parent), m_store(store)
{
    connect(store, &StatsStore::cleared, this, &StatsTableModel::reload);
    connect(store, &StatsStore::tensorsReady, this, &StatsTableModel::onTensorsReady);
    reload();
}

void StatsTableModel::reload()
{
    beginResetModel();
    m_model = m_store->model();
    endResetModel();
}

QString StatsTableModel::columnKey(int column)
{
    static const char* const keys[] = {"name",   "role",     "block",    "dtype", "count",        "min",
                                       "max",    "mean",     "std",      "absmax", "kurtosis",    "zeros",
                                       "nan",    "inf",      "beyond_3sigma", "beyond_6sigma", "channel_ratio",
                                       "plan"};
    return column >= 0 && column < ColumnCount ? QString::fromLatin1(keys[column]) : QString();
}

void StatsTableModel::onTensorsReady(const std::vector<size_t>& indices)
{
    if (indices.empty() || !m_model)
        return;
    // One dataChanged per contiguous run keeps views cheap even for thousands of rows.
    std::vector<size_t> sorted = indices;
    std::sort(sorted.begin(), sorted.end());
    size_t start = sorted.front(), prev = start;
    for (size_t k = 1; k <= sorted.size(); ++k) {
        if (k < sorted.size() && sorted[k] == prev + 1) {
            prev = sorted[k];
            continue;
        }
        emit dataChanged(index(int(start), 0), index(int(prev), ColumnCount - 1));
        if (k < sorted.size())
            start = prev = sorted[k];
    }
}

int StatsTableModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() || !m_model ? 0 : int(m_model->tensors().size());
}

int StatsTableModel::columnCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

std::optional<double> StatsTableModel::value(int row, int column) const
{
    const TensorStats* s = m_store->stats(size_t(row));
    if (!s || !s->error.empty())
        return std::nullopt;
    return statisticValue(*s, columnKey(column));
}

std::optional<double> statisticValue(const TensorStats& s, const QString& key)
{
    if (key == QLatin1String("count")) return double(s.count);
    if (key == QLatin1String("min")) return s.min;
    if (key == QLatin1String("max")) return s.max;
    if (key == QLatin1String("mean")) return s.mean;
    if (key == QLatin1String("std")) return s.std;
    if (key == QLatin1String("absmax")) return s.absmax;
    if (key == QLatin1String("kurtosis")) return s.kurtosis;
    if (key == QLatin1String("zeros")) return double(s.zeros);
    if (key == QLatin1String("nan")) return double(s.nan);
    if (key == QLatin1String("inf")) return double(s.inf);
    if (key == QLatin1String("beyond_3sigma")) return 100.0 * s.share3Sigma();
    if (key == QLatin1String("beyond_6sigma")) return 100.0 * s.share6Sigma();
    if (key == QLatin1String("channel_ratio")) return channelRatio(s);
    return std::nullopt;
}

QVariant StatsTableModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid) || !m_model)
        return {};
    const int row = index.row();
    const int column = index.column();
    const TensorInfo& t = m_model->tensors()[size_t(row)];
    const TensorStats* s = m_store->stats(size_t(row));

    switch (role) {
    case TensorNameRole:
        return QString::fromStdString(t.name);
    case TensorIndexRole:
        return row;
    case RoleIdRole:
        return int(t.role.role);
    case BlockRole:
        return t.role.block;
    case HasStatsRole:
        return s != nullptr && s->error.empty();
    default:
        break;
    }

    if (column == PlanColumn) {
        if (role == Qt::DisplayRole || role == ExportRole || role == SortRole)
            return m_formatOf ? m_formatOf(t.name) : QString();
        return {};
    }
    if (column <= DTypeColumn) {
        switch (column) {
        case NameColumn:
            if (role == Qt::DisplayRole || role == ExportRole || role == Qt::ToolTipRole)
                return QString::fromStdString(t.name);
            if (role == SortRole)
                return row;
            break;
        case RoleColumn:
            if (role == Qt::DisplayRole || role == ExportRole || role == SortRole)
                return QString::fromLatin1(roleName(t.role.role));
            break;
        case BlockColumn:
            if (role == SortRole || role == ExportRole)
                return t.role.block;
            if (role == Qt::DisplayRole)
                return t.role.block >= 0 ? QString::number(t.role.block) : QString();
            if (role == Qt::TextAlignmentRole)
                return int(Qt::AlignRight | Qt::AlignVCenter);
            break;
        case DTypeColumn:
            if (role == Qt::DisplayRole || role == ExportRole || role == SortRole)
                return QString::fromLatin1(dtypeName(t.dtype));
            break;
        }
        return {};
    }

    if (role == Qt::TextAlignmentRole)
        return int(Qt::AlignRight | Qt::AlignVCenter);
    if (s && !s->error.empty()) {
        if (role == Qt::ToolTipRole)
            return QString::fromStdString(s->error);
        if (role == Qt::DisplayRole && column == MinColumn)
            return tr("not analysed");
        if (role == Qt::ForegroundRole)
            return QBrush(QColor(150, 40, 40));
        return {};
    }
    const auto v = value(row, column);
    switch (role) {
    case Qt::DisplayRole:
        if (!v)
            return {};
        if (isCountColumn(column))
            return formatExact(uint64_t(*v));
        if (column == Beyond3Column || column == Beyond6Column)
            return QString::number(*v, 'f', *v != 0 && *v < 0.01 ? 4 : 2);
        if (column == ChannelRatioColumn)
            return QString::number(*v, 'f', 1);
        return formatStat(*v);
    case SortRole:
        return v ? QVariant(*v) : QVariant(-std::numeric_limits<double>::infinity());
    case ExportRole:
        if (!v)
            return QString();
        if (isCountColumn(column))
            return QString::number(uint64_t(*v));
        return QString::number(*v, 'g', 10);
    case Qt::ForegroundRole:
        // Draw attention to what matters for quantization: heavy tails and dominating channels.
        if (v && ((column == KurtosisColumn && *v > 10) || (column == Beyond6Column && *v > 0.01) ||
                  (column == ChannelRatioColumn && *v > 8) || ((column == NanColumn || column == InfColumn) && *v > 0)))
            return QBrush(QColor(190, 40, 20));
        return {};
    case Qt::ToolTipRole:
        if (v && column == ChannelRatioColumn)
            return tr("Largest per-channel absmax / median per-channel absmax");
        return {};
    default:
        return {};
    }
}

QVariant StatsTableModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || section < 0 || section >= ColumnCount)
        return QAbstractTableModel::headerData(section, orientation, role);
    if (role == Qt::DisplayRole) {
        static const char* const titles[] = {"Name",  "Role",     "Block",     "DType",    "Elements", "Min",
                                             "Max",   "Mean",     "Std",       "Absmax",   "Kurtosis", "Zeros",
                                             "NaN",   "Inf",      ">3σ %",     ">6σ %",    "Ch. ratio",
                                             "Plan"};
        return tr(titles[section]);
    }
    if (role == Qt::ToolTipRole) {
        switch (section) {
        case KurtosisColumn: return tr("Excess kurtosis (0 for a Gaussian; large values mean heavy tails)");
        case Beyond3Column: return tr("Share of values farther than 3 standard deviations from the mean, in %");
        case Beyond6Column: return tr("Share of values farther than 6 standard deviations from the mean, in %");
        case ChannelRatioColumn: return tr("Largest per-channel absmax divided by the median per-channel absmax");
        default: return {};
        }
    }
    return {};
}

void StatsTableModel::setFormatLookup(std::function<QString(const std::string&)> lookup)
{
    m_formatOf = std::move(lookup);
    planChanged();
}

void StatsTableModel::planChanged()
{
    if (rowCount() > 0)
        emit dataChanged(index(0, PlanColumn), index(rowCount() - 1, PlanColumn));
}

QModelIndex StatsTableModel::indexForTensor(const QString& name) const
{
    if (!m_model)
        return {};
    const TensorInfo* t = m_model->find(name.toStdString());
    return t ? index(int(t - m_model->tensors().data()), 0) : QModelIndex();
}

StatsFilterProxy::StatsFilterProxy(QObject* parent) : QSortFilterProxyModel(parent)
{
    setSortRole(StatsTableModel::SortRole);
    setSortCaseSensitivity(Qt::CaseInsensitive);
    setDynamicSortFilter(true);
}

bool StatsFilterProxy::setNamePattern(const QString& pattern)
{
    QRegularExpression re(pattern, QRegularExpression::CaseInsensitiveOption);
    const bool valid = re.isValid();
    if (!valid)
        re = QRegularExpression(QRegularExpression::escape(pattern), QRegularExpression::CaseInsensitiveOption);
    m_name = re;
    invalidateFilter();
    return valid;
}

void StatsFilterProxy::setRole(std::optional<int> role)
{
    m_role = role;
    invalidateFilter();
}

void StatsFilterProxy::setBlockRange(int first, int last)
{
    m_firstBlock = first;
    m_lastBlock = last;
    invalidateFilter();
}

bool StatsFilterProxy::filterAcceptsRow(int sourceRow, const QModelIndex& sourceParent) const
{
    const QModelIndex idx = sourceModel()->index(sourceRow, 0, sourceParent);
    if (m_role && idx.data(StatsTableModel::RoleIdRole).toInt() != *m_role)
        return false;
    const int block = idx.data(StatsTableModel::BlockRole).toInt();
    if (m_firstBlock >= 0 && (block < m_firstBlock || block > m_lastBlock))
        return false;
    if (!m_name.pattern().isEmpty() && !m_name.match(idx.data(StatsTableModel::TensorNameRole).toString()).hasMatch())
        return false;
    return true;
}

bool writeCsv(const QAbstractItemModel& model, QIODevice* out)
{
    auto quote = [](QString s) {
        if (s.contains(QLatin1Char(',')) || s.contains(QLatin1Char('"')) || s.contains(QLatin1Char('\n'))) {
            s.replace(QLatin1String("\""), QLatin1String("\"\""));
            s = QLatin1Char('"') + s + QLatin1Char('"');
        }
        return s;
    };
    QTextStream stream(out);
    const int columns = model.columnCount();
    QStringList header;
    for (int c = 0; c < columns; ++c) {
        // Stable machine-readable keys where the model is ours, the header text otherwise.
        const QString key = StatsTableModel::columnKey(c);
        header << quote(key.isEmpty() || columns != StatsTableModel::ColumnCount
                            ? model.headerData(c, Qt::Horizontal).toString()
                            : key);
    }
    stream << header.join(QLatin1Char(',')) << "\r\n";
    for (int r = 0; r < model.rowCount(); ++r) {
        QStringList fields;
        for (int c = 0; c < columns; ++c) {
            const QModelIndex idx = model.index(r, c);
            QVariant v = idx.data(StatsTableModel::ExportRole);
            if (!v.isValid())
                v = idx.data(Qt::DisplayRole);
            fields << quote(v.toString());
        }
        stream << fields.join(QLatin1Char(',')) << "\r\n";
    }
    stream.flush();
    return stream.status() == QTextStream::Ok;
}

} // namespace qs
