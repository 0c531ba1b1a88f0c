#pragma once
// One chart across depth: a chosen statistic of every tensor of each chosen role (e.g. the kurtosis of
// every ffn_down) against its block index. Clicking a point activates that tensor. Models without
// transformer blocks are plotted against their tensor order.

#include <QStringList>
#include <QWidget>

#include <map>
#include <vector>

class QCheckBox;
class QComboBox;
class QCustomPlot;
class QLabel;
class QListWidget;
class QStackedWidget;

namespace qs {

class StatsStore;

class DepthView final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(DepthView)

public:
    explicit DepthView(StatsStore* store, QWidget* parent = nullptr);
    ~DepthView() override;

    // A StatsTableModel::columnKey: "absmax", "std", "kurtosis", "beyond_3sigma", ...
    void setStatistic(const QString& key);
    QString statistic() const;
    // Roles (int(TensorRole)) to draw; the default is every quantizable role present.
    void setRoles(const std::vector<int>& roles);

    // Tensors drawn with a highlight ring (the current selection elsewhere).
    void setHighlighted(const QStringList& names);

    QCustomPlot* plot() const { return m_plot; }
    // The tensor behind point `point` of series `series` (as drawn), for tests and clicks.
    QString tensorAt(int series, int point) const;
    int seriesCount() const { return int(m_seriesTensors.size()); }

public slots:
    void refresh();
    void exportPlot();

signals:
    void tensorActivated(const QString& name);

protected:
    void showEvent(QShowEvent* event) override;

private:
    // Streamed results arrive at up to 10 Hz: redraw at most every 250 ms, and only while visible.
    void scheduleRefresh();

    void rebuildRoleList();
    int nearestPoint(const QPointF& pos, int* series) const;

    StatsStore* m_store;
    std::vector<std::vector<QString>> m_seriesTensors; // per graph, per data point
    bool m_byBlock = true;
    bool m_dirty = false;
    QStringList m_highlighted;
    bool m_refreshPending = false;

    QComboBox* m_statistic = nullptr;
    QCheckBox* m_logY = nullptr;
    QListWidget* m_roles = nullptr;
    QStackedWidget* m_stack = nullptr;
    QLabel* m_message = nullptr;
    QCustomPlot* m_plot = nullptr;
};

} // namespace qs
