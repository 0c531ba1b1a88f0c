#include "widgets/sensitivityview.h"

#include "core/model/tensorrole.h"
#include "widgets/formatting.h"
#include "widgets/plotutil.h"

#include <QComboBox>
#include <QEvent>
#include <QHBoxLayout>
#include <QHelpEvent>
#include <QLabel>
#include <QMouseEvent>
#include <QPainter>
#include <QPushButton>
#include <QScrollArea>
#include <QScrollBar>
#include <QSplitter>
#include <QTimer>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <limits>
#include <qcustomplot.h>

namespace qs {

namespace {

// Red (little signal left) through pale yellow to blue (faithful): diverging, and readable with red-green
// colour blindness, unlike red-to-green.
QColor rampColor(double t)
{
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

// A format name on at most two lines, broken after a '-' ("INT4-g128-" / "asym") when too wide.
QString headerText(const QString& name, const QFontMetrics& fm, int width)
{
    if (fm.horizontalAdvance(name) <= width)
        return name;
    for (qsizetype i = name.size() - 1; i > 0; --i)
        if (name[i] == QLatin1Char('-') && fm.horizontalAdvance(name.left(i + 1)) <= width)
            return name.left(i + 1) + QLatin1Char('\n') + name.mid(i + 1);
    return name;
}

bool darkColor(const QColor& c)
{
    return 0.299 * c.redF() + 0.587 * c.greenF() + 0.114 * c.blueF() < 0.5;
}

void paintNotApplicable(QPainter& p, const QRect& r)
{
    p.fillRect(r, QColor(236, 236, 236));
    p.fillRect(r, QBrush(QColor(200, 200, 200), Qt::BDiagPattern));
}

} // namespace

// The painted grid: names on the left, formats on top, one coloured cell per result.
class SensitivityHeatmap final : public QWidget {
public:
    explicit SensitivityHeatmap(SensitivityView* view) : QWidget(view), m_view(view)
    {
        setMouseTracking(true);
        setObjectName(QStringLiteral("sensitivityHeatmap"));
        setBackgroundRole(QPalette::Base);
        setAutoFillBackground(true);
    }

    void relayout()
    {
        const QFontMetrics fm(font());
        m_nameWidth = 80;
        for (const QString& t : m_view->m_tensors)
            m_nameWidth = std::max(m_nameWidth, fm.horizontalAdvance(t) + 16);
        m_nameWidth = std::min(m_nameWidth, 360);
        m_cellWidth = std::max(64, fm.horizontalAdvance(QStringLiteral("−00.0")) + 16);
        QFont bold = font();
        bold.setBold(true);
        const QFontMetrics bfm(bold);
        for (const QString& f : m_view->m_formats)
            for (const QString& line : headerText(f, bfm, 80).split(QLatin1Char('\n')))
                m_cellWidth = std::max(m_cellWidth, bfm.horizontalAdvance(line) + 14);
        m_rowHeight = fm.height() + 8;
        m_headerHeight = 2 * fm.height() + 10;
        setMinimumSize(m_nameWidth + int(m_view->m_formats.size()) * m_cellWidth + 2,
                       m_headerHeight + int(m_view->m_tensors.size()) * m_rowHeight + 2);
        updateGeometry();
        update();
    }

    // The header and the name column stay in view while the matrix scrolls under them.
    int stickyTop() const { return std::max(0, -y()); }
    int stickyLeft() const { return std::max(0, -x()); }

    QRect cellRect(int row, int column) const
    {
        return {m_nameWidth + column * m_cellWidth, m_headerHeight + row * m_rowHeight, m_cellWidth,
                m_rowHeight};
    }

