#include "widgets/histogramview.h"

#include "core/quant/format.h"
#include "core/stats/stats.h"
#include "widgets/formatting.h"
#include "widgets/plotutil.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QSpinBox>
#include <QStackedWidget>
#include <QToolButton>
#include <QToolBar>
#include <QVBoxLayout>
#include <qcustomplot.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace qs {

namespace {

constexpr int maxGridLines = 512;
constexpr int maxReadoutSeries = 6;

// The values of a "typical" quantization group of the tensor: the row whose absmax is the median
// channel absmax, then within it the group (of the format's size) whose absmax is the median.
std::vector<float> typicalGroup(const Model& model, const TensorInfo& t, const TensorStats& s, int groupSize,
                                QString* where)
{
    if (groupSize == 0) { // one scale per tensor: its range is what matters
        *where = QObject::tr("whole tensor");
        return {float(s.min), float(s.max)};
    }
    const uint64_t rows = t.rows();
    const uint64_t cols = t.columns();
    uint64_t row = 0;
    if (s.channelAbsmax.size() == rows && rows > 0) {
        std::vector<std::pair<float, uint64_t>> order;
        order.reserve(rows);
        for (uint64_t r = 0; r < rows; ++r)
            order.emplace_back(s.channelAbsmax[r], r);
        auto mid = order.begin() + std::ptrdiff_t(rows / 2);
        std::nth_element(order.begin(), mid, order.end());
        row = mid->second;
    }
    std::vector<float> values(cols);
    model.decodeRows(t, row, 1, values.data());
    if (groupSize < 0 || uint64_t(groupSize) >= cols) {
        *where = QObject::tr("row %1").arg(row);
        return values;
    }
    const uint64_t groups = cols / uint64_t(groupSize);
    std::vector<std::pair<float, uint64_t>> absmax;
    for (uint64_t g = 0; g < groups; ++g) {
        float m = 0;
        for (int i = 0; i < groupSize; ++i)
            m = std::max(m, std::fabs(values[g * uint64_t(groupSize) + uint64_t(i)]));
        absmax.emplace_back(m, g);
    }
    auto mid = absmax.begin() + std::ptrdiff_t(absmax.size() / 2);
    std::nth_element(absmax.begin(), mid, absmax.end());
    const uint64_t g = mid->second;
    *where = QObject::tr("row %1, group %2 of %3 values").arg(row).arg(g).arg(groupSize);
    return std::vector<float>(values.begin() + std::ptrdiff_t(g * uint64_t(groupSize)),
                              values.begin() + std::ptrdiff_t((g + 1) * uint64_t(groupSize)));
}

} // namespace

