#include "widgets/sensitivityview.h"

#include "widgets/elidedlabel.h"
#include "widgets/formatchooser.h"

#include "core/model/tensorrole.h"
#include "widgets/formatting.h"
#include "widgets/plotutil.h"
#include "widgets/sensitivitydelegate.h"
#include "widgets/sensitivitymodel.h"

#include <QAbstractButton>
#include <QComboBox>
#include <QCoreApplication>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QMouseEvent>
#include <QPainter>
#include <QPushButton>
#include <QScopedValueRollback>
#include <QScrollBar>
#include <QSplitter>
#include <QTableView>
#include <QTimer>
#include <QVBoxLayout>
#include <QToolTip>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <qcustomplot.h>

namespace qs {

namespace {

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

QFont boldFont(QFont font)
{
    font.setBold(true);
    return font;
}

const QColor kRuleColor(190, 190, 190); // the lines under the formats and beside the names

// The formats on top (bold, on two lines when long) and the tensor names on the left (the selected ones
// filled with the highlight colour), on the base colour with a rule along the matrix.
class SensitivityHeader final : public QHeaderView {
public:
    SensitivityHeader(Qt::Orientation orientation, QWidget* parent) : QHeaderView(orientation, parent)
    {
        setSectionsClickable(false);
        setHighlightSections(false);
        setSectionResizeMode(QHeaderView::Fixed);
    }

protected:
    void paintEvent(QPaintEvent* event) override
    {
        QPainter p(viewport());
        p.fillRect(event->rect(), palette().color(QPalette::Base));
        const bool horizontal = orientation() == Qt::Horizontal;
        const QRect dirty = event->rect();
        const int first = visualIndexAt(horizontal ? dirty.left() : dirty.top());
        int last = visualIndexAt(horizontal ? dirty.right() : dirty.bottom());
        if (last < 0)
            last = count() - 1;
        for (int visual = first; first >= 0 && visual <= last; ++visual) {
            const int logical = logicalIndex(visual);
            const int position = sectionViewportPosition(logical);
            const QRect section = horizontal ? QRect(position, 0, sectionSize(logical), viewport()->height())
                                             : QRect(0, position, viewport()->width(), sectionSize(logical));
            p.save();
            paintSection(&p, section, logical);
            p.restore();
        }
        p.setPen(kRuleColor);
        const QRect all = viewport()->rect();
        if (horizontal)
            p.drawLine(all.left(), all.bottom(), all.right(), all.bottom());
        else
            p.drawLine(all.right(), all.top(), all.right(), all.bottom());
    }

    void paintSection(QPainter* p, const QRect& rect, int logicalIndex) const override
    {
        const QString name = model()->headerData(logicalIndex, orientation()).toString();
        if (orientation() == Qt::Horizontal) {
            const QFont bold = boldFont(font());
            p->setFont(bold);
            p->setPen(palette().color(QPalette::Text));
            p->drawText(rect, Qt::AlignCenter, headerText(name, QFontMetrics(bold), rect.width() - 14));
            return;
        }
        const bool selected = selectionModel() && selectionModel()->isRowSelected(logicalIndex, {});
        if (selected)
            p->fillRect(rect, palette().color(QPalette::Highlight));
        else if (logicalIndex % 2)
            p->fillRect(rect, palette().color(QPalette::AlternateBase));
        p->setPen(palette().color(selected ? QPalette::HighlightedText : QPalette::Text));
        p->drawText(rect.adjusted(6, 0, -8, 0), Qt::AlignVCenter | Qt::AlignLeft,
                    fontMetrics().elidedText(name, Qt::ElideMiddle, rect.width() - 14));
    }
};

} // namespace

// The heatmap: a table whose header and name column stay in view while the matrix scrolls under them, the
// selected rows framed across the matrix, and a message over it while there is nothing to show.
class SensitivityTable final : public QTableView {
public:
    explicit SensitivityTable(QWidget* parent) : QTableView(parent)
    {
        setObjectName(QStringLiteral("sensitivityHeatmap"));
        setHorizontalHeader(new SensitivityHeader(Qt::Horizontal, this));
        setVerticalHeader(new SensitivityHeader(Qt::Vertical, this));
        setItemDelegate(new SensitivityDelegate(this));
        setFrameShape(QFrame::NoFrame);
        setShowGrid(false); // the delegate draws the separators
        setSelectionBehavior(QAbstractItemView::SelectRows);
        setSelectionMode(QAbstractItemView::SingleSelection);
        setEditTriggers(QAbstractItemView::NoEditTriggers);
        // Keys would move a selection the window does not follow yet (it listens to clicks).
        setFocusPolicy(Qt::NoFocus);
        setVerticalScrollMode(QAbstractItemView::ScrollPerPixel);
        setHorizontalScrollMode(QAbstractItemView::ScrollPerPixel);
        setCornerButtonEnabled(false);
        m_corner = findChild<QAbstractButton*>(QString(), Qt::FindDirectChildrenOnly);
        if (m_corner)
            m_corner->installEventFilter(this);
        m_message = new QLabel(this);
        m_message->setAttribute(Qt::WA_TransparentForMouseEvents);
        m_message->setAlignment(Qt::AlignHCenter | Qt::AlignTop);
        m_message->setWordWrap(true);
        m_message->setForegroundRole(QPalette::PlaceholderText);
        m_message->hide();
    }

