#pragma once
// The sensitivity matrix as a heatmap (tensors down, formats across, colour = SQNR in dB with its scale),
// plus the per-tensor SQNR of one chosen format as bars in model order and, beside it, SQNR against bits per
// weight: one curve per role (the mean over its tensors) and the selected tensors' own curves. Cells a format
// cannot encode are hatched grey and read "n/a". Hovering a cell tells its numbers; clicking it reports
// (tensor, format) so the window can select the tensor and overlay the format's grid on its histogram.
//
// The heatmap is a table view over a SensitivityModel painted by a SensitivityDelegate. The view only
// displays: given a SensitivityStore it shows the store's cells (the only copy) as they stream in; without
// one it is fed the layout (setTensors / setFormats) and the results (addResults).
//
// Selection: setSelectedTensors (or setHighlighted) outlines those tensors' rows and draws their curves
// without emitting anything; a selection by the user emits tensorsSelected.

#include "core/quant/sensitivity.h"

#include <QColor>
#include <QStringList>
#include <QWidget>
#include <utility>
#include <vector>

class QComboBox;
class QCustomPlot;
class QLabel;

namespace qs {
class ElidedLabel;
}
class QPushButton;
class QTableView;

namespace qs {

class FormatChooser;

class SensitivityModel;
class SensitivityStore;
class SensitivityTable;

class SensitivityView final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SensitivityView)

public:
    explicit SensitivityView(QWidget* parent = nullptr);
    ~SensitivityView() override;

    // Shows the cells of this store and follows its layout (tensors and formats, again at every cleared()).
    void setStore(const SensitivityStore* store);
    SensitivityModel* model() const { return m_model; }

    // Rows (model order) and columns; without a store both drop the results.
    void setTensors(const QStringList& tensors);
    void setFormats(const QStringList& formats);
    void clear();
    // Without a store: the cells to show. With one: ignored (the store's resultsReady brought them).
    void addResults(const std::vector<SensitivityResult>& results);
    // The window's selection; the same as setSelectedTensors.
    void setHighlighted(const QStringList& tensors);
    QStringList selectedTensors() const { return m_selected; }
    // Shown over the empty heatmap ("Press Compute ...").
    void setMessage(const QString& message);
    void setRunning(bool running);

    QStringList tensors() const;
    QStringList formats() const;
    const SensitivityResult* result(int row, int column) const;
    // The colour of an SQNR under the current scale; the scale spans the computed cells, rounded to 5 dB.
    QColor colorFor(double sqnrDb) const;
    std::pair<double, double> colorRange() const;
    // What the cells' decibels measure: "SQNR" (weight error) or "KL score" (−10·log10 of measured ΔKL);
    // names the legend, the bars, the curves and the summary.
    void setMetricName(const QString& name);
    QString metricName() const { return m_metric; }
    // Cell text as painted ("23.4", "n/a", "" while pending) and its tooltip.
    QString cellText(int row, int column) const;
    QString cellToolTip(int row, int column) const;
    // The cell's rectangle in heatmap() coordinates, scrolled into view first (for tests: a click there
    // reaches the cell).
    QRect cellRect(int row, int column) const;
    QWidget* heatmap() const;
    QTableView* table() const;
    // Weight tensors the matrix does not cover, as "name: reason" (the summary says how many; its tooltip
    // lists them).
    void setSkipped(const QStringList& skipped);
    QString summaryText() const;
    QPushButton* computeButton() const { return m_compute; }
    // The "Formats…" menu beside Compute: the candidate formats the owner computes.
    FormatChooser* formatChooser() const { return m_formatChooser; }
    QCustomPlot* barPlot() const { return m_bars; }
    // Every how many bars a tensor name is written under the chart (1: all; more when they would overlap; 0:
    // none, the chart is too low for the names and hovering a bar names it).
    int barLabelStep() const { return m_barLabelStep; }
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

public slots:
    // Selects the rows of these tensors (and draws their bars and curves) without emitting tensorsSelected.
    void setSelectedTensors(const QStringList& tensors);

signals:
    void computeRequested();
    void cancelRequested();
    void cellClicked(const QString& tensor, const QString& format);
    // The user selected these tensors in the heatmap (in row order).
    void tensorsSelected(const QStringList& tensors);

protected:
    void showEvent(QShowEvent* event) override;
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    void onModelReset();
    void onCellsChanged(const QList<int>& roles);
    void onSelectionChanged();
    void applySelection();
    void scrollToSelected();
    void updateSummary();
    void updateBars();
    void updateCurves();
    void pickBarFormat();
    void syncBarFormats();

    SensitivityModel* m_model = nullptr;
    QStringList m_selected; // may name tensors that are not rows (yet)
    QStringList m_skipped;
    QString m_message;
    bool m_running = false;
    bool m_barChosen = false;         // the user picked the bar chart's format
    bool m_applyingSelection = false; // setSelectedTensors at work: no tensorsSelected

    SensitivityTable* m_table = nullptr;
    QPushButton* m_compute = nullptr;
    FormatChooser* m_formatChooser = nullptr;
    ElidedLabel* m_summary = nullptr; // cut with an ellipsis when the window is narrow; full text on hover
    QLabel* m_notMeasured = nullptr;  // "N weight tensors not measured", the list on hover
    QWidget* m_legend = nullptr; // the colour scale; repainted when the range changes
    QLabel* m_barsTitle = nullptr;
    QLabel* m_curvesTitle = nullptr;
    QString m_metric = QStringLiteral("SQNR");
    QComboBox* m_barFormat = nullptr;
    QCustomPlot* m_bars = nullptr;
    QCustomPlot* m_curves = nullptr;
    int m_barLabelStep = 1;
};

} // namespace qs
