#pragma once
// Per-output-channel absmax and standard deviation of one tensor, in channel order or sorted by absmax,
// with outlier channels (absmax above k × the median channel absmax) highlighted: the channels that set
// a per-tensor or per-group scale and make quantization error explode.

#include <QWidget>

#include <memory>
#include <vector>

class QCheckBox;
class QCPItemText;
class QCustomPlot;
class QDoubleSpinBox;
class QLabel;
class QStackedWidget;

namespace qs {

struct TensorStats;

class ChannelView final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ChannelView)

public:
    explicit ChannelView(QWidget* parent = nullptr);
    ~ChannelView() override;

    // `note` is shown after the summary (e.g. "first of 3 selected tensors").
    void setTensor(const QString& label, std::shared_ptr<const TensorStats> stats, const QString& note = {});
    void setMessage(const QString& message);
    void setSorted(bool sorted);
    void setOutlierFactor(double k);

    QCustomPlot* plot() const { return m_plot; }
    // Channel indices flagged as outliers (in channel order), and the plotted order, for tests.
    const std::vector<size_t>& outliers() const { return m_outliers; }
    const std::vector<size_t>& order() const { return m_order; }
    QString summaryText() const;

public slots:
    void exportPlot();

private:
    void refresh();

    QString m_label;
    QString m_note;
    std::shared_ptr<const TensorStats> m_stats;
    std::vector<size_t> m_outliers;
    std::vector<size_t> m_order;
    double m_median = 0;

    QStackedWidget* m_stack = nullptr;
    QLabel* m_message = nullptr;
    QLabel* m_summary = nullptr;
    QCustomPlot* m_plot = nullptr;
    QCheckBox* m_sorted = nullptr;
    QDoubleSpinBox* m_factor = nullptr;
    QCPItemText* m_readout = nullptr;
};

} // namespace qs
