#include "widgets/depthview.h"

#include "core/stats/stats.h"
#include "widgets/formatting.h"
#include "widgets/plotutil.h"
#include "widgets/statsstore.h"
#include "widgets/statstablemodel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QSplitter>
#include <QStackedWidget>
#include <QToolButton>
#include <QTimer>
#include <QToolTip>
#include <QToolBar>
#include <QVBoxLayout>
#include <qcustomplot.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace qs {

namespace {

struct StatChoice {
    const char* key;
    const char* title;
};
constexpr StatChoice statChoices[] = {
    {"absmax", "Absolute maximum"},       {"std", "Standard deviation"},
    {"kurtosis", "Excess kurtosis"},      {"beyond_3sigma", "Values beyond 3σ (%)"},
    {"beyond_6sigma", "Values beyond 6σ (%)"}, {"channel_ratio", "Channel absmax ratio (max / median)"},
    {"mean", "Mean"},                     {"min", "Minimum"},
    {"max", "Maximum"},
};

} // namespace

DepthView::DepthView(StatsStore* store, QWidget* parent) : QWidget(parent), m_store(store)
{
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    auto* controls = new QToolBar;
    controls->setIconSize(QSize(16, 16));
    controls->addWidget(toolbarLabel(tr("Statistic:")));
    m_statistic = new QComboBox;
    m_statistic->setObjectName(QStringLiteral("depthStatistic"));
    for (const auto& c : statChoices)
        m_statistic->addItem(tr(c.title), QString::fromLatin1(c.key));
    m_statistic->setCurrentIndex(2); // kurtosis: where outlier-heavy layers show first
    controls->addWidget(m_statistic);
    m_logY = new QCheckBox(tr("Log scale"));
    controls->addWidget(m_logY);
    auto* spacer = new QWidget;
    spacer->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
    controls->addWidget(spacer);
    controls->addWidget(toolbarLabel(tr("Click a point to select its tensor.")));
    auto* exportButton = new QToolButton;
    exportButton->setIcon(toolIcon("document-export", ":/icons/export.svg"));
    exportButton->setText(tr("Export…"));
    exportButton->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    connect(exportButton, &QToolButton::clicked, this, &DepthView::exportPlot);
    controls->addWidget(exportButton);
    layout->addWidget(controls);

    auto* splitter = new QSplitter(Qt::Horizontal);
    m_roles = new QListWidget;
    m_roles->setObjectName(QStringLiteral("depthRoles"));
    m_roles->setToolTip(tr("Roles to plot"));
    m_roles->setMaximumWidth(220);
    splitter->addWidget(m_roles);
    m_stack = new QStackedWidget;
    m_message = plotMessageLabel();
    m_stack->addWidget(m_message);
    m_plot = new QCustomPlot;
    m_plot->setObjectName(QStringLiteral("depthPlot"));
    stylePlot(m_plot);
    m_plot->setAntialiasedElement(QCP::aePlottables, true); // few points: smooth lines are cheap here
    m_plot->legend->setVisible(true);
    putLegendAbove(m_plot, 6);
    m_plot->setMouseTracking(true);
    m_stack->addWidget(m_plot);
    splitter->addWidget(m_stack);
    splitter->setStretchFactor(1, 1);
    layout->addWidget(splitter, 1);

    connect(m_statistic, &QComboBox::currentIndexChanged, this, &DepthView::refresh);
    connect(m_logY, &QCheckBox::toggled, this, &DepthView::refresh);
    connect(m_roles, &QListWidget::itemChanged, this, &DepthView::refresh);
    connect(m_store, &StatsStore::cleared, this, [this] {
        rebuildRoleList();
        refresh();
    });
    connect(m_store, &StatsStore::tensorsReady, this, &DepthView::scheduleRefresh);
    connect(m_store, &StatsStore::finished, this, &DepthView::scheduleRefresh);
    connect(m_plot, &QCustomPlot::mouseDoubleClick, this, &DepthView::refresh);
    connect(m_plot, &QCustomPlot::mousePress, this, [this](QMouseEvent* e) {
        int series = -1;
        const int point = nearestPoint(e->position(), &series);
        if (point >= 0)
            emit tensorActivated(tensorAt(series, point));
    });
    connect(m_plot, &QCustomPlot::mouseMove, this, [this](QMouseEvent* e) {
        int series = -1;
        const int point = nearestPoint(e->position(), &series);
        if (point < 0) {
            QToolTip::hideText();
            return;
        }
        const double value = m_plot->graph(series)->data()->at(point)->value;
        QToolTip::showText(e->globalPosition().toPoint(),
                           QStringLiteral("%1\n%2 = %3").arg(tensorAt(series, point), m_statistic->currentText(),
                                                              formatStat(value)),
                           m_plot);
    });
    rebuildRoleList();
    refresh();
}

