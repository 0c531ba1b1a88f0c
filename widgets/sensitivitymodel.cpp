#include "widgets/sensitivitymodel.h"

#include "widgets/formatting.h"
#include "widgets/sensitivitystore.h"

#include <QBrush>
#include <algorithm>
#include <climits>
#include <cmath>
#include <iterator>
#include <limits>

namespace qs {

namespace {

bool darkColor(const QColor& c)
{
    return 0.299 * c.redF() + 0.587 * c.greenF() + 0.114 * c.blueF() < 0.5;
}

QHash<QString, int> positions(const QStringList& names)
{
    QHash<QString, int> hash;
    hash.reserve(names.size());
    for (int i = 0; i < names.size(); ++i)
        hash.insert(names[i], i);
    return hash;
}

} // namespace

SensitivityModel::SensitivityModel(QObject* parent) : QAbstractTableModel(parent) {}

SensitivityModel::~SensitivityModel() = default;

void SensitivityModel::setStore(const SensitivityStore* store)
{
    if (m_store)
        disconnect(m_store, nullptr, this, nullptr);
    m_store = store;
    if (!store) {
        resetLayout(m_tensors, m_formats);
        return;
    }
    connect(store, &SensitivityStore::resultsReady, this, &SensitivityModel::absorb);
    connect(store, &SensitivityStore::cleared, this,
            [this] { resetLayout(m_store->tensors(), m_store->formats()); });
    connect(store, &SensitivityStore::started, this, [this] { setRunning(true); });
    connect(store, &SensitivityStore::finished, this, [this] { setRunning(false); });
    // The store usually outlives the views; if not, the model shows nothing rather than dangling.
    connect(store, &QObject::destroyed, this, [this] {
        m_store = nullptr;
        resetLayout(m_tensors, m_formats);
    });
    m_running = store->isRunning();
    resetLayout(store->tensors(), store->formats());
}

void SensitivityModel::setTensors(const QStringList& tensors)
{
    resetLayout(tensors, m_formats);
}

void SensitivityModel::setFormats(const QStringList& formats)
{
    resetLayout(m_tensors, formats);
}

void SensitivityModel::clear()
{
    resetLayout(m_tensors, m_formats);
}

void SensitivityModel::resetLayout(const QStringList& tensors, const QStringList& formats)
{
    beginResetModel();
    m_tensors = tensors;
    m_formats = formats;
    m_rowOf = positions(tensors);
    m_columnOf = positions(formats);
    const size_t cells = size_t(tensors.size()) * size_t(formats.size());
    m_states.assign(cells, CellState::Pending);
    m_own.clear();
    if (m_store) {
        for (int row = 0; row < tensors.size(); ++row)
            for (int column = 0; column < formats.size(); ++column)
                if (const SensitivityResult* r = m_store->result(tensors[row], formats[column]))
                    m_states[cellIndex(row, column)] = r->ok() ? CellState::Ok : CellState::NotApplicable;
    } else {
        m_own.resize(cells);
    }
    recount();
    updateScale();
    endResetModel();
}

void SensitivityModel::addResults(const std::vector<SensitivityResult>& results)
{
    if (!m_store)
        absorb(results);
}

void SensitivityModel::absorb(const std::vector<SensitivityResult>& results)
{
    int top = INT_MAX, left = INT_MAX, bottom = -1, right = -1;
    bool replaced = false;
    for (const SensitivityResult& r : results) {
        const int row = rowOf(QString::fromStdString(r.tensor));
        const int column = columnOf(QString::fromStdString(r.format));
        if (row < 0 || column < 0)
            continue;
        const size_t i = cellIndex(row, column);
        if (!m_own.empty())
            m_own[i] = r;
        replaced = replaced || m_states[i] != CellState::Pending;
        m_states[i] = r.ok() ? CellState::Ok : CellState::NotApplicable;
        if (!replaced)
            count(r);
        top = std::min(top, row);
        bottom = std::max(bottom, row);
        left = std::min(left, column);
        right = std::max(right, column);
    }
    if (bottom < 0)
        return;
    // A replaced cell may have held the minimum or maximum: count again from scratch.
    if (replaced)
        recount();
    if (updateScale())
        emit dataChanged(index(0, 0), index(rowCount() - 1, columnCount() - 1));
    else
        emit dataChanged(index(top, left), index(bottom, right));
}

void SensitivityModel::recount()
{
    m_summary = {};
    m_summary.minSqnr = std::numeric_limits<double>::infinity();
    m_summary.maxSqnr = -m_summary.minSqnr;
    for (int row = 0; row < m_tensors.size(); ++row)
        for (int column = 0; column < m_formats.size(); ++column)
            if (const SensitivityResult* r = result(row, column))
                count(*r);
}

void SensitivityModel::count(const SensitivityResult& r)
{
    if (!r.ok()) {
        ++m_summary.notApplicable;
        return;
    }
    ++m_summary.ok;
    if (std::isfinite(r.metrics.sqnrDb)) {
        m_summary.minSqnr = std::min(m_summary.minSqnr, r.metrics.sqnrDb);
        m_summary.maxSqnr = std::max(m_summary.maxSqnr, r.metrics.sqnrDb);
    }
}

bool SensitivityModel::updateScale()
{
    const double lo = m_summary.minSqnr, hi = m_summary.maxSqnr;
    const auto old = colorRange();
    if (lo > hi) {
        m_lo = 0;
        m_hi = 60;
    } else {
        m_lo = std::floor(lo / 5.0) * 5.0;
        m_hi = std::max(m_lo + 5.0, std::ceil(hi / 5.0) * 5.0);
    }
    return colorRange() != old;
}

void SensitivityModel::setRunning(bool running)
{
    if (running == m_running)
        return;
    m_running = running;
    if (rowCount() > 0 && columnCount() > 0)
        emit dataChanged(index(0, 0), index(rowCount() - 1, columnCount() - 1), {Qt::ToolTipRole});
}

const SensitivityResult* SensitivityModel::result(int row, int column) const
{
    if (row < 0 || row >= m_tensors.size() || column < 0 || column >= m_formats.size())
        return nullptr;
    const size_t i = cellIndex(row, column);
    if (m_states[i] == CellState::Pending)
        return nullptr;
    if (m_store)
        return m_store->result(m_tensors[row], m_formats[column]);
    return m_own[i] ? &*m_own[i] : nullptr;
}

SensitivityModel::CellState SensitivityModel::state(int row, int column) const
{
    if (row < 0 || row >= m_tensors.size() || column < 0 || column >= m_formats.size())
        return CellState::Pending;
    return m_states[cellIndex(row, column)];
}

QColor SensitivityModel::rampColor(double t)
{
    // Red (little signal left) through pale yellow to blue (faithful): diverging, and readable with red-green
    // colour blindness, unlike red-to-green.
    static const QColor stops[] = {QColor(0xd7, 0x30, 0x27), QColor(0xfc, 0x8d, 0x59),
                                   QColor(0xfe, 0xe0, 0x90), QColor(0x91, 0xbf, 0xdb),
                                   QColor(0x45, 0x75, 0xb4)};
    constexpr int n = int(std::size(stops));
    t = std::clamp(t, 0.0, 1.0) * (n - 1);
    const int i = std::min(n - 2, int(t));
    const double f = t - i;
    const QColor& a = stops[i];
    const QColor& b = stops[i + 1];
    return QColor::fromRgbF(float(a.redF() + f * (b.redF() - a.redF())),
                            float(a.greenF() + f * (b.greenF() - a.greenF())),
                            float(a.blueF() + f * (b.blueF() - a.blueF())));
}

QColor SensitivityModel::colorFor(double sqnrDb) const
{
    if (!std::isfinite(sqnrDb))
        return rampColor(sqnrDb > 0 ? 1.0 : 0.0);
    return rampColor((sqnrDb - m_lo) / (m_hi - m_lo));
}

int SensitivityModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : int(m_tensors.size());
}