HistogramView::HistogramView(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(2, 2, 2, 2);
    layout->setSpacing(2);

    auto* controls = new QToolBar; // overflows into a menu when the dock is narrow
    controls->setIconSize(QSize(16, 16));
    controls->addWidget(toolbarLabel(tr("Bins:")));
    m_bins = new QSpinBox;
    m_bins->setRange(8, 2048);
    m_bins->setValue(128);
    m_bins->setObjectName(QStringLiteral("histogramBins"));
    controls->addWidget(m_bins);
    m_logY = new QCheckBox(tr("Log y"));
    m_logY->setToolTip(tr("Logarithmic count axis: makes the tails visible"));
    controls->addWidget(m_logY);
    controls->addWidget(toolbarLabel(tr("x:")));
    m_xScale = new QComboBox;
    m_xScale->addItems({tr("Linear"), tr("Symlog")});
    m_xScale->setToolTip(tr("Symmetric log: linear within ±σ, logarithmic beyond — bulk and tails both visible"));
    controls->addWidget(m_xScale);
    m_normalized = new QCheckBox(tr("Normalise"));
    m_normalized->setToolTip(tr("Plot the fraction of each tensor's values per bin, so tensors of different sizes "
                                "compare"));
    controls->addWidget(m_normalized);
    controls->addWidget(toolbarLabel(tr("Grid:")));
    m_grid = new QComboBox;
    m_grid->setObjectName(QStringLiteral("histogramGrid"));
    m_grid->addItem(tr("none"), QString());
    for (const std::string& name : allFormatNames())
        m_grid->addItem(QString::fromStdString(name), QString::fromStdString(name));
    m_grid->setToolTip(tr("Overlay the levels a quantization format would use for a typical group of the "
                          "first tensor"));
    controls->addWidget(m_grid);
    auto* spacer = new QWidget;
    spacer->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
    controls->addWidget(spacer);
    auto* reset = new QToolButton;
    reset->setText(tr("Reset Zoom"));
    reset->setToolTip(tr("Show everything (or double-click the plot)"));
    connect(reset, &QToolButton::clicked, this, &HistogramView::resetZoom);
    controls->addWidget(reset);
    auto* exportButton = new QToolButton;
    exportButton->setIcon(toolIcon("document-export", ":/icons/export.svg"));
    exportButton->setText(tr("Export…"));
    exportButton->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    exportButton->setToolTip(tr("Save the plot as PNG, SVG or PDF"));
    connect(exportButton, &QToolButton::clicked, this, &HistogramView::exportPlot);
    controls->addWidget(exportButton);
    layout->addWidget(controls);

    m_stack = new QStackedWidget;
    m_message = plotMessageLabel();
    m_stack->addWidget(m_message);
    m_plot = new QCustomPlot;
    m_plot->setObjectName(QStringLiteral("histogramPlot"));
    m_plot->setMinimumHeight(160);
    stylePlot(m_plot);
    m_plot->legend->setVisible(true);
    m_plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);
    m_plot->installEventFilter(this);
    m_plot->setMouseTracking(true);
    m_stack->addWidget(m_plot);
    layout->addWidget(m_stack, 1);

    m_crossLine = new QCPItemStraightLine(m_plot);
    m_crossLine->setPen(QPen(QColor(80, 80, 80), 1, Qt::DashLine));
    m_crossLine->setVisible(false);
    m_crossLine->setSelectable(false);
    m_crossLine->point1->setTypeY(QCPItemPosition::ptAxisRectRatio);
    m_crossLine->point2->setTypeY(QCPItemPosition::ptAxisRectRatio);
    m_readout = new QCPItemText(m_plot);
    m_readout->position->setType(QCPItemPosition::ptAxisRectRatio);
    m_readout->position->setCoords(0.01, 0.02);
    m_readout->setPositionAlignment(Qt::AlignTop | Qt::AlignLeft);
    m_readout->setTextAlignment(Qt::AlignLeft);
    m_readout->setBrush(QColor(255, 255, 255, 230));
    m_readout->setPen(QPen(QColor(200, 200, 200)));
    m_readout->setPadding(QMargins(4, 2, 4, 2));
    m_readout->setVisible(false);
    m_gridLabel = new QCPItemText(m_plot);
    m_gridLabel->position->setType(QCPItemPosition::ptAxisRectRatio);
    m_gridLabel->position->setCoords(0.01, 0.98);
    m_gridLabel->setPositionAlignment(Qt::AlignBottom | Qt::AlignLeft);
    m_gridLabel->setColor(QColor(200, 100, 0));
    m_gridLabel->setVisible(false);

    connect(m_bins, &QSpinBox::valueChanged, this, &HistogramView::refresh);
    connect(m_logY, &QCheckBox::toggled, this, &HistogramView::refresh);
    connect(m_xScale, &QComboBox::currentIndexChanged, this, &HistogramView::refresh);
    connect(m_normalized, &QCheckBox::toggled, this, &HistogramView::refresh);
    connect(m_grid, &QComboBox::currentIndexChanged, this, &HistogramView::refresh);
    connect(m_plot, &QCustomPlot::mouseDoubleClick, this, &HistogramView::resetZoom);
    connect(m_plot, &QCustomPlot::mouseMove, this,
            [this](QMouseEvent* e) { updateCrosshair(m_plot->xAxis->pixelToCoord(e->position().x())); });

    setMessage(tr("Select one or more tensors (or a group) to see their value distribution."));
}