DepthView::~DepthView() = default;

void DepthView::setStatistic(const QString& key)
{
    const int i = m_statistic->findData(key);
    if (i >= 0)
        m_statistic->setCurrentIndex(i);
}

QString DepthView::statistic() const
{
    return m_statistic->currentData().toString();
}

void DepthView::setRoles(const std::vector<int>& roles)
{
    const QSignalBlocker blocker(m_roles);
    for (int i = 0; i < m_roles->count(); ++i) {
        QListWidgetItem* item = m_roles->item(i);
        const bool on = std::find(roles.begin(), roles.end(), item->data(Qt::UserRole).toInt()) != roles.end();
        item->setCheckState(on ? Qt::Checked : Qt::Unchecked);
    }
    refresh();
}

void DepthView::setHighlighted(const QStringList& names)
{
    if (names == m_highlighted)
        return;
    m_highlighted = names;
    scheduleRefresh();
}

void DepthView::rebuildRoleList()
{
    const QSignalBlocker blocker(m_roles);
    m_roles->clear();
    const auto& model = m_store->model();
    if (!model)
        return;
    std::set<int> present;
    m_byBlock = false;
    for (const auto& t : model->tensors())
        if (t.role.block >= 0) {
            present.insert(int(t.role.role));
            m_byBlock = true;
        }
    for (int role : present) {
        auto* item = new QListWidgetItem(QString::fromLatin1(roleName(TensorRole(role))), m_roles);
        item->setData(Qt::UserRole, role);
        item->setFlags(Qt::ItemIsEnabled | Qt::ItemIsUserCheckable);
        item->setCheckState(roleIsQuantizable(TensorRole(role)) ? Qt::Checked : Qt::Unchecked);
    }
    m_roles->setVisible(m_byBlock);
}

void DepthView::scheduleRefresh()
{
    m_dirty = true;
    if (!isVisible() || m_refreshPending)
        return;
    m_refreshPending = true;
    QTimer::singleShot(250, this, [this] {
        m_refreshPending = false;
        if (m_dirty && isVisible())
            refresh();
    });
}

void DepthView::showEvent(QShowEvent* event)
{
    QWidget::showEvent(event);
    if (m_dirty)
        refresh();
}

