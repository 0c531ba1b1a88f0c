#include "widgets/channelview.h"

#include "core/stats/stats.h"
#include "widgets/formatting.h"
#include "widgets/plotutil.h"

#include <QCheckBox>
#include <QDoubleSpinBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QStackedWidget>
#include <QToolButton>
#include <QToolBar>
#include <QVBoxLayout>
#include <qcustomplot.h>

#include <algorithm>
#include <numeric>

namespace qs {

ChannelView::ChannelView(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(2, 2, 2, 2);
    layout->setSpacing(2);
    auto* controls = new QToolBar; // overflows into a menu when the dock is narrow
    controls->setIconSize(QSize(16, 16));
    m_sorted = new QCheckBox(tr("Sort by absmax"));
    m_sorted->setObjectName(QStringLiteral("channelSorted"));
    controls->addWidget(m_sorted);
    controls->addWidget(toolbarLabel(tr("Outlier above")));
    m_factor = new QDoubleSpinBox;
    m_factor->setRange(1.5, 1000);
    m_factor->setDecimals(1);
    m_factor->setValue(3.0);
    m_factor->setSuffix(tr(" × median"));
    controls->addWidget(m_factor);
    auto* spacer = new QWidget;
    spacer->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
    controls->addWidget(spacer);
    auto* exportButton = new QToolButton;
    exportButton->setIcon(toolIcon("document-export", ":/icons/export.svg"));
    exportButton->setText(tr("Export…"));
    exportButton->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    connect(exportButton, &QToolButton::clicked, this, &ChannelView::exportPlot);
    controls->addWidget(exportButton);
    layout->addWidget(controls);
    m_summary = new QLabel;
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_summary->setWordWrap(true);
    m_summary->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
    layout->addWidget(m_summary);

    m_stack = new QStackedWidget;
    m_message = plotMessageLabel();
    m_stack->addWidget(m_message);
    m_plot = new QCustomPlot;
    m_plot->setObjectName(QStringLiteral("channelPlot"));
    m_plot->setMinimumHeight(160);
    stylePlot(m_plot);
    m_plot->axisRect()->setRangeZoom(Qt::Horizontal);
    m_plot->axisRect()->setRangeDrag(Qt::Horizontal);
    m_plot->legend->setVisible(true);
    putLegendAbove(m_plot);
    m_plot->setMouseTracking(true);
    m_stack->addWidget(m_plot);
    layout->addWidget(m_stack, 1);

    m_readout = new QCPItemText(m_plot);
    m_readout->position->setType(QCPItemPosition::ptAxisRectRatio);
    m_readout->position->setCoords(0.01, 0.02);
    m_readout->setPositionAlignment(Qt::AlignTop | Qt::AlignLeft);
    m_readout->setTextAlignment(Qt::AlignLeft);
    m_readout->setBrush(QColor(255, 255, 255, 230));
    m_readout->setPen(QPen(QColor(200, 200, 200)));
    m_readout->setPadding(QMargins(4, 2, 4, 2));
    m_readout->setVisible(false);

    connect(m_sorted, &QCheckBox::toggled, this, &ChannelView::refresh);
    connect(m_factor, &QDoubleSpinBox::valueChanged, this, &ChannelView::refresh);
    connect(m_plot, &QCustomPlot::mouseDoubleClick, this, &ChannelView::refresh);
    connect(m_plot, &QCustomPlot::mouseMove, this, [this](QMouseEvent* e) {
        if (!m_stats || m_order.empty())
            return;
        const double x = m_plot->xAxis->pixelToCoord(e->position().x());
        const auto pos = qint64(std::llround(x));
        if (pos < 0 || pos >= qint64(m_order.size())) {
            m_readout->setVisible(false);
        } else {
            const size_t ch = m_order[size_t(pos)];
            m_readout->setText(tr("channel %1\nabsmax %2 (%3 × median)\nstd %4")
                                   .arg(ch)
                                   .arg(formatStat(m_stats->channelAbsmax[ch]))
                                   .arg(m_median > 0 ? m_stats->channelAbsmax[ch] / m_median : 0.0, 0, 'f', 1)
                                   .arg(formatStat(ch < m_stats->channelStd.size() ? m_stats->channelStd[ch] : 0.0)));
            m_readout->setVisible(true);
        }
        m_plot->replot(QCustomPlot::rpQueuedReplot);
    });
    setMessage(tr("Select a tensor to see its per-channel absmax and standard deviation."));
}

ChannelView::~ChannelView() = default;

void ChannelView::setTensor(const QString& label, std::shared_ptr<const TensorStats> stats, const QString& note)
{
    m_label = label;
    m_note = note;
    m_stats = std::move(stats);
    refresh();
}

void ChannelView::setMessage(const QString& message)
{
    m_stats.reset();
    m_order.clear();
    m_outliers.clear();
    m_summary->clear();
    m_message->setText(message);
    m_stack->setCurrentWidget(m_message);
}

void ChannelView::setSorted(bool sorted) { m_sorted->setChecked(sorted); }
void ChannelView::setOutlierFactor(double k) { m_factor->setValue(k); }

QString ChannelView::summaryText() const
{
    return m_summary->text();
}

void ChannelView::refresh()
{
    m_plot->clearGraphs();
    m_order.clear();
    m_outliers.clear();
    if (!m_stats)
        return;
    const auto& absmax = m_stats->channelAbsmax;
    const auto& stdv = m_stats->channelStd;
    if (absmax.size() < 2) {
        const QString keep = m_label;
        setMessage(tr("%1 has a single channel: nothing to compare.").arg(keep));
        return;
    }
    const size_t n = absmax.size();
    std::vector<float> sortedValues = absmax;
    auto mid = sortedValues.begin() + std::ptrdiff_t(n / 2);
    std::nth_element(sortedValues.begin(), mid, sortedValues.end());
    m_median = *mid;
    const double threshold = m_factor->value() * m_median;
    for (size_t c = 0; c < n; ++c)
        if (m_median > 0 && absmax[c] > threshold)
            m_outliers.push_back(c);

    m_order.resize(n);
    std::iota(m_order.begin(), m_order.end(), size_t(0));
    if (m_sorted->isChecked())
        std::stable_sort(m_order.begin(), m_order.end(), [&](size_t a, size_t b) { return absmax[a] > absmax[b]; });

    const auto count = qsizetype(n);
    QVector<double> x(count), yAbs(count), yStd(count), xOut, yOut;
    for (size_t i = 0; i < n; ++i) {
        const size_t c = m_order[i];
        x[int(i)] = double(i);
        yAbs[int(i)] = absmax[c];
        yStd[int(i)] = c < stdv.size() ? stdv[c] : 0.0;
        if (m_median > 0 && absmax[c] > threshold) {
            xOut.push_back(double(i));
            yOut.push_back(absmax[c]);
        }
    }
    auto* abs = m_plot->addGraph();
    abs->setName(tr("absmax"));
    abs->setLineStyle(n > 400 ? QCPGraph::lsImpulse : QCPGraph::lsStepCenter);
    abs->setPen(QPen(seriesColor(0), n > 400 ? 1.0 : 1.5));
    if (n <= 400) {
        QColor fill = seriesColor(0);
        fill.setAlpha(60);
        abs->setBrush(fill);
    }
    abs->setData(x, yAbs, true);
    auto* sd = m_plot->addGraph();
    sd->setName(tr("std"));
    sd->setPen(QPen(QColor(60, 60, 60), 1.4));
    sd->setLineStyle(QCPGraph::lsLine);
    sd->setData(x, yStd, true);
    auto* out = m_plot->addGraph();
    out->setName(tr("outliers (> %1 × median)").arg(m_factor->value(), 0, 'g', 3));
    out->setLineStyle(QCPGraph::lsNone);
    out->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, QColor(214, 39, 40), QColor(214, 39, 40, 90), 7));
    out->setData(xOut, yOut, true);
    auto* median = m_plot->addGraph();
    median->setName(tr("median absmax"));
    median->setPen(QPen(QColor(214, 39, 40, 140), 1, Qt::DashLine));
    median->setData(QVector<double>{-0.5, double(n) - 0.5}, QVector<double>{m_median, m_median});

    m_plot->xAxis->setLabel(m_sorted->isChecked() ? tr("channels, sorted by absmax") : tr("output channel"));
    m_plot->yAxis->setLabel(tr("value"));
    m_plot->xAxis->setRange(-0.5, double(n) - 0.5);
    const double top = *std::max_element(absmax.begin(), absmax.end());
    m_plot->yAxis->setRange(0, top > 0 ? top * 1.08 : 1.0);
    m_summary->setText(tr("<b>%1</b>: %2 channels of %3 values · median absmax %4 · <span style='color:#c0392b'>%5 "
                          "outlier%6</span>")
                           .arg(m_label.toHtmlEscaped())
                           .arg(formatExact(n))
                           .arg(formatExact(m_stats->channelLength))
                           .arg(formatStat(m_median))
                           .arg(m_outliers.size())
                           .arg(m_outliers.size() == 1 ? QString() : QStringLiteral("s")) +
                       (m_note.isEmpty() ? QString() : QStringLiteral(" · <i>%1</i>").arg(m_note.toHtmlEscaped())));
    m_stack->setCurrentWidget(m_plot);
    m_plot->replot(QCustomPlot::rpQueuedReplot); // coalesced, drawn from the event loop
}

void ChannelView::exportPlot()
{
    exportPlotDialog(this, m_plot,
                     QStringLiteral("channels-") +
                         QString(m_label).replace(QRegularExpression(QStringLiteral("[^A-Za-z0-9_.-]")), QStringLiteral("_")));
}

} // namespace qs