HistogramView::~HistogramView() = default;

void HistogramView::setModel(std::shared_ptr<const Model> model)
{
    m_model = std::move(model);
    m_series.clear();
    refresh();
}

void HistogramView::setSeries(std::vector<Series> series)
{
    m_series = std::move(series);
    refresh();
}

void HistogramView::setMessage(const QString& message)
{
    m_series.clear();
    m_binned.clear();
    m_message->setText(message);
    m_stack->setCurrentWidget(m_message);
}

void HistogramView::setBins(int bins) { m_bins->setValue(bins); }
void HistogramView::setLogY(bool on) { m_logY->setChecked(on); }
void HistogramView::setSymlogX(bool on) { m_xScale->setCurrentIndex(on ? 1 : 0); }
void HistogramView::setNormalized(bool on) { m_normalized->setChecked(on); }

void HistogramView::setGridFormat(const QString& format)
{
    const int i = m_grid->findData(format, Qt::UserRole, Qt::MatchFixedString);
    m_grid->setCurrentIndex(i >= 0 ? i : 0);
}

double HistogramView::toAxis(double value) const
{
    return m_xScale->currentIndex() == 1 ? symlogForward(value, m_linthresh) : value;
}

double HistogramView::fromAxis(double coordinate) const
{
    return m_xScale->currentIndex() == 1 ? symlogInverse(coordinate, m_linthresh) : coordinate;
}

void HistogramView::refresh()
{
    m_plot->clearGraphs();
    m_binned.clear();
    std::vector<const Series*> usable;
    for (const Series& s : m_series)
        if (s.stats && s.stats->finite > 0 && s.stats->error.empty())
            usable.push_back(&s);
    if (usable.empty()) {
        if (!m_series.empty())
            m_message->setText(tr("No finite values to plot."));
        updateGrid();
        m_stack->setCurrentWidget(m_message);
        return;
    }

    m_lo = std::numeric_limits<double>::infinity();
    m_hi = -m_lo;
    double minStd = std::numeric_limits<double>::infinity();
    for (const Series* s : usable) {
        m_lo = std::min(m_lo, s->stats->min);
        m_hi = std::max(m_hi, s->stats->max);
        if (s->stats->std > 0)
            minStd = std::min(minStd, s->stats->std);
    }
    if (!(m_hi > m_lo)) {
        const double pad = m_lo != 0 ? std::fabs(m_lo) * 0.01 : 0.5;
        m_lo -= pad;
        m_hi += pad;
    }
    m_linthresh = std::isfinite(minStd) ? minStd : (m_hi - m_lo) / 100.0;
    const bool symlog = m_xScale->currentIndex() == 1;
    const bool logY = m_logY->isChecked();
    const bool normalized = m_normalized->isChecked();
    const auto bins = size_t(m_bins->value());

    double yMax = 0, yMinPositive = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < usable.size(); ++i) {
        const TensorStats& st = *usable[i]->stats;
        const Histogram::Bounds data{st.min, st.max}; // exact: lets edges at a tensor's ends stay put
        BinnedHistogram bh = symlog ? st.histogram.symlog(bins, m_linthresh, m_lo, m_hi, data)
                                    : st.histogram.linear(bins, m_lo, m_hi, data);
        const double total = double(st.histogram.total());
        QVector<double> x, y;
        x.reserve(int(bh.counts.size()) + 1);
        y.reserve(int(bh.counts.size()) + 1);
        // The counts are exact for the bins' real edges; for F32 / F16 data an edge may have moved to a key
        // boundary (see core/stats/histogram.h), so a bin's height is its count per nominal bin width.
        const double nominal = (toAxis(bh.edges.back()) - toAxis(bh.edges.front())) / double(bins);
        for (size_t b = 0; b < bh.counts.size(); ++b) {
            x.push_back(toAxis(bh.edges[b]));
            double v = double(bh.counts[b]);
            const double actual = toAxis(bh.edges[b + 1]) - toAxis(bh.edges[b]);
            if (actual > 0 && nominal > 0 && std::fabs(actual - nominal) > 1e-9 * nominal)
                v *= nominal / actual;
            if (normalized && total > 0)
                v /= total;
            if (v > 0) {
                yMax = std::max(yMax, v);
                yMinPositive = std::min(yMinPositive, v);
            } else if (logY) {
                v = std::numeric_limits<double>::quiet_NaN();
            }
            y.push_back(v);
        }
        if (!y.isEmpty()) { // the right edge of the last bin closes its step
            x.push_back(toAxis(bh.edges.back()));
            y.push_back(y.back());
        }
        QCPGraph* graph = m_plot->addGraph();
        const QColor color = seriesColor(int(i));
        graph->setPen(QPen(color, 1.6));
        if (usable.size() <= 3) {
            QColor fill = color;
            fill.setAlpha(usable.size() == 1 ? 70 : 40);
            graph->setBrush(fill);
        }
        graph->setLineStyle(QCPGraph::lsStepLeft);
        graph->setData(x, y, true);
        graph->setName(usable[i]->label);
        m_binned.push_back(std::move(bh));
    }

    m_plot->xAxis->setLabel(symlog ? tr("value (symmetric log, linear within ±%1)").arg(formatStat(m_linthresh))
                                   : tr("value"));
    m_plot->yAxis->setLabel(normalized ? tr("fraction of values") : tr("count"));
    setSymlogXAxis(m_plot, symlog ? m_linthresh : 0.0);
    if (logY) {
        m_plot->yAxis->setScaleType(QCPAxis::stLogarithmic);
        m_plot->yAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTickerLog));
    } else {
        m_plot->yAxis->setScaleType(QCPAxis::stLinear);
        m_plot->yAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    }
    m_plot->legend->setVisible(true);
    updateGrid();
    resetZoom();
    m_stack->setCurrentWidget(m_plot);
    Q_UNUSED(yMinPositive);
}