int SensitivityModel::columnCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : int(m_formats.size());
}

QVariant SensitivityModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const int row = index.row(), column = index.column();
    // Answered before the lookup in the store, which the other roles need and these do not.
    switch (role) {
    case Qt::TextAlignmentRole:
        return int(Qt::AlignCenter);
    case StateRole:
        return int(m_states[cellIndex(row, column)]);
    case TensorNameRole:
        return m_tensors[row];
    case FormatNameRole:
        return m_formats[column];
    default:
        break;
    }
    const SensitivityResult* r = result(row, column);
    switch (role) {
    case Qt::DisplayRole:
        return cellText(r);
    case Qt::ToolTipRole:
        return cellToolTip(row, column);
    case Qt::BackgroundRole:
        if (!r)
            return QBrush(QColor(248, 248, 248));
        return QBrush(r->ok() ? colorFor(r->metrics.sqnrDb) : QColor(236, 236, 236));
    case Qt::ForegroundRole:
        if (!r)
            return {};
        if (!r->ok())
            return QBrush(QColor(120, 120, 120));
        return QBrush(darkColor(colorFor(r->metrics.sqnrDb)) ? Qt::white : Qt::black);
    case SqnrRole:
        return r && r->ok() ? QVariant(r->metrics.sqnrDb) : QVariant();
    case BitsPerWeightRole:
        return r && r->ok() ? QVariant(r->bitsPerWeight) : QVariant();
    default:
        return {};
    }
}