    std::pair<int, int> cellAt(const QPoint& pos) const
    {
        if (pos.x() < stickyLeft() + m_nameWidth || pos.y() < stickyTop() + m_headerHeight)
            return {-1, -1};
        const int column = (pos.x() - m_nameWidth) / m_cellWidth;
        const int row = (pos.y() - m_headerHeight) / m_rowHeight;
        if (row >= m_view->m_tensors.size() || column >= m_view->m_formats.size())
            return {-1, -1};
        return {row, column};
    }

protected:
    void paintEvent(QPaintEvent*) override
    {
        QPainter p(this);
        const QFontMetrics fm(font());
        const QColor text = palette().color(QPalette::Text);
        const int rows = int(m_view->m_tensors.size());
        const int columns = int(m_view->m_formats.size());
        const int top = stickyTop();
        const int left = stickyLeft();
        const QColor base = palette().color(QPalette::Base);
        for (int row = 0; row < rows; ++row) {
            for (int c = 0; c < columns; ++c) {
                const QRect r = cellRect(row, c);
                const SensitivityResult* result = m_view->result(row, c);
                if (!result) {
                    p.fillRect(r, QColor(248, 248, 248));
                } else if (!result->ok()) {
                    paintNotApplicable(p, r);
                    p.setPen(QColor(120, 120, 120));
                    p.drawText(r, Qt::AlignCenter, QStringLiteral("n/a"));
                } else {
                    const QColor color = m_view->colorFor(result->metrics.sqnrDb);
                    p.fillRect(r, color);
                    p.setPen(darkColor(color) ? Qt::white : Qt::black);
                    p.drawText(r, Qt::AlignCenter, m_view->cellText(row, c));
                }
            }
        }
        // Thin separators keep neighbouring cells of similar colour apart.
        p.setPen(QPen(base, 1));
        for (int c = 0; c <= columns; ++c)
            p.drawLine(m_nameWidth + c * m_cellWidth, m_headerHeight, m_nameWidth + c * m_cellWidth,
                       m_headerHeight + rows * m_rowHeight);
        for (int row = 0; row <= rows; ++row)
            p.drawLine(m_nameWidth, m_headerHeight + row * m_rowHeight, m_nameWidth + columns * m_cellWidth,
                       m_headerHeight + row * m_rowHeight);
        // The selected tensors' rows get a frame across the matrix.
        p.setPen(QPen(palette().color(QPalette::Highlight), 2));
        p.setBrush(Qt::NoBrush);
        for (int row = 0; row < rows; ++row)
            if (m_view->m_highlighted.contains(m_view->m_tensors[row]))
                p.drawRect(
                    QRect(m_nameWidth, m_headerHeight + row * m_rowHeight, columns * m_cellWidth, m_rowHeight)
                        .adjusted(1, 1, -1, -1));
        // Name column (sticky on the left).
        p.fillRect(QRect(left, 0, m_nameWidth, height()), base);
        for (int row = 0; row < rows; ++row) {
            const QRect nameRect(left, m_headerHeight + row * m_rowHeight, m_nameWidth, m_rowHeight);
            const bool highlighted = m_view->m_highlighted.contains(m_view->m_tensors[row]);
            if (highlighted)
                p.fillRect(nameRect, palette().color(QPalette::Highlight));
            else if (row % 2)
                p.fillRect(nameRect, palette().color(QPalette::AlternateBase));
            p.setPen(highlighted ? palette().color(QPalette::HighlightedText) : text);
            p.drawText(nameRect.adjusted(6, 0, -8, 0), Qt::AlignVCenter | Qt::AlignLeft,
                       fm.elidedText(m_view->m_tensors[row], Qt::ElideMiddle, nameRect.width() - 14));
        }
        // Header (sticky on top).
        p.fillRect(QRect(0, top, width(), m_headerHeight), base);
        QFont bold = font();
        bold.setBold(true);
        p.setFont(bold);
        p.setPen(text);
        for (int c = 0; c < columns; ++c) {
            const QRect r(m_nameWidth + c * m_cellWidth, top, m_cellWidth, m_headerHeight);
            p.drawText(r, Qt::AlignCenter,
                       headerText(m_view->m_formats[c], QFontMetrics(bold), m_cellWidth - 14));
        }
        p.fillRect(QRect(left, top, m_nameWidth, m_headerHeight), base);
        p.setPen(palette().color(QPalette::PlaceholderText));
        p.drawText(QRect(left + 6, top, m_nameWidth - 8, m_headerHeight), Qt::AlignVCenter | Qt::AlignLeft,
                   SensitivityView::tr("tensor"));
        p.setFont(font());
        p.setPen(QColor(190, 190, 190));
        p.drawLine(left, top + m_headerHeight - 1, width(), top + m_headerHeight - 1);
        p.drawLine(left + m_nameWidth - 1, top, left + m_nameWidth - 1, height());
        if (rows == 0 || m_view->m_cells.empty()) {
            if (!m_view->m_message.isEmpty()) {
                p.setPen(palette().color(QPalette::PlaceholderText));
                p.drawText(rect().adjusted(20, m_headerHeight + 10, -20, -10),
                           Qt::AlignHCenter | Qt::AlignTop | Qt::TextWordWrap, m_view->m_message);
            }
        }
    }

