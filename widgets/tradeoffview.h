#pragma once
// The size / error trade-off of a plan's tiers (core/plan/budget.h tradeoffCurve): the convex frontier
// from the smallest plan to the most precise one, the current plan as a marker, and the chosen budget as
// a vertical line. Clicking the chart picks a budget.

#include "core/plan/budget.h"

#include <QWidget>

#include <vector>

class QCustomPlot;

namespace qs {

class TradeoffView final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TradeoffView)

public:
    explicit TradeoffView(QWidget* parent = nullptr);

    void setCurve(std::vector<TradeoffPoint> curve, uint64_t currentBytes, double currentError);
    void setBudget(uint64_t bytes);
    uint64_t budget() const { return m_budget; }
    QCustomPlot* plot() const { return m_plot; }
    const std::vector<TradeoffPoint>& curve() const { return m_curve; }

signals:
    void budgetChosen(uint64_t bytes);

private:
    std::vector<TradeoffPoint> m_curve;
    uint64_t m_budget = 0;
    QCustomPlot* m_plot = nullptr;
};

} // namespace qs