void HistogramView::resetZoom()
{
    if (m_binned.empty())
        return;
    const double a = toAxis(m_lo), b = toAxis(m_hi);
    const double margin = (b - a) * 0.02;
    m_plot->xAxis->setRange(a - margin, b + margin);
    double yMax = 0, yMin = std::numeric_limits<double>::infinity();
    for (int g = 0; g < m_plot->graphCount(); ++g)
        for (auto it = m_plot->graph(g)->data()->constBegin(); it != m_plot->graph(g)->data()->constEnd(); ++it)
            if (std::isfinite(it->value) && it->value > 0) {
                yMax = std::max(yMax, it->value);
                yMin = std::min(yMin, it->value);
            }
    if (yMax <= 0)
        yMax = 1;
    if (m_logY->isChecked())
        m_plot->yAxis->setRange(std::isfinite(yMin) ? yMin * 0.5 : 0.5, yMax * 2.0);
    else
        m_plot->yAxis->setRange(0, yMax * 1.08);
    m_plot->replot(QCustomPlot::rpQueuedReplot); // coalesced, drawn from the event loop
}

void HistogramView::updateGrid()
{
    for (int i = m_plot->itemCount() - 1; i >= 0; --i)
        if (m_plot->item(i)->property("gridLevel").toBool())
            m_plot->removeItem(i);
    m_gridLevels.clear();
    m_gridText.clear();
    const QString name = m_grid->currentData().toString();
    const Series* first = nullptr;
    for (const Series& s : m_series)
        if (s.stats && s.tensorIndex >= 0 && s.stats->finite > 0) {
            first = &s;
            break;
        }
    if (!name.isEmpty() && first && m_model && size_t(first->tensorIndex) < m_model->tensors().size()) {
        const auto format = findFormat(name.toStdString());
        const TensorInfo& t = m_model->tensors()[size_t(first->tensorIndex)];
        if (format) {
            try {
                QString where;
                const auto group = typicalGroup(*m_model, t, *first->stats, format->traits().groupSize, &where);
                m_gridLevels = format->gridLevels(group.data(), group.size());
                std::sort(m_gridLevels.begin(), m_gridLevels.end());
                m_gridLevels.erase(std::unique(m_gridLevels.begin(), m_gridLevels.end()), m_gridLevels.end());
                m_gridText = m_gridLevels.empty()
                                 ? tr("%1 has no discrete grid to show").arg(name)
                                 : tr("%1 grid: %2 levels of a typical group (%3 of %4)")
                                       .arg(name)
                                       .arg(m_gridLevels.size())
                                       .arg(where, QString::fromStdString(t.name));
            } catch (const std::exception& e) {
                m_gridText = tr("%1 grid unavailable: %2").arg(name, QString::fromStdString(e.what()));
            }
        }
    }
    if (m_gridLevels.size() <= size_t(maxGridLines)) {
        for (float level : m_gridLevels) {
            auto* line = new QCPItemStraightLine(m_plot);
            line->setProperty("gridLevel", true);
            line->setSelectable(false);
            line->setLayer(QStringLiteral("background"));
            line->setPen(QPen(QColor(230, 120, 0, 170), 1, Qt::DashLine));
            const double x = toAxis(level);
            for (QCPItemPosition* p : {line->point1, line->point2})
                p->setTypeY(QCPItemPosition::ptAxisRectRatio);
            line->point1->setCoords(x, 0);
            line->point2->setCoords(x, 1);
        }
    } else if (!m_gridLevels.empty()) {
        m_gridText += tr(" — too dense to draw");
    }
    m_gridLabel->setText(m_gridText);
    m_gridLabel->setVisible(!m_gridText.isEmpty());
}