    // Section sizes from the font and the names: cells fit "−00.0" and their format's header lines.
    void relayout()
    {
        const QFontMetrics fm(font());
        const QFont bold = boldFont(font());
        const QFontMetrics bfm(bold);
        int nameWidth = 80;
        for (int row = 0; row < model()->rowCount(); ++row)
            nameWidth = std::max(
                nameWidth, fm.horizontalAdvance(model()->headerData(row, Qt::Vertical).toString()) + 16);
        nameWidth = std::min(nameWidth, 360);
        int cellWidth = std::max(64, fm.horizontalAdvance(QStringLiteral("−00.0")) + 16);
        for (int column = 0; column < model()->columnCount(); ++column)
            for (const QString& line :
                 headerText(model()->headerData(column, Qt::Horizontal).toString(), bfm, 80)
                     .split(QLatin1Char('\n')))
                cellWidth = std::max(cellWidth, bfm.horizontalAdvance(line) + 14);
        const int rowHeight = fm.height() + 8;
        for (QHeaderView* header : {horizontalHeader(), verticalHeader()})
            header->setMinimumSectionSize(std::min(rowHeight, cellWidth));
        horizontalHeader()->setDefaultSectionSize(cellWidth);
        horizontalHeader()->setFixedHeight(2 * fm.height() + 10);
        verticalHeader()->setDefaultSectionSize(rowHeight);
        verticalHeader()->setFixedWidth(nameWidth);
        updateGeometries();
        placeMessage();
    }

    void setMessage(const QString& text, bool visible)
    {
        m_message->setText(text);
        m_message->setVisible(visible && !text.isEmpty());
        m_message->raise();
    }

protected:
    void paintEvent(QPaintEvent* event) override
    {
        QTableView::paintEvent(event);
        QPainter p(viewport());
        p.setPen(QPen(palette().color(QPalette::Highlight), 2));
        p.setBrush(Qt::NoBrush);
        const QRect rows = viewport()->rect();
        for (const QModelIndex& index : selectionModel()->selectedRows()) {
            const QRect r(columnViewportPosition(0), rowViewportPosition(index.row()),
                          horizontalHeader()->length(), rowHeight(index.row()));
            if (r.intersects(rows))
                p.drawRect(r.adjusted(1, 1, -1, -1));
        }
    }

    void selectionChanged(const QItemSelection& selected, const QItemSelection& deselected) override
    {
        QTableView::selectionChanged(selected, deselected);
        verticalHeader()->viewport()->update();
    }

    // Mouse events sent to the table itself (synthesised ones: real ones go to the part under the pointer)
    // are passed on to that part, so that a click at cellRect() reaches the cell as it did on the painted
    // grid this table replaced. Events a part did not take come back here unspontaneous and go up as usual.
    bool event(QEvent* event) override
    {
        switch (event->type()) {
        case QEvent::MouseButtonPress:
        case QEvent::MouseButtonRelease:
        case QEvent::MouseButtonDblClick:
        case QEvent::MouseMove:
            if (event->spontaneous() && !m_forwarding) {
                auto* mouse = static_cast<QMouseEvent*>(event);
                if (QWidget* target = childAt(mouse->position().toPoint())) {
                    QMouseEvent forwarded(mouse->type(), target->mapFrom(this, mouse->position()),
                                          mouse->scenePosition(), mouse->globalPosition(), mouse->button(),
                                          mouse->buttons(), mouse->modifiers(), mouse->pointingDevice());
                    forwarded.setTimestamp(mouse->timestamp());
                    const QScopedValueRollback guard(m_forwarding, true);
                    QCoreApplication::sendEvent(target, &forwarded);
                    return true;
                }
            }
            break;
        default:
            break;
        }
        return QTableView::event(event);
    }

