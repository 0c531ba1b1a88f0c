#pragma once
// The sensitivity matrix as a heatmap (tensors down, formats across, colour = SQNR in dB with its scale),
// plus the per-tensor SQNR of one chosen format as bars in model order and, beside it, SQNR against bits per
// weight: one curve per role (the mean over its tensors) and the selected tensors' own curves. Cells a format
// cannot encode are hatched grey and read "n/a". Hovering a cell tells its numbers; clicking it reports
// (tensor, format) so the window can select the tensor and overlay the format's grid on its histogram.
//
// The view only displays: it is fed the layout (setTensors / setFormats) and then results as they stream in.

#include "core/quant/sensitivity.h"

#include <QColor>
#include <QStringList>
#include <QWidget>
#include <map>
#include <optional>
#include <utility>
#include <vector>

class QComboBox;
class QCustomPlot;
class QLabel;
class QPushButton;
class QScrollArea;

namespace qs {

class SensitivityHeatmap;

class SensitivityView final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SensitivityView)

public:
    explicit SensitivityView(QWidget* parent = nullptr);
    ~SensitivityView() override;

    // Rows (model order) and columns; both drop the results.
    void setTensors(const QStringList& tensors);
    void setFormats(const QStringList& formats);
    void clear();
    void addResults(const std::vector<SensitivityResult>& results);
    // Outlines the rows of these tensors (the window's selection).
    void setHighlighted(const QStringList& tensors);
    // Shown over the empty heatmap ("Press Compute ...").
    void setMessage(const QString& message);
    void setRunning(bool running);

    QStringList tensors() const { return m_tensors; }
    QStringList formats() const { return m_formats; }
    const SensitivityResult* result(int row, int column) const;
    // The colour of an SQNR under the current scale; the scale spans the computed cells, rounded to 5 dB.
    QColor colorFor(double sqnrDb) const;
    std::pair<double, double> colorRange() const { return {m_lo, m_hi}; }
    // Cell text as painted ("23.4", "n/a", "" while pending) and its tooltip.
    QString cellText(int row, int column) const;
    QString cellToolTip(int row, int column) const;
    // The cell's rectangle in heatmap() coordinates (for tests).
    QRect cellRect(int row, int column) const;
    QWidget* heatmap() const;
    QPushButton* computeButton() const { return m_compute; }
    QCustomPlot* barPlot() const { return m_bars; }
    // The format of the bar chart.
    void setBarFormat(const QString& format);
    QString barFormat() const;
    // The bar chart's values (NaN where missing / n/a), one per tensor.
    std::vector<double> barValues() const;

    // One line of the "SQNR vs bits per weight" plot, points sorted by bits. A role's point for a format is
    // the mean over its tensors' computed cells (n/a and infinite SQNR skipped), at their mean bits.
    struct Curve {
        QString name; // the role ("attn_q") or, for a selected tensor, its name
        bool tensor = false;
        std::vector<double> bits;
        std::vector<double> sqnrDb;
    };
    // Role curves in role order, then the selected tensors' curves.
    std::vector<Curve> curves() const;
    QCustomPlot* curvePlot() const { return m_curves; }

signals:
    void computeRequested();
    void cancelRequested();
    void cellClicked(const QString& tensor, const QString& format);

protected:
    void showEvent(QShowEvent* event) override;

private:
    friend class SensitivityHeatmap;
    void scrollToHighlighted();
    void rescale();
    void updateBars();
    void updateCurves();
    void pickBarFormat();

    QStringList m_tensors;
    QStringList m_formats;
    std::map<std::pair<int, int>, SensitivityResult> m_cells;
    QStringList m_highlighted;
    QString m_message;
    double m_lo = 0, m_hi = 60;
    bool m_running = false;
    bool m_barChosen = false; // the user picked the bar chart's format

    SensitivityHeatmap* m_heatmap = nullptr;
    QScrollArea* m_scroll = nullptr;
    QPushButton* m_compute = nullptr;
    QLabel* m_summary = nullptr;
    QWidget* m_legend = nullptr; // the colour scale; repainted when the range changes
    QComboBox* m_barFormat = nullptr;
    QCustomPlot* m_bars = nullptr;
    QCustomPlot* m_curves = nullptr;
};

} // namespace qs
