#include "widgets/channelview.h"

#include "core/infer/activationstats.h"
#include "core/quant/imatrix.h"
#include "core/stats/stats.h"
#include "widgets/formatting.h"
#include "widgets/plotutil.h"

#include <QCheckBox>
#include <QComboBox>
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
    m_mode = new QComboBox;
    m_mode->setObjectName(QStringLiteral("channelMode"));
    m_mode->addItem(tr("Weights: output channels"));
    m_mode->addItem(tr("Input activations"));
    m_mode->setToolTip(tr("Weights: per output channel absmax and std of the weights.\nInput activations: per "
                          "input channel mean |x| and RMS seen during calibration (Analysis › Calibrate…, or "
                          "an activation statistics or importance file)."));
    controls->addWidget(m_mode);
    m_sorted = new QCheckBox(tr("Sort"));
    m_sorted->setToolTip(tr("Sort channels by the plotted magnitude (absmax, or mean |x|)"));
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

    connect(m_mode, &QComboBox::currentIndexChanged, this, &ChannelView::refresh);
    connect(m_sorted, &QCheckBox::toggled, this, &ChannelView::refresh);
    connect(m_factor, &QDoubleSpinBox::valueChanged, this, &ChannelView::refresh);
    connect(m_plot, &QCustomPlot::mouseDoubleClick, this, &ChannelView::refresh);
    connect(m_plot, &QCustomPlot::mouseMove, this, [this](QMouseEvent* e) {
        if (m_order.empty())
            return;
        const double x = m_plot->xAxis->pixelToCoord(e->position().x());
        const auto pos = qint64(std::llround(x));
        if (pos < 0 || pos >= qint64(m_order.size())) {
            m_readout->setVisible(false);
        } else {
            const Series& s = m_series;
            const size_t ch = m_order[size_t(pos)];
            QString text = tr("channel %1\n%2 %3 (%4 × median)")
                               .arg(ch)
                               .arg(s.mainName)
                               .arg(formatStat(s.main[ch]))
                               .arg(m_median > 0 ? s.main[ch] / m_median : 0.0, 0, 'f', 1);
            if (ch < s.second.size())
                text += QStringLiteral("\n%1 %2").arg(s.secondName, formatStat(s.second[ch]));
            if (ch < s.extra.size())
                text += tr("\nmax |x| %1").arg(formatStat(s.extra[ch]));
            m_readout->setText(text);
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
    m_weightsMessage.clear();
    refresh();
}

void ChannelView::setTensorMessage(const QString& label, const QString& message)
{
    m_label = label;
    m_note.clear();
    m_stats.reset();
    m_weightsMessage = message;
    refresh();
}

void ChannelView::setActivations(std::shared_ptr<const ActivationStats> stats,
                                 std::shared_ptr<const ImportanceMatrix> importance, const QString& source)
{
    m_activations = std::move(stats);
    m_importance = std::move(importance);
    m_activationSource = source;
    refresh();
}

void ChannelView::setMode(Mode mode) { m_mode->setCurrentIndex(mode == Mode::Weights ? 0 : 1); }
ChannelView::Mode ChannelView::mode() const
{
    return m_mode->currentIndex() == 1 ? Mode::InputActivations : Mode::Weights;
}

bool ChannelView::hasActivationsForTensor() const
{
    const std::string name = m_label.toStdString();
    return !m_label.isEmpty() && ((m_activations && m_activations->find(name)) ||
                                  (m_importance && m_importance->find(name)));
}

bool ChannelView::currentSeries(Series& s, QString& why) const
{
    s = {};
    if (mode() == Mode::Weights) {
        if (!m_stats) {
            why = m_weightsMessage;
            return false;
        }
        s.main = m_stats->channelAbsmax;
        s.second = m_stats->channelStd;
        s.mainName = tr("absmax");
        s.secondName = tr("std");
        s.axis = tr("output channel");
        s.length = m_stats->channelLength;
        return true;
    }
    const std::string name = m_label.toStdString();
    if (const InputActivations* in = m_activations ? m_activations->find(name) : nullptr) {
        s.main = in->meanAbs;
        s.second.resize(in->meanSq.size());
        for (size_t i = 0; i < s.second.size(); ++i)
            s.second[i] = std::sqrt(in->meanSq[i]);
        s.extra = in->maxAbs;
        s.mainName = tr("mean |x|");
        s.secondName = tr("RMS");
        s.length = uint64_t(in->count);
    } else if (const ImportanceEntry* e = m_importance ? m_importance->find(name) : nullptr) {
        const auto values = e->matrix(0);
        s.main.resize(values.size());
        for (size_t i = 0; i < values.size(); ++i)
            s.main[i] = std::sqrt(std::max(0.0f, values[i]));
        s.mainName = tr("RMS");
        s.length = e->counts.empty() ? 0 : uint64_t(e->counts.front());
    } else {
        why = tr("No input activations for %1: run Analysis › Calibrate…, or load an activation statistics "
                 "(.h5) or importance file (Analysis › Load Importance File…).")
                  .arg(m_label);
        return false;
    }
    s.axis = tr("input channel");
    return true;
}

void ChannelView::setMessage(const QString& message)
{
    m_stats.reset();
    m_label.clear();
    m_weightsMessage.clear();
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
    if (m_label.isEmpty())
        return; // a message without a tensor is showing
    QString why;
    if (!currentSeries(m_series, why)) {
        m_summary->clear();
        m_message->setText(why);
        m_stack->setCurrentWidget(m_message);
        return;
    }
    const Series& s = m_series;
    const bool weights = mode() == Mode::Weights;
    const auto& mainValues = s.main;
    if (mainValues.size() < 2) {
        m_summary->clear();
        m_message->setText(tr("%1 has a single channel: nothing to compare.").arg(m_label));
        m_stack->setCurrentWidget(m_message);
        return;
    }
    const size_t n = mainValues.size();
    std::vector<float> sortedValues = mainValues;
    auto mid = sortedValues.begin() + std::ptrdiff_t(n / 2);
    std::nth_element(sortedValues.begin(), mid, sortedValues.end());
    m_median = *mid;
    const double threshold = m_factor->value() * m_median;
    for (size_t c = 0; c < n; ++c)
        if (m_median > 0 && mainValues[c] > threshold)
            m_outliers.push_back(c);

    m_order.resize(n);
    std::iota(m_order.begin(), m_order.end(), size_t(0));
    if (m_sorted->isChecked())
        std::stable_sort(m_order.begin(), m_order.end(),
                         [&](size_t a, size_t b) { return mainValues[a] > mainValues[b]; });

    const auto count = qsizetype(n);
    QVector<double> x(count), yMain(count), ySecond(count), xOut, yOut;
    for (size_t i = 0; i < n; ++i) {
        const size_t c = m_order[i];
        x[int(i)] = double(i);
        yMain[int(i)] = mainValues[c];
        ySecond[int(i)] = c < s.second.size() ? s.second[c] : 0.0;
        if (m_median > 0 && mainValues[c] > threshold) {
            xOut.push_back(double(i));
            yOut.push_back(mainValues[c]);
        }
    }
    auto* main = m_plot->addGraph();
    main->setName(s.mainName);
    main->setLineStyle(n > 400 ? QCPGraph::lsImpulse : QCPGraph::lsStepCenter);
    main->setPen(QPen(seriesColor(weights ? 0 : 2), n > 400 ? 1.0 : 1.5));
    if (n <= 400) {
        QColor fill = seriesColor(weights ? 0 : 2);
        fill.setAlpha(60);
        main->setBrush(fill);
    }
    main->setData(x, yMain, true);
    if (!s.second.empty()) {
        auto* second = m_plot->addGraph();
        second->setName(s.secondName);
        second->setPen(QPen(QColor(60, 60, 60), 1.4));
        second->setLineStyle(QCPGraph::lsLine);
        second->setData(x, ySecond, true);
    }
    auto* out = m_plot->addGraph();
    out->setName(tr("outliers (> %1 × median)").arg(m_factor->value(), 0, 'g', 3));
    out->setLineStyle(QCPGraph::lsNone);
    out->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, QColor(214, 39, 40), QColor(214, 39, 40, 90), 7));
    out->setData(xOut, yOut, true);
    auto* median = m_plot->addGraph();
    median->setName(tr("median %1").arg(s.mainName));
    median->setPen(QPen(QColor(214, 39, 40, 140), 1, Qt::DashLine));
    median->setData(QVector<double>{-0.5, double(n) - 0.5}, QVector<double>{m_median, m_median});

    m_plot->xAxis->setLabel(m_sorted->isChecked() ? tr("%1s, sorted by %2").arg(s.axis, s.mainName) : s.axis);
    m_plot->yAxis->setLabel(weights ? tr("value") : tr("activation"));
    m_plot->xAxis->setRange(-0.5, double(n) - 0.5);
    double top = *std::max_element(mainValues.begin(), mainValues.end());
    if (!s.second.empty())
        top = std::max<double>(top, *std::max_element(s.second.begin(), s.second.end()));
    m_plot->yAxis->setRange(0, top > 0 ? top * 1.08 : 1.0);
    const QString outliers = tr("<span style='color:#c0392b'>%1 outlier%2</span>")
                                 .arg(m_outliers.size())
                                 .arg(m_outliers.size() == 1 ? QString() : QStringLiteral("s"));
    QString summary =
        weights ? tr("<b>%1</b>: %2 channels of %3 values · median absmax %4 · %5")
                      .arg(m_label.toHtmlEscaped(), formatExact(n), formatExact(s.length), formatStat(m_median), outliers)
                : tr("<b>%1</b>: input of %2 channels over %3 calibration tokens · median %4 %5 · %6")
                      .arg(m_label.toHtmlEscaped(), formatExact(n), formatExact(s.length), s.mainName.toHtmlEscaped(),
                           formatStat(m_median), outliers);
    if (!weights && !s.extra.empty()) {
        const auto top = std::max_element(s.extra.begin(), s.extra.end());
        summary += tr(" · largest |x| %1 in channel %2").arg(formatStat(*top)).arg(top - s.extra.begin());
    }
    if (!weights && !m_activationSource.isEmpty())
        summary += tr(" · from %1").arg(m_activationSource.toHtmlEscaped());
    if (!m_note.isEmpty())
        summary += QStringLiteral(" · <i>%1</i>").arg(m_note.toHtmlEscaped());
    m_summary->setText(summary);
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