QString HistogramView::gridDescription() const
{
    return m_gridText;
}

QString HistogramView::readoutAt(double value) const
{
    if (m_binned.empty())
        return {};
    QStringList lines;
    lines << tr("value %1").arg(formatStat(value));
    int shown = 0;
    int seriesIndex = 0;
    for (const Series& s : m_series) {
        if (!s.stats || s.stats->finite == 0 || !s.stats->error.empty())
            continue;
        const BinnedHistogram& bh = m_binned[size_t(seriesIndex++)];
        if (++shown > maxReadoutSeries) {
            lines << tr("…");
            break;
        }
        auto it = std::upper_bound(bh.edges.begin(), bh.edges.end(), value);
        if (it == bh.edges.begin() || (it == bh.edges.end() && value > bh.edges.back())) {
            lines << tr("%1: outside").arg(s.label);
            continue;
        }
        size_t bin = size_t(it - bh.edges.begin()) - 1;
        bin = std::min(bin, bh.counts.size() - 1);
        const double total = double(s.stats->histogram.total());
        const uint64_t count = bh.counts[bin];
        lines << tr("%1: %2 (%3%) in [%4, %5)")
                     .arg(s.label, formatExact(count))
                     .arg(total > 0 ? 100.0 * double(count) / total : 0.0, 0, 'g', 3)
                     .arg(formatStat(bh.edges[bin]), formatStat(bh.edges[bin + 1]));
    }
    return lines.join(QLatin1Char('\n'));
}

void HistogramView::updateCrosshair(double x)
{
    if (m_binned.empty())
        return;
    m_crossLine->point1->setCoords(x, 0);
    m_crossLine->point2->setCoords(x, 1);
    m_crossLine->setVisible(true);
    m_readout->setText(readoutAt(fromAxis(x)));
    m_readout->setVisible(true);
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

bool HistogramView::eventFilter(QObject* watched, QEvent* event)
{
    if (watched == m_plot && event->type() == QEvent::Leave) {
        m_crossLine->setVisible(false);
        m_readout->setVisible(false);
        m_plot->replot(QCustomPlot::rpQueuedReplot);
    }
    return QWidget::eventFilter(watched, event);
}

void HistogramView::exportPlot()
{
    QString name = QStringLiteral("histogram");
    if (m_series.size() == 1)
        name += QLatin1Char('-') + QString(m_series.front().label).replace(QRegularExpression(QStringLiteral("[^A-Za-z0-9_.-]")), QStringLiteral("_"));
    exportPlotDialog(this, m_plot, name);
}

} // namespace qs