    // The corner above the names says what the rows are.
    bool eventFilter(QObject* watched, QEvent* event) override
    {
        if (watched != m_corner || event->type() != QEvent::Paint)
            return QTableView::eventFilter(watched, event);
        QPainter p(m_corner);
        const QRect r = m_corner->rect();
        p.fillRect(r, palette().color(QPalette::Base));
        p.setFont(boldFont(font()));
        p.setPen(palette().color(QPalette::PlaceholderText));
        p.drawText(r.adjusted(6, 0, -2, 0), Qt::AlignVCenter | Qt::AlignLeft, SensitivityView::tr("tensor"));
        p.setPen(kRuleColor);
        p.drawLine(r.left(), r.bottom(), r.right(), r.bottom());
        p.drawLine(r.right(), r.top(), r.right(), r.bottom());
        return true;
    }

    void resizeEvent(QResizeEvent* event) override
    {
        QTableView::resizeEvent(event);
        placeMessage();
    }

private:
    void placeMessage()
    {
        const int top = horizontalHeader()->height() + 10;
        m_message->setGeometry(20, top, std::max(0, width() - 40), std::max(0, height() - top - 10));
    }

    QWidget* m_corner = nullptr; // Qt's corner button, painted by eventFilter
    QLabel* m_message = nullptr;
    bool m_forwarding = false;
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
        const QString title = SensitivityView::tr("%1 (dB)").arg(m_view->metricName());
        const int titleWidth = fm.horizontalAdvance(title) + 8;
        const int naWidth = fm.horizontalAdvance(QStringLiteral("n/a")) + 40;
        const QRect bar(titleWidth, 3, width() - titleWidth - naWidth - 12, 12);
        p.setPen(palette().color(QPalette::Text));
        p.drawText(QRect(0, 0, titleWidth, bar.bottom() + 2), Qt::AlignVCenter | Qt::AlignLeft, title);
        QLinearGradient gradient(bar.topLeft(), bar.topRight());
        for (int i = 0; i <= 8; ++i)
            gradient.setColorAt(i / 8.0, SensitivityModel::rampColor(i / 8.0));
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
        SensitivityDelegate::paintNotApplicable(p, na);
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
    m_formatChooser = new FormatChooser(this);
    top->addWidget(m_formatChooser);
    // The summary gives way first when the window is narrow (cut with an ellipsis, never the buttons, the
    // scale or the "not measured" note).
    m_summary = new ElidedLabel(QString(), this);
    m_summary->setElideMode(Qt::ElideRight);
    top->addWidget(m_summary, 1);
    m_notMeasured = new QLabel(this);
    m_notMeasured->setStyleSheet(QStringLiteral("color:#8a5a00"));
    m_notMeasured->hide();
    top->addWidget(m_notMeasured);
    m_legend = new SensitivityLegend(this);
    top->addWidget(m_legend);
    layout->addLayout(top);

    auto* splitter = new QSplitter(Qt::Vertical, this);
    m_model = new SensitivityModel(this);
    m_table = new SensitivityTable(splitter);
    m_table->setModel(m_model);
    connect(m_model, &QAbstractItemModel::modelReset, this, &SensitivityView::onModelReset);
    connect(
        m_model, &QAbstractItemModel::dataChanged, this,
        [this](const QModelIndex&, const QModelIndex&, const QList<int>& roles) { onCellsChanged(roles); });
    connect(m_table->selectionModel(), &QItemSelectionModel::selectionChanged, this,
            &SensitivityView::onSelectionChanged);
    connect(m_table, &QAbstractItemView::clicked, this, [this](const QModelIndex& index) {
        emit cellClicked(m_model->tensors()[index.row()], m_model->formats()[index.column()]);
    });
    splitter->addWidget(m_table);

