#include "widgets/tradeoffview.h"

#include "widgets/formatting.h"
#include "widgets/plotutil.h"

#include <QVBoxLayout>
#include <qcustomplot.h>

#include <algorithm>

namespace qs {

namespace {
constexpr double mib = 1024.0 * 1024.0;
}

TradeoffView::TradeoffView(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    m_plot = new QCustomPlot;
    m_plot->setObjectName(QStringLiteral("tradeoffPlot"));
    m_plot->setMinimumSize(420, 260);
    stylePlot(m_plot);
    m_plot->setAntialiasedElement(QCP::aePlottables, true);
    m_plot->setInteractions(QCP::Interactions());
    m_plot->legend->setVisible(true);
    putLegendAbove(m_plot);
    m_plot->xAxis->setLabel(tr("weights (MiB)"));
    m_plot->yAxis->setLabel(tr("predicted error"));
    m_plot->yAxis->setScaleType(QCPAxis::stLogarithmic);
    m_plot->yAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTickerLog));
    layout->addWidget(m_plot);
    connect(m_plot, &QCustomPlot::mousePress, this, [this](QMouseEvent* e) {
        const double x = m_plot->xAxis->pixelToCoord(e->position().x());
        if (x > 0) {
            setBudget(uint64_t(x * mib));
            emit budgetChosen(m_budget);
        }
    });
}

void TradeoffView::setCurve(std::vector<TradeoffPoint> curve, uint64_t currentBytes, double currentError)
{
    m_curve = std::move(curve);
    m_plot->clearGraphs();
    QVector<double> x, y;
    for (const auto& p : m_curve)
        if (p.error > 0) {
            x << double(p.bytes) / mib;
            y << p.error;
        }
    QCPGraph* frontier = m_plot->addGraph();
    frontier->setName(tr("best plan for each size"));
    frontier->setPen(QPen(seriesColor(0), 1.8));
    frontier->setLineStyle(QCPGraph::lsStepLeft);
    frontier->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, seriesColor(0), Qt::white, 5));
    frontier->setData(x, y, true);
    QCPGraph* current = m_plot->addGraph();
    current->setName(tr("current plan"));
    current->setLineStyle(QCPGraph::lsNone);
    current->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDiamond, QColor(214, 39, 40), QColor(214, 39, 40), 10));
    if (currentError > 0)
        current->setData(QVector<double>{double(currentBytes) / mib}, QVector<double>{currentError});
    QCPGraph* budget = m_plot->addGraph();
    budget->setName(tr("budget"));
    budget->setPen(QPen(QColor(230, 120, 0), 1.5, Qt::DashLine));
    double lo = x.isEmpty() ? 0 : x.front(), hi = x.isEmpty() ? 1 : x.back();
    lo = std::min(lo, double(currentBytes) / mib);
    hi = std::max(hi, double(currentBytes) / mib);
    const double pad = std::max((hi - lo) * 0.05, hi * 0.01 + 1e-6);
    m_plot->xAxis->setRange(std::max(0.0, lo - pad), hi + pad);
    double yLo = 1e300, yHi = 0;
    for (double v : y) {
        yLo = std::min(yLo, v);
        yHi = std::max(yHi, v);
    }
    if (currentError > 0) {
        yLo = std::min(yLo, currentError);
        yHi = std::max(yHi, currentError);
    }
    if (yHi > 0)
        m_plot->yAxis->setRange(yLo / 2, yHi * 2);
    setBudget(m_budget ? m_budget : currentBytes);
}

void TradeoffView::setBudget(uint64_t bytes)
{
    m_budget = bytes;
    if (m_plot->graphCount() >= 3) {
        const double x = double(bytes) / mib;
        m_plot->graph(2)->setData(QVector<double>{x, x}, QVector<double>{m_plot->yAxis->range().lower,
                                                                          m_plot->yAxis->range().upper});
    }
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

} // namespace qs