QVariant SensitivityModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    const QStringList& names = orientation == Qt::Horizontal ? m_formats : m_tensors;
    const int nameRole = orientation == Qt::Horizontal ? FormatNameRole : TensorNameRole;
    if (section < 0 || section >= names.size() || (role != Qt::DisplayRole && role != nameRole))
        return {};
    return names[section];
}

QString SensitivityModel::cellText(const SensitivityResult* r) const
{
    if (!r)
        return {};
    if (!r->ok())
        return QStringLiteral("n/a");
    if (std::isinf(r->metrics.sqnrDb))
        return QStringLiteral("∞");
    return QString::number(r->metrics.sqnrDb, 'f', 1);
}

QString SensitivityModel::cellToolTip(int row, int column) const
{
    const QString head = QStringLiteral("<b>%1</b> as <b>%2</b>")
                             .arg(m_tensors[row].toHtmlEscaped(), m_formats[column].toHtmlEscaped());
    const SensitivityResult* r = result(row, column);
    if (!r)
        return head + QStringLiteral("<br>") + (m_running ? tr("computing…") : tr("not computed"));
    if (!r->ok())
        return head + QStringLiteral("<br>") +
               tr("n/a: %1").arg(QString::fromStdString(r->error).toHtmlEscaped());
    const ErrorMetrics& m = r->metrics;
    QString tip = head + QStringLiteral("<table>");
    auto line = [&tip](const QString& key, const QString& value) {
        tip += QStringLiteral("<tr><td>%1</td><td align=right>&nbsp;%2</td></tr>").arg(key, value);
    };
    line(tr("bits per weight"), QString::number(r->bitsPerWeight, 'f', 3));
    line(tr("bytes"), QStringLiteral("%1 (%2)").arg(formatExact(r->bytes), formatBytes(r->bytes)));
    if (r->isDeltaKl()) { // measured end to end: the cell's number is −10·log10(ΔKL)
        line(tr("ΔKL"), tr("%1 nats").arg(QString::number(r->deltaKl, 'g', 4)));
        line(tr("score"), QStringLiteral("%1 dB").arg(QString::number(m.sqnrDb, 'f', 2)));
        return tip + QStringLiteral("</table>");
    }
    line(tr("SQNR"), QStringLiteral("%1 dB").arg(QString::number(m.sqnrDb, 'f', 2)));
    line(tr("rel MSE"), QString::number(m.relMse, 'g', 4));
    line(tr("cosine"), QString::number(m.cosine, 'f', 6));
    line(tr("max |error|"), QString::number(m.maxAbsErr, 'g', 4));
    if (m.weightedMse)
        line(tr("weighted MSE"), QString::number(*m.weightedMse, 'g', 4));
    if (const auto& s = r->sample) { // an estimate from a row sample (core/quant/sensitivity.h)
        line(tr("estimated from"), tr("%1 % of the rows").arg(QString::number(100 * s->fraction, 'f', 1)));
        line(tr("SQNR 95 % interval"), QStringLiteral("%1 … %2 dB")
                                           .arg(QString::number(s->sqnrLowDb, 'f', 2),
                                                QString::number(s->sqnrHighDb, 'f', 2)));
        line(tr("note"), tr("max |error| is the sample's largest"));
    }
    tip += QStringLiteral("</table>");
    return tip;
}

} // namespace qs