    auto* barsPage = new QWidget(splitter);
    auto* barsLayout = new QVBoxLayout(barsPage);
    barsLayout->setContentsMargins(0, 4, 0, 0);
    auto* barsTop = new QHBoxLayout;
    m_barsTitle = new QLabel(tr("SQNR per tensor, in model order, for"), barsPage);
    barsTop->addWidget(m_barsTitle);
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
        if (row >= 0 && row < m_model->rowCount() && std::fabs(key - row) <= 0.4 && !barFormat().isEmpty())
            emit cellClicked(m_model->tensors()[row], barFormat());
    });
    m_bars->setMouseTracking(true);
    connect(m_bars, &QCustomPlot::mouseMove, this, [this](QMouseEvent* event) {
        const double key = m_bars->xAxis->pixelToCoord(event->position().x());
        const long i = std::lround(key);
        const std::vector<double> values = barValues();
        const QStringList tensors = m_model->tensors();
        if (i < 0 || i >= long(values.size()) || i >= tensors.size() ||
            !m_bars->axisRect()->rect().contains(event->position().toPoint())) {
            QToolTip::hideText();
            return;
        }
        QToolTip::showText(event->globalPosition().toPoint(),
                           std::isfinite(values[size_t(i)])
                               ? tr("%1: %2 dB").arg(tensors[int(i)]).arg(values[size_t(i)], 0, 'f', 1)
                               : tr("%1: not measured").arg(tensors[int(i)]),
                           m_bars);
    });
    m_bars->installEventFilter(this); // relabel on resize: how many names fit depends on the width
    barsLayout->addWidget(m_bars, 1);

    auto* curvesPage = new QWidget;
    curvesPage->setMinimumWidth(300); // its legend and ticks need room; the bars thin their labels instead
    auto* curvesLayout = new QVBoxLayout(curvesPage);
    curvesLayout->setContentsMargins(0, 4, 0, 0);
    auto* curvesTitle = new QLabel(tr("SQNR vs bits per weight: mean per role, selected tensor bold"));
    m_curvesTitle = curvesTitle;
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
    m_curves->installEventFilter(this);
    m_curves->setMouseTracking(true);
    connect(m_curves, &QCustomPlot::mouseMove, this, [this](QMouseEvent* event) {
        QCPAbstractPlottable* line = m_curves->plottableAt(event->position(), false);
        if (!line) {
            QToolTip::hideText();
            return;
        }
        QToolTip::showText(event->globalPosition().toPoint(),
                           tr("%1: %2 dB at %3 bits per weight")
                               .arg(line->name())
                               .arg(m_curves->yAxis->pixelToCoord(event->position().y()), 0, 'f', 1)
                               .arg(m_curves->xAxis->pixelToCoord(event->position().x()), 0, 'f', 2),
                           m_curves);
    });
    putLegendAbove(m_curves, 5);
    curvesLayout->addWidget(m_curves, 1);

    auto* plots = new QSplitter(Qt::Horizontal, splitter);
    plots->addWidget(barsPage);
    plots->addWidget(curvesPage);
    plots->setStretchFactor(0, 1);
    plots->setStretchFactor(1, 1);
    plots->setSizes({1000, 1000}); // half and half (scaled to the width when shown)
    splitter->addWidget(plots);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
    splitter->setSizes({390, 350});
    layout->addWidget(splitter, 1);
    setRunning(false);
    onModelReset();
}

SensitivityView::~SensitivityView() = default;

QWidget* SensitivityView::heatmap() const
{
    return m_table;
}

QTableView* SensitivityView::table() const
{
    return m_table;
}

void SensitivityView::setStore(const SensitivityStore* store)
{
    m_model->setStore(store);
}

void SensitivityView::setSkipped(const QStringList& skipped)
{
    m_skipped = skipped;
    updateSummary();
}

QString SensitivityView::summaryText() const
{
    return m_notMeasured->isHidden() ? m_summary->fullText()
                                     : m_summary->fullText() + QLatin1Char(' ') + m_notMeasured->text();
}

void SensitivityView::setTensors(const QStringList& tensors)
{
    m_model->setTensors(tensors);
}

void SensitivityView::setFormats(const QStringList& formats)
{
    m_model->setFormats(formats);
}

void SensitivityView::clear()
{
    m_model->clear();
}

void SensitivityView::addResults(const std::vector<SensitivityResult>& results)
{
    m_model->addResults(results);
}

QStringList SensitivityView::tensors() const
{
    return m_model->tensors();
}

QStringList SensitivityView::formats() const
{
    return m_model->formats();
}

void SensitivityView::onModelReset()
{
    m_barChosen = false;
    syncBarFormats();
    m_table->relayout();
    applySelection();
    onCellsChanged({});
}