void DepthView::refresh()
{
    m_dirty = false;
    m_plot->clearGraphs();
    m_seriesTensors.clear();
    const auto& model = m_store->model();
    if (!model || model->tensors().empty()) {
        m_message->setText(tr("Open a model to compare its layers across depth."));
        m_stack->setCurrentWidget(m_message);
        return;
    }
    const QString key = statistic();
    const bool logY = m_logY->isChecked();
    const auto& tensors = model->tensors();

    // (series label, points (x, value, tensor name)) in x order.
    struct Point {
        double x;
        double value;
        QString name;
    };
    std::vector<std::pair<QString, std::vector<Point>>> series;
    if (m_byBlock) {
        for (int i = 0; i < m_roles->count(); ++i) {
            const QListWidgetItem* item = m_roles->item(i);
            if (item->checkState() != Qt::Checked)
                continue;
            const auto role = TensorRole(item->data(Qt::UserRole).toInt());
            std::map<int, Point> byBlock; // the largest value when a block has several (experts)
            for (size_t ti = 0; ti < tensors.size(); ++ti) {
                const auto& t = tensors[ti];
                if (t.role.role != role || t.role.block < 0)
                    continue;
                const TensorStats* s = m_store->stats(ti);
                if (!s || !s->error.empty())
                    continue;
                const auto v = statisticValue(*s, key);
                if (!v || !std::isfinite(*v) || (logY && *v <= 0))
                    continue;
                auto it = byBlock.find(t.role.block);
                if (it == byBlock.end() || *v > it->second.value)
                    byBlock[t.role.block] = Point{double(t.role.block), *v, QString::fromStdString(t.name)};
            }
            std::vector<Point> points;
            for (auto& [block, p] : byBlock)
                points.push_back(p);
            series.emplace_back(item->text(), std::move(points));
        }
    } else {
        std::vector<Point> points;
        for (size_t ti = 0; ti < tensors.size(); ++ti) {
            const TensorStats* s = m_store->stats(ti);
            if (!s || !s->error.empty() || tensors[ti].elements() < 2)
                continue;
            const auto v = statisticValue(*s, key);
            if (v && std::isfinite(*v) && !(logY && *v <= 0))
                points.push_back(Point{double(ti), *v, QString::fromStdString(tensors[ti].name)});
        }
        series.emplace_back(tr("all tensors"), std::move(points));
    }

    double lo = std::numeric_limits<double>::infinity(), hi = -lo, xMax = 0;
    int drawn = 0;
    for (size_t si = 0; si < series.size(); ++si) {
        const auto& [label, points] = series[si];
        if (points.empty())
            continue;
        QVector<double> x, y;
        std::vector<QString> names;
        for (const Point& p : points) {
            x.push_back(p.x);
            y.push_back(p.value);
            names.push_back(p.name);
            lo = std::min(lo, p.value);
            hi = std::max(hi, p.value);
            xMax = std::max(xMax, p.x);
        }
        QCPGraph* graph = m_plot->addGraph();
        const QColor color = seriesColor(int(si));
        graph->setPen(QPen(color, 1.6));
        graph->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, color, Qt::white, 6));
        graph->setLineStyle(m_byBlock ? QCPGraph::lsLine : QCPGraph::lsNone);
        graph->setData(x, y, true);
        graph->setName(label);
        m_seriesTensors.push_back(std::move(names));
        ++drawn;
    }
    // Rings around the selected tensors' points, drawn last (not part of m_seriesTensors / clicks).
    if (!m_highlighted.isEmpty()) {
        QVector<double> hx, hy;
        for (int g = 0; g < m_plot->graphCount(); ++g)
            for (int i = 0; i < m_plot->graph(g)->dataCount(); ++i)
                if (m_highlighted.contains(m_seriesTensors[size_t(g)][size_t(i)])) {
                    hx << m_plot->graph(g)->data()->at(i)->key;
                    hy << m_plot->graph(g)->data()->at(i)->value;
                }
        if (!hx.isEmpty()) {
            QCPGraph* ring = m_plot->addGraph();
            ring->setName(tr("selected"));
            ring->setLineStyle(QCPGraph::lsNone);
            ring->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, QPen(QColor(20, 20, 20), 2), Qt::NoBrush, 13));
            ring->setData(hx, hy);
            ring->removeFromLegend();
        }
    }
    if (drawn == 0) {
        m_message->setText(m_store->isRunning() ? tr("Analysing… the chart fills in as tensors finish.")
                                                : tr("No statistics yet for the chosen roles. Run the analysis "
                                                     "(Analysis › Analyse Model)."));
        m_stack->setCurrentWidget(m_message);
        return;
    }
    m_plot->xAxis->setLabel(m_byBlock ? tr("block") : tr("tensor (model order)"));
    m_plot->yAxis->setLabel(m_statistic->currentText());
    if (m_byBlock) {
        QSharedPointer<QCPAxisTickerFixed> ticker(new QCPAxisTickerFixed);
        ticker->setTickStep(xMax > 40 ? 5.0 : (xMax > 16 ? 2.0 : 1.0));
        ticker->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
        m_plot->xAxis->setTicker(ticker);
    } else {
        m_plot->xAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    }
    m_plot->xAxis->setRange(-0.5, xMax + 0.5);
    if (logY) {
        m_plot->yAxis->setScaleType(QCPAxis::stLogarithmic);
        m_plot->yAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTickerLog));
        m_plot->yAxis->setRange(lo / 1.5, hi * 1.5);
    } else {
        m_plot->yAxis->setScaleType(QCPAxis::stLinear);
        m_plot->yAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
        const double pad = hi > lo ? (hi - lo) * 0.08 : std::max(1e-6, std::fabs(hi) * 0.1);
        m_plot->yAxis->setRange(lo - pad, hi + pad);
    }
    m_stack->setCurrentWidget(m_plot);
    m_plot->replot(QCustomPlot::rpQueuedReplot); // coalesced, drawn from the event loop
}

QString DepthView::tensorAt(int series, int point) const
{
    if (series < 0 || series >= int(m_seriesTensors.size()) || point < 0 ||
        point >= int(m_seriesTensors[size_t(series)].size()))
        return {};
    return m_seriesTensors[size_t(series)][size_t(point)];
}

int DepthView::nearestPoint(const QPointF& pos, int* series) const
{
    double best = 12.0; // pixels
    int bestPoint = -1;
    for (int g = 0; g < std::min(m_plot->graphCount(), int(m_seriesTensors.size())); ++g) {
        const auto data = m_plot->graph(g)->data();
        for (int i = 0; i < data->size(); ++i) {
            const auto d = data->at(i);
            const double px = m_plot->xAxis->coordToPixel(d->key);
            const double py = m_plot->yAxis->coordToPixel(d->value);
            const double dist = std::hypot(px - pos.x(), py - pos.y());
            if (dist < best) {
                best = dist;
                bestPoint = i;
                *series = g;
            }
        }
    }
    return bestPoint;
}

void DepthView::exportPlot()
{
    exportPlotDialog(this, m_plot, QStringLiteral("depth-") + statistic());
}

} // namespace qs