    bool event(QEvent* event) override
    {
        if (event->type() == QEvent::ToolTip) {
            auto* help = static_cast<QHelpEvent*>(event);
            const auto [row, column] = cellAt(help->pos());
            const QString tip = row >= 0 ? m_view->cellToolTip(row, column) : QString();
            if (tip.isEmpty())
                QToolTip::hideText();
            else
                QToolTip::showText(help->globalPos(), tip, this, cellRect(row, column));
            return true;
        }
        return QWidget::event(event);
    }

    void mousePressEvent(QMouseEvent* event) override
    {
        if (event->button() != Qt::LeftButton)
            return QWidget::mousePressEvent(event);
        const auto [row, column] = cellAt(event->position().toPoint());
        if (row >= 0)
            emit m_view->cellClicked(m_view->m_tensors[row], m_view->m_formats[column]);
    }

private:
    SensitivityView* m_view;
    int m_nameWidth = 80;
    int m_cellWidth = 64;
    int m_rowHeight = 20;
    int m_headerHeight = 24;
};

// The colour scale: a gradient with dB ticks, and a hatched "n/a" swatch.
class SensitivityLegend final : public QWidget {
public:
    explicit SensitivityLegend(SensitivityView* view) : QWidget(view), m_view(view)
    {
        setMinimumWidth(330);
        setFixedHeight(QFontMetrics(font()).height() * 2 + 10);
    }

protected:
    void paintEvent(QPaintEvent*) override
    {
        QPainter p(this);
        const QFontMetrics fm(font());
        const auto [lo, hi] = m_view->colorRange();
        const QString title = SensitivityView::tr("SQNR (dB)");
        const int titleWidth = fm.horizontalAdvance(title) + 8;
        const int naWidth = fm.horizontalAdvance(QStringLiteral("n/a")) + 40;
        const QRect bar(titleWidth, 3, width() - titleWidth - naWidth - 12, 12);
        p.setPen(palette().color(QPalette::Text));
        p.drawText(QRect(0, 0, titleWidth, bar.bottom() + 2), Qt::AlignVCenter | Qt::AlignLeft, title);
        QLinearGradient gradient(bar.topLeft(), bar.topRight());
        for (int i = 0; i <= 8; ++i)
            gradient.setColorAt(i / 8.0, rampColor(i / 8.0));
        p.fillRect(bar, gradient);
        p.setPen(QColor(120, 120, 120));
        p.drawRect(bar.adjusted(0, 0, -1, -1));
        const double span = hi - lo;
        const double step = span > 40 ? 10 : 5;
        p.setPen(palette().color(QPalette::Text));
        for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9; v += step) {
            const int x = bar.left() + int(std::lround((v - lo) / span * (bar.width() - 1)));
            p.drawLine(x, bar.bottom() + 1, x, bar.bottom() + 4);
            const QString label = QString::number(v, 'f', 0);
            const int w = fm.horizontalAdvance(label);
            p.drawText(QRect(x - w / 2 - 2, bar.bottom() + 5, w + 4, fm.height()), Qt::AlignCenter, label);
        }
        const QRect na(bar.right() + 12, bar.top(), 22, bar.height());
        paintNotApplicable(p, na);
        p.setPen(QColor(120, 120, 120));
        p.drawRect(na.adjusted(0, 0, -1, -1));
        p.setPen(palette().color(QPalette::Text));
        p.drawText(QRect(na.right() + 4, 0, naWidth, bar.bottom() + 2), Qt::AlignVCenter | Qt::AlignLeft,
                   QStringLiteral("n/a"));
    }

private:
    SensitivityView* m_view;
};

SensitivityView::SensitivityView(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    auto* top = new QHBoxLayout;
    m_compute = new QPushButton(tr("Compute"), this);
    m_compute->setObjectName(QStringLiteral("computeSensitivityButton"));
    m_compute->setToolTip(tr("Quantize every weight matrix to every candidate format and measure the error "
                             "(runs in the background; cached)"));
    connect(m_compute, &QPushButton::clicked, this, [this] {
        if (m_running)
            emit cancelRequested();
        else
            emit computeRequested();
    });
    top->addWidget(m_compute);
    m_summary = new QLabel(this);
    top->addWidget(m_summary, 1);
    m_legend = new SensitivityLegend(this);
    top->addWidget(m_legend);
    layout->addLayout(top);

    auto* splitter = new QSplitter(Qt::Vertical, this);
    m_heatmap = new SensitivityHeatmap(this);
    m_scroll = new QScrollArea(splitter);
    m_scroll->setWidget(m_heatmap);
    m_scroll->setWidgetResizable(true);
    m_scroll->setFrameShape(QFrame::NoFrame);
    for (QScrollBar* bar : {m_scroll->verticalScrollBar(), m_scroll->horizontalScrollBar()})
        connect(bar, &QScrollBar::valueChanged, m_heatmap, qOverload<>(&QWidget::update));
    splitter->addWidget(m_scroll);

    auto* barsPage = new QWidget(splitter);
    auto* barsLayout = new QVBoxLayout(barsPage);
    barsLayout->setContentsMargins(0, 4, 0, 0);
    auto* barsTop = new QHBoxLayout;
    barsTop->addWidget(new QLabel(tr("SQNR per tensor, in model order, for"), barsPage));
    m_barFormat = new QComboBox(barsPage);
    m_barFormat->setObjectName(QStringLiteral("sensitivityBarFormat"));
    m_barFormat->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    connect(m_barFormat, &QComboBox::activated, this, [this] { m_barChosen = true; });
    connect(m_barFormat, &QComboBox::currentIndexChanged, this, [this] { updateBars(); });
    barsTop->addWidget(m_barFormat);
    barsTop->addStretch(1);
    barsLayout->addLayout(barsTop);
    m_bars = new QCustomPlot(barsPage);
    stylePlot(m_bars);
    m_bars->setInteractions({});
    m_bars->yAxis->setLabel(tr("SQNR (dB)"));
    m_bars->xAxis->setTickLabelRotation(90);
    m_bars->xAxis->grid()->setVisible(false);
    auto* bars = new QCPBars(m_bars->xAxis, m_bars->yAxis);
    bars->setWidthType(QCPBars::wtPlotCoords);
    bars->setWidth(0.75);
    bars->setPen(Qt::NoPen);
    bars->setBrush(QColor(0x6b, 0x8e, 0xb8));
    auto* selected = new QCPBars(m_bars->xAxis, m_bars->yAxis); // the window's selection, on top
    selected->setWidthType(QCPBars::wtPlotCoords);
    selected->setWidth(0.75);
    selected->setPen(Qt::NoPen);
    selected->setBrush(QColor(0xe6, 0x7e, 0x22));
    // A click on a bar is a click on that tensor's cell of the chosen format.
    connect(m_bars, &QCustomPlot::mousePress, this, [this](QMouseEvent* event) {
        if (event->button() != Qt::LeftButton ||
            !m_bars->axisRect()->rect().contains(event->position().toPoint()))
            return;
        const double key = m_bars->xAxis->pixelToCoord(event->position().x());
        const int row = int(std::lround(key));
        if (row >= 0 && row < m_tensors.size() && std::fabs(key - row) <= 0.4 && !barFormat().isEmpty())
            emit cellClicked(m_tensors[row], barFormat());
    });
    barsLayout->addWidget(m_bars, 1);

    auto* curvesPage = new QWidget;
    auto* curvesLayout = new QVBoxLayout(curvesPage);
    curvesLayout->setContentsMargins(0, 4, 0, 0);
    auto* curvesTitle = new QLabel(tr("SQNR vs bits per weight: mean per role, selected tensor bold"));
    curvesTitle->setMinimumHeight(m_barFormat->sizeHint().height());
    // The title must not set the window's minimum width (the tab shares the window with the other views).
    curvesTitle->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
    curvesLayout->addWidget(curvesTitle);
    m_curves = new QCustomPlot(curvesPage);
    m_curves->setObjectName(QStringLiteral("sensitivityCurves"));
    stylePlot(m_curves);
    m_curves->xAxis->setLabel(tr("bits per weight"));
    m_curves->yAxis->setLabel(tr("SQNR (dB)"));
    m_curves->legend->setVisible(true);
    putLegendAbove(m_curves, 5);
    curvesLayout->addWidget(m_curves, 1);

    auto* plots = new QSplitter(Qt::Horizontal, splitter);
    plots->addWidget(barsPage);
    plots->addWidget(curvesPage);
    plots->setStretchFactor(0, 1);
    plots->setStretchFactor(1, 1);
    splitter->addWidget(plots);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
    splitter->setSizes({390, 350});
    layout->addWidget(splitter, 1);
    setRunning(false);
    rescale();
}

SensitivityView::~SensitivityView() = default;

QWidget* SensitivityView::heatmap() const
{
    return m_heatmap;
}

void SensitivityView::setTensors(const QStringList& tensors)
{
    m_tensors = tensors;
    clear();
}

void SensitivityView::setFormats(const QStringList& formats)
{
    m_formats = formats;
    const QString current = m_barFormat->currentText();
    {
        const QSignalBlocker block(m_barFormat);
        m_barFormat->clear();
        m_barFormat->addItems(formats);
        const int keep = formats.indexOf(current);
        const int fallback = formats.indexOf(QStringLiteral("Q4_K"));
        m_barFormat->setCurrentIndex(keep >= 0 ? keep : std::max(0, fallback));
    }
    clear();
}

void SensitivityView::clear()
{
    m_cells.clear();
    m_barChosen = false;
    rescale();
    m_heatmap->relayout();
    updateBars();
    updateCurves();
}

void SensitivityView::addResults(const std::vector<SensitivityResult>& results)
{
    for (const SensitivityResult& r : results) {
        const int row = int(m_tensors.indexOf(QString::fromStdString(r.tensor)));
        const int column = int(m_formats.indexOf(QString::fromStdString(r.format)));
        if (row >= 0 && column >= 0)
            m_cells[{row, column}] = r;
    }
    rescale();
    m_heatmap->update();
    pickBarFormat();
    updateBars();
    updateCurves();
}

void SensitivityView::setHighlighted(const QStringList& tensors)
{
    m_highlighted = tensors;
    m_heatmap->update();
    updateBars();
    updateCurves();
    // Once laid out (the tab may be hidden now), bring the first selected row into view.
    QTimer::singleShot(0, this, &SensitivityView::scrollToHighlighted);
}

void SensitivityView::scrollToHighlighted()
{
    if (m_highlighted.isEmpty())
        return;
    if (const int row = int(m_tensors.indexOf(m_highlighted.front())); row >= 0)
        m_scroll->ensureVisible(0, m_heatmap->cellRect(row, 0).center().y(), 0,
                                m_heatmap->cellRect(0, 0).top() + m_heatmap->cellRect(row, 0).height());
}

void SensitivityView::showEvent(QShowEvent* event)
{
    QWidget::showEvent(event);
    QTimer::singleShot(0, this, &SensitivityView::scrollToHighlighted);
}

void SensitivityView::setMessage(const QString& message)
{
    m_message = message;
    m_heatmap->update();
}

void SensitivityView::setRunning(bool running)
{
    m_running = running;
    m_compute->setText(running ? tr("Cancel") : tr("Compute"));
}

const SensitivityResult* SensitivityView::result(int row, int column) const
{
    const auto it = m_cells.find({row, column});
    return it == m_cells.end() ? nullptr : &it->second;
}

QColor SensitivityView::colorFor(double sqnrDb) const
{
    if (!std::isfinite(sqnrDb))
        return rampColor(sqnrDb > 0 ? 1.0 : 0.0);
    return rampColor((sqnrDb - m_lo) / (m_hi - m_lo));
}

QString SensitivityView::cellText(int row, int column) const
{
    const SensitivityResult* r = result(row, column);
    if (!r)
        return {};
    if (!r->ok())
        return QStringLiteral("n/a");
    if (std::isinf(r->metrics.sqnrDb))
        return QStringLiteral("∞");
    return QString::number(r->metrics.sqnrDb, 'f', 1);
}

QString SensitivityView::cellToolTip(int row, int column) const
{
    if (row < 0 || row >= m_tensors.size() || column < 0 || column >= m_formats.size())
        return {};
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
    line(tr("SQNR"), QStringLiteral("%1 dB").arg(QString::number(m.sqnrDb, 'f', 2)));
    line(tr("rel MSE"), QString::number(m.relMse, 'g', 4));
    line(tr("cosine"), QString::number(m.cosine, 'f', 6));
    line(tr("max |error|"), QString::number(m.maxAbsErr, 'g', 4));
    if (m.weightedMse)
        line(tr("weighted MSE"), QString::number(*m.weightedMse, 'g', 4));
    tip += QStringLiteral("</table>");
    return tip;
}

QRect SensitivityView::cellRect(int row, int column) const
{
    return m_heatmap->cellRect(row, column);
}

void SensitivityView::setBarFormat(const QString& format)
{
    if (const int i = int(m_formats.indexOf(format)); i >= 0) {
        m_barChosen = true;
        m_barFormat->setCurrentIndex(i);
    }
}

void SensitivityView::pickBarFormat()
{
    // Until the user picks one: the format applying to the most tensors, among those the fewest bits per
    // weight (where the differences between tensors show).
    if (m_barChosen)
        return;
    int best = -1;
    size_t bestCount = 0;
    double bestBits = 0;
    for (int c = 0; c < m_formats.size(); ++c) {
        size_t count = 0;
        double bits = 0;
        for (int row = 0; row < m_tensors.size(); ++row)
            if (const SensitivityResult* r = result(row, c); r && r->ok()) {
                ++count;
                bits = r->bitsPerWeight;
            }
        if (count > bestCount || (count == bestCount && count > 0 && bits < bestBits)) {
            best = c;
            bestCount = count;
            bestBits = bits;
        }
    }
    if (best >= 0 && best != m_barFormat->currentIndex()) {
        const QSignalBlocker block(m_barFormat);
        m_barFormat->setCurrentIndex(best);
    }
}

QString SensitivityView::barFormat() const
{
    return m_barFormat->currentText();
}

std::vector<double> SensitivityView::barValues() const
{
    std::vector<double> values(size_t(m_tensors.size()), std::numeric_limits<double>::quiet_NaN());
    const int column = int(m_formats.indexOf(barFormat()));
    if (column < 0)
        return values;
    for (int row = 0; row < m_tensors.size(); ++row)
        if (const SensitivityResult* r = result(row, column); r && r->ok())
            values[size_t(row)] = r->metrics.sqnrDb;
    return values;
}

void SensitivityView::rescale()
{
    double lo = std::numeric_limits<double>::infinity();
    double hi = -lo;
    size_t ok = 0, na = 0;
    for (const auto& [key, r] : m_cells) {
        if (!r.ok()) {
            ++na;
            continue;
        }
        ++ok;
        if (std::isfinite(r.metrics.sqnrDb)) {
            lo = std::min(lo, r.metrics.sqnrDb);
            hi = std::max(hi, r.metrics.sqnrDb);
        }
    }
    if (lo > hi) {
        m_lo = 0;
        m_hi = 60;
    } else {
        m_lo = std::floor(lo / 5.0) * 5.0;
        m_hi = std::max(m_lo + 5.0, std::ceil(hi / 5.0) * 5.0);
    }
    const size_t total = size_t(m_tensors.size()) * size_t(m_formats.size());
    QString text = tr("%1 × %2").arg(countNoun(size_t(m_tensors.size()), "tensor", "tensors"),
                                     countNoun(size_t(m_formats.size()), "format", "formats"));
    if (!m_cells.empty()) {
        text += tr(" · %1 of %2 cells").arg(ok + na).arg(total);
        if (na)
            text += tr(" (%1 n/a)").arg(na);
        if (ok)
            text += tr(" · SQNR %1 to %2 dB").arg(QString::number(lo, 'f', 1), QString::number(hi, 'f', 1));
    }
    m_summary->setText(text);
    if (m_legend)
        m_legend->update();
}

void SensitivityView::updateBars()
{
    auto* bars = qobject_cast<QCPBars*>(m_bars->plottable(0));
    const std::vector<double> values = barValues();
    QVector<double> keys, heights, selectedKeys, selectedHeights;
    QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
    double top = 0;
    for (size_t i = 0; i < values.size(); ++i) {
        QString label = m_tensors[int(i)];
        if (label.endsWith(QLatin1String(".weight")))
            label.chop(7);
        ticker->addTick(double(i), label);
        if (!std::isfinite(values[i]))
            continue;
        keys << double(i);
        heights << values[i];
        if (m_highlighted.contains(m_tensors[int(i)])) {
            selectedKeys << double(i);
            selectedHeights << values[i];
        }
        top = std::max(top, values[i]);
    }
    bars->setData(keys, heights, true);
    bars->setName(barFormat());
    qobject_cast<QCPBars*>(m_bars->plottable(1))->setData(selectedKeys, selectedHeights, true);
    m_bars->xAxis->setTicker(ticker);
    m_bars->xAxis->setRange(-0.6, std::max(1.0, double(values.size()) - 0.4));
    m_bars->yAxis->setRange(0, top > 0 ? top * 1.08 : 10);
    m_bars->yAxis->setTickLabels(!keys.isEmpty());
    // Long tensor names: thinner tick labels when many.
    QFont font = m_bars->xAxis->tickLabelFont();
    font.setPointSizeF(values.size() > 40 ? 7.0 : 8.0);
    m_bars->xAxis->setTickLabelFont(font);
    m_bars->replot();
}

std::vector<SensitivityView::Curve> SensitivityView::curves() const
{
    // Per curve and format: sums of bits and SQNR over the computed cells.
    struct Sum {
        double bits = 0, sqnr = 0;
        int n = 0;
    };
    auto toCurve = [this](const QString& name, bool tensor, const std::vector<Sum>& sums) {
        Curve curve{name, tensor, {}, {}};
        std::vector<std::pair<double, double>> points;
        for (const Sum& s : sums)
            if (s.n > 0)
                points.emplace_back(s.bits / s.n, s.sqnr / s.n);
        std::sort(points.begin(), points.end());
        for (const auto& [bits, sqnr] : points) {
            curve.bits.push_back(bits);
            curve.sqnrDb.push_back(sqnr);
        }
        return curve;
    };
    const size_t columns = size_t(m_formats.size());
    std::vector<std::vector<Sum>> roles(size_t(TensorRole::Count), std::vector<Sum>(columns));
    for (const auto& [key, r] : m_cells) {
        if (!r.ok() || !std::isfinite(r.metrics.sqnrDb))
            continue;
        const TensorRole role = classifyTensor(m_tensors[key.first].toStdString()).role;
        Sum& s = roles[size_t(role)][size_t(key.second)];
        s.bits += r.bitsPerWeight;
        s.sqnr += r.metrics.sqnrDb;
        ++s.n;
    }
    std::vector<Curve> out;
    for (size_t role = 0; role < roles.size(); ++role) {
        Curve curve = toCurve(QString::fromLatin1(roleName(TensorRole(role))), false, roles[role]);
        if (!curve.bits.empty())
            out.push_back(std::move(curve));
    }
    for (const QString& name : m_highlighted) {
        const int row = int(m_tensors.indexOf(name));
        if (row < 0)
            continue;
        std::vector<Sum> sums(columns);
        for (size_t c = 0; c < columns; ++c)
            if (const SensitivityResult* r = result(row, int(c));
                r && r->ok() && std::isfinite(r->metrics.sqnrDb))
                sums[c] = {r->bitsPerWeight, r->metrics.sqnrDb, 1};
        Curve curve = toCurve(name, true, sums);
        if (!curve.bits.empty())
            out.push_back(std::move(curve));
    }
    return out;
}

void SensitivityView::updateCurves()
{
    m_curves->clearGraphs();
    const std::vector<Curve> lines = curves();
    std::map<QString, QColor> roleColors;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    double left = lo, right = -lo;
    int roleIndex = 0;
    for (const Curve& curve : lines) {
        QCPGraph* graph = m_curves->addGraph();
        QColor color;
        if (!curve.tensor) {
            color = seriesColor(roleIndex++);
            roleColors[curve.name] = color;
        } else {
            const auto it =
                roleColors.find(QString::fromLatin1(roleName(classifyTensor(curve.name.toStdString()).role)));
            color = it != roleColors.end() ? it->second.darker(140) : QColor(Qt::black);
        }
        QString label = curve.name;
        if (curve.tensor && label.endsWith(QLatin1String(".weight")))
            label.chop(7);
        graph->setName(label);
        graph->setPen(QPen(color, curve.tensor ? 3.5 : 1.5));
        graph->setScatterStyle(curve.tensor
                                   ? QCPScatterStyle(QCPScatterStyle::ssDisc, color, color, 9)
                                   : QCPScatterStyle(QCPScatterStyle::ssCircle, color, Qt::white, 6));
        graph->setData(QVector<double>(curve.bits.begin(), curve.bits.end()),
                       QVector<double>(curve.sqnrDb.begin(), curve.sqnrDb.end()), true);
        for (size_t i = 0; i < curve.bits.size(); ++i) {
            left = std::min(left, curve.bits[i]);
            right = std::max(right, curve.bits[i]);
            lo = std::min(lo, curve.sqnrDb[i]);
            hi = std::max(hi, curve.sqnrDb[i]);
        }
    }
    if (lines.empty()) {
        m_curves->xAxis->setRange(0, 17);
        m_curves->yAxis->setRange(0, 60);
    } else {
        const double dx = std::max(0.5, (right - left) * 0.05);
        const double dy = std::max(1.0, (hi - lo) * 0.06);
        m_curves->xAxis->setRange(std::max(0.0, left - dx), right + dx);
        m_curves->yAxis->setRange(lo - dy, hi + dy);
    }
    m_curves->legend->setVisible(!lines.empty());
    m_curves->replot();
}

} // namespace qs