void SensitivityView::onCellsChanged(const QList<int>& roles)
{
    if (roles.size() == 1 && roles.front() == Qt::ToolTipRole)
        return;
    updateSummary();
    m_table->setMessage(m_message, m_model->rowCount() == 0 || !m_model->hasResults());
    pickBarFormat();
    updateBars();
    updateCurves();
}

void SensitivityView::syncBarFormats()
{
    const QStringList formats = m_model->formats();
    QStringList shown;
    for (int i = 0; i < m_barFormat->count(); ++i)
        shown << m_barFormat->itemText(i);
    if (shown == formats)
        return;
    const QString current = m_barFormat->currentText();
    const QSignalBlocker block(m_barFormat);
    m_barFormat->clear();
    m_barFormat->addItems(formats);
    const int keep = int(formats.indexOf(current));
    const int fallback = int(formats.indexOf(QStringLiteral("Q4_K")));
    m_barFormat->setCurrentIndex(keep >= 0 ? keep : std::max(0, fallback));
}

void SensitivityView::setHighlighted(const QStringList& tensors)
{
    setSelectedTensors(tensors);
}

void SensitivityView::setSelectedTensors(const QStringList& tensors)
{
    m_selected = tensors;
    applySelection();
    updateBars();
    updateCurves();
    // Once laid out (the tab may be hidden now), bring the first selected row into view.
    QTimer::singleShot(0, this, &SensitivityView::scrollToSelected);
}

void SensitivityView::applySelection()
{
    QItemSelection selection;
    const int last = m_model->columnCount() - 1;
    for (const QString& name : std::as_const(m_selected))
        if (const int row = m_model->rowOf(name); row >= 0 && last >= 0)
            selection.select(m_model->index(row, 0), m_model->index(row, last));
    const QScopedValueRollback guard(m_applyingSelection, true);
    m_table->selectionModel()->select(selection, QItemSelectionModel::ClearAndSelect);
}

void SensitivityView::onSelectionChanged()
{
    if (m_applyingSelection)
        return;
    QList<int> rows;
    for (const QModelIndex& index : m_table->selectionModel()->selectedRows())
        rows << index.row();
    std::sort(rows.begin(), rows.end());
    m_selected.clear();
    for (int row : rows)
        m_selected << m_model->tensors()[row];
    updateBars();
    updateCurves();
    emit tensorsSelected(m_selected);
}

void SensitivityView::scrollToSelected()
{
    const int row = m_selected.isEmpty() ? -1 : m_model->rowOf(m_selected.front());
    if (row < 0)
        return;
    // As the scroll area before the table did: the row's middle with a row of context above it, and below
    // it a row and the header's height.
    QScrollBar* bar = m_table->verticalScrollBar();
    const int height = m_table->rowHeight(row);
    const int margin = m_table->horizontalHeader()->height() + height;
    const int middle = m_table->rowViewportPosition(row) + bar->value() + (height - 1) / 2;
    if (middle - height < bar->value())
        bar->setValue(std::max(0, middle - height));
    else if (middle + margin > bar->value() + m_table->viewport()->height())
        bar->setValue(std::min(middle + margin - m_table->viewport()->height(), bar->maximum()));
}

void SensitivityView::showEvent(QShowEvent* event)
{
    QWidget::showEvent(event);
    QTimer::singleShot(0, this, &SensitivityView::scrollToSelected);
}

void SensitivityView::setMessage(const QString& message)
{
    m_message = message;
    m_table->setMessage(m_message, m_model->rowCount() == 0 || !m_model->hasResults());
}

void SensitivityView::setRunning(bool running)
{
    m_running = running;
    m_model->setRunning(running);
    m_compute->setText(running ? tr("Cancel") : tr("Compute"));
}

const SensitivityResult* SensitivityView::result(int row, int column) const
{
    return m_model->result(row, column);
}

QColor SensitivityView::colorFor(double sqnrDb) const
{
    return m_model->colorFor(sqnrDb);
}

std::pair<double, double> SensitivityView::colorRange() const
{
    return m_model->colorRange();
}

QString SensitivityView::cellText(int row, int column) const
{
    return m_model->index(row, column).data(Qt::DisplayRole).toString();
}

QString SensitivityView::cellToolTip(int row, int column) const
{
    return m_model->index(row, column).data(Qt::ToolTipRole).toString();
}

