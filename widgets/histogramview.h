#pragma once
// Value distribution of one tensor, several tensors overlaid (legend), or a merged group: linear or log
// counts, linear or symmetric-log values (the bulk and the tails both visible), zoom / pan, a crosshair
// readout, and the levels a quantization format would round a typical group of this tensor to.

#include "core/model/model.h"
#include "core/stats/histogram.h"

#include <QWidget>

#include <memory>
#include <vector>

class QCheckBox;
class QComboBox;
class QCPItemStraightLine;
class QCPItemText;
class QCustomPlot;
class QLabel;
class QSpinBox;
class QStackedWidget;

namespace qs {

struct TensorStats;

class HistogramView final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(HistogramView)

public:
    struct Series {
        QString label;
        std::shared_ptr<const TensorStats> stats;
        int tensorIndex = -1; // into model()->tensors(); -1 for merged groups (no grid overlay)
    };

    explicit HistogramView(QWidget* parent = nullptr);
    ~HistogramView() override;

    void setModel(std::shared_ptr<const Model> model);
    void setSeries(std::vector<Series> series);
    // Shown instead of the plot while there is nothing to draw.
    void setMessage(const QString& message);

    void setBins(int bins);
    void setLogY(bool on);
    void setSymlogX(bool on);
    void setNormalized(bool on);
    // A format name from core/quant/format.h, or empty for no overlay.
    void setGridFormat(const QString& format);

    QCustomPlot* plot() const { return m_plot; }
    // What is plotted, for tests: one binned histogram per series, the grid levels (value space), the
    // symlog threshold, and the crosshair text for a value.
    const std::vector<BinnedHistogram>& binned() const { return m_binned; }
    const std::vector<float>& gridLevels() const { return m_gridLevels; }
    double symlogThreshold() const { return m_linthresh; }
    QString readoutAt(double value) const;
    QString gridDescription() const;

public slots:
    void resetZoom();
    void exportPlot();

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    void refresh();
    void updateGrid();
    void updateCrosshair(double x);
    double toAxis(double value) const;
    double fromAxis(double coordinate) const;

    std::shared_ptr<const Model> m_model;
    std::vector<Series> m_series;
    std::vector<BinnedHistogram> m_binned;
    std::vector<float> m_gridLevels;
    QString m_gridText;
    double m_linthresh = 0;
    double m_lo = 0, m_hi = 0;

    QStackedWidget* m_stack = nullptr;
    QLabel* m_message = nullptr;
    QCustomPlot* m_plot = nullptr;
    QSpinBox* m_bins = nullptr;
    QCheckBox* m_logY = nullptr;
    QComboBox* m_xScale = nullptr;
    QCheckBox* m_normalized = nullptr;
    QComboBox* m_grid = nullptr;
    QCPItemStraightLine* m_crossLine = nullptr;
    QCPItemText* m_readout = nullptr;
    QCPItemText* m_gridLabel = nullptr;
};

} // namespace qs