QRect SensitivityView::cellRect(int row, int column) const
{
    const QModelIndex index = m_model->index(row, column);
    if (!index.isValid())
        return {};
    m_table->scrollTo(index);
    return m_table->visualRect(index).translated(m_table->viewport()->geometry().topLeft());
}

void SensitivityView::setBarFormat(const QString& format)
{
    if (const int i = m_model->columnOf(format); i >= 0) {
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
    for (int c = 0; c < m_model->columnCount(); ++c) {
        size_t count = 0;
        double bits = 0;
        for (int row = 0; row < m_model->rowCount(); ++row)
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
    std::vector<double> values(size_t(m_model->rowCount()), std::numeric_limits<double>::quiet_NaN());
    const int column = m_model->columnOf(barFormat());
    if (column < 0)
        return values;
    for (int row = 0; row < m_model->rowCount(); ++row)
        if (const SensitivityResult* r = result(row, column); r && r->ok())
            values[size_t(row)] = r->metrics.sqnrDb;
    return values;
}

void SensitivityView::updateSummary()
{
    const SensitivityModel::Summary summary = m_model->summary();
    const size_t rows = size_t(m_model->rowCount()), columns = size_t(m_model->columnCount());
    QString text =
        tr("%1 × %2").arg(countNoun(rows, "tensor", "tensors"), countNoun(columns, "format", "formats"));
    if (m_model->hasResults()) {
        text += tr(" · %1 of %2 cells").arg(summary.ok + summary.notApplicable).arg(rows * columns);
        if (summary.notApplicable)
            text += tr(" (%1 n/a)").arg(summary.notApplicable);
        if (summary.ok)
            text +=
                tr(" · %1 %2 to %3 dB")
                    .arg(m_metric, QString::number(summary.minSqnr, 'f', 1), QString::number(summary.maxSqnr, 'f', 1));
    }
    if (!m_skipped.isEmpty()) {
        m_notMeasured->setText(tr("· %1 not measured (hover)")
                                   .arg(countNoun(uint64_t(m_skipped.size()), "weight tensor", "weight tensors")));
        QStringList lines = m_skipped.mid(0, 40);
        if (m_skipped.size() > 40)
            lines << tr("… and %1 more").arg(m_skipped.size() - 40);
        m_notMeasured->setToolTip(tr("Not in the matrix:\n") + lines.join(QLatin1Char('\n')));
    }
    m_notMeasured->setVisible(!m_skipped.isEmpty());
    m_summary->setFullText(text);
    if (m_legend)
        m_legend->update();
}

bool SensitivityView::eventFilter(QObject* watched, QEvent* event)
{
    if (watched == m_bars && event->type() == QEvent::Resize)
        QTimer::singleShot(0, this, &SensitivityView::updateBars); // after the plot took its new size
    if (watched == m_curves && event->type() == QEvent::Resize)
        QTimer::singleShot(0, this, &SensitivityView::updateCurves);
    return QWidget::eventFilter(watched, event);
}

void SensitivityView::updateBars()
{
    auto* bars = qobject_cast<QCPBars*>(m_bars->plottable(0));
    const std::vector<double> values = barValues();
    QVector<double> keys, heights, selectedKeys, selectedHeights;
    QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
    double top = 0;
    const QStringList tensors = m_model->tensors();
    // Long tensor names: thinner tick labels when many, and only as many as fit side by side (every k-th
    // bar and the selected ones); hovering a bar names its tensor.
    QFont font = m_bars->xAxis->tickLabelFont();
    font.setPointSizeF(values.size() > 40 ? 7.0 : 8.0);
    m_bars->xAxis->setTickLabelFont(font);
    const QFontMetricsF metrics(font);
    const double lineHeight = metrics.height() + 1.0;
    const double room = std::max(40.0, double(m_bars->width()) - 60.0);
    const size_t step = std::max<size_t>(1, size_t(std::ceil(double(values.size()) * lineHeight / room)));
    // The names run vertically: short ones (without "blk."/"model.layers." and ".weight") when the full ones
    // would take more than about 40% of the chart's height, none (hover names a bar) when even those would.
    auto shortName = [](QString name) {
        if (name.endsWith(QLatin1String(".weight")))
            name.chop(7);
        for (const char* prefix : {"model.layers.", "blk.", "layers.", "model."})
            if (name.startsWith(QLatin1String(prefix)))
                return name.mid(int(std::strlen(prefix)));
        return name;
    };
    const double tall = 0.4 * double(m_bars->height());
    double fullWidth = 0, shortWidth = 0;
    for (const QString& t : tensors) {
        QString full = t;
        if (full.endsWith(QLatin1String(".weight")))
            full.chop(7);
        fullWidth = std::max(fullWidth, metrics.horizontalAdvance(full));
        shortWidth = std::max(shortWidth, metrics.horizontalAdvance(shortName(t)));
    }
    const bool useShort = fullWidth > tall;
    const bool noNames = useShort && shortWidth > tall;
    m_bars->xAxis->setLabel(noNames ? tr("tensors in model order (hover a bar for its name)") : QString());
    for (size_t i = 0; i < values.size(); ++i) {
        QString label = tensors[int(i)];
        if (label.endsWith(QLatin1String(".weight")))
            label.chop(7);
        if (useShort)
            label = shortName(tensors[int(i)]);
        if (!noNames && (i % step == 0 || m_selected.contains(tensors[int(i)])))
            ticker->addTick(double(i), label);
        if (!std::isfinite(values[i]))
            continue;
        keys << double(i);
        heights << values[i];
        if (m_selected.contains(tensors[int(i)])) {
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
    m_barLabelStep = noNames ? 0 : int(step);
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
    const size_t columns = size_t(m_model->columnCount());
    const QStringList tensors = m_model->tensors();
    std::vector<std::vector<Sum>> roles(size_t(TensorRole::Count), std::vector<Sum>(columns));
    for (int row = 0; row < tensors.size(); ++row) {
        const TensorRole role = classifyTensor(tensors[row].toStdString()).role;
        for (size_t c = 0; c < columns; ++c) {
            const SensitivityResult* r = result(row, int(c));
            if (!r || !r->ok() || !std::isfinite(r->metrics.sqnrDb))
                continue;
            Sum& s = roles[size_t(role)][c];
            s.bits += r->bitsPerWeight;
            s.sqnr += r->metrics.sqnrDb;
            ++s.n;
        }
    }
    std::vector<Curve> out;
    for (size_t role = 0; role < roles.size(); ++role) {
        Curve curve = toCurve(QString::fromLatin1(roleName(TensorRole(role))), false, roles[role]);
        if (!curve.bits.empty())
            out.push_back(std::move(curve));
    }
    for (const QString& name : m_selected) {
        const int row = m_model->rowOf(name);
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
    // As many legend columns as fit with whole names (a narrow plot wrapped five columns of clipped names).
    {
        const QFontMetrics fm(m_curves->legend->font());
        int widest = 0;
        for (const Curve& c : lines)
            widest = std::max(widest, fm.horizontalAdvance(c.name));
        const int column = widest + 40; // symbol and padding
        const int wrap = std::clamp((m_curves->width() - 20) / std::max(column, 1), 1, 5);
        m_curves->legend->setWrap(wrap);
        // Too narrow for three columns, or too low to keep 100 px of plot under it: the legend would take the
        // plot's place; hovering a line names it instead.
        const int rows = (int(lines.size()) + wrap - 1) / wrap;
        const bool fits = wrap >= 3 && m_curves->height() - rows * (fm.height() + 3) >= 100;
        const bool show = !lines.empty() && fits;
        // A hidden legend still holds its layout row: take it out of the layout, put it back when it fits.
        if (!show && m_curves->legend->layout()) {
            m_curves->plotLayout()->take(m_curves->legend);
            m_curves->plotLayout()->simplify();
        } else if (show && !m_curves->legend->layout()) {
            putLegendAbove(m_curves, wrap);
        }
        m_curves->legend->setVisible(show);
    }
    m_curves->replot();
}

void SensitivityView::setMetricName(const QString& name)
{
    if (name == m_metric)
        return;
    m_metric = name;
    m_barsTitle->setText(tr("%1 per tensor, in model order, for").arg(name));
    m_curvesTitle->setText(tr("%1 vs bits per weight: mean per role, selected tensor bold").arg(name));
    m_bars->yAxis->setLabel(tr("%1 (dB)").arg(name));
    m_curves->yAxis->setLabel(tr("%1 (dB)").arg(name));
    m_bars->replot(QCustomPlot::rpQueuedReplot);
    m_curves->replot(QCustomPlot::rpQueuedReplot);
    if (m_legend)
        m_legend->update();
    updateSummary();
}

} // namespace qs
