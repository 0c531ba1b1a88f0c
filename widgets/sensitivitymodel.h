#pragma once
// The sensitivity matrix as a table: one row per tensor (model order), one column per format. The cells are
// read from a SensitivityStore, which holds the only copy of them; the model keeps the layout, a name-to-row
// hash (an arriving cell finds its row in O(1)) and one state byte per cell for the counts and the colour
// scale. Cells that arrive together come out as one dataChanged; the store's cleared() resets the model.
//
// Without a store (previews, tests) the model keeps the cells it is handed with addResults.
//
// The colour scale (SQNR in dB, red through pale yellow to blue) spans the computed cells rounded outwards to
// 5 dB; when it moves, every cell changes colour and dataChanged covers the whole matrix.

#include "core/quant/sensitivity.h"

#include <QAbstractTableModel>
#include <QColor>
#include <QHash>
#include <QStringList>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace qs {

class SensitivityStore;

class SensitivityModel final : public QAbstractTableModel {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SensitivityModel)

public:
    enum class CellState : uint8_t { Pending, Ok, NotApplicable };
    enum Roles {
        SqnrRole = Qt::UserRole + 1, // double dB (may be infinite); invalid while pending or n/a
        BitsPerWeightRole,           // double; invalid while pending or n/a
        StateRole,                   // int(CellState)
        TensorNameRole,              // QString, also on the vertical header
        FormatNameRole,              // QString, also on the horizontal header
    };
    // What the summary line tells: computed cells and the SQNR span of the finite ones.
    struct Summary {
        size_t ok = 0;
        size_t notApplicable = 0;
        double minSqnr = 0;
        double maxSqnr = 0;
    };

    explicit SensitivityModel(QObject* parent = nullptr);
    ~SensitivityModel() override;

    // Reads the cells of this store from now on and takes its layout (again at every cleared()).
    void setStore(const SensitivityStore* store);
    const SensitivityStore* store() const { return m_store; }

    // The layout; both reset the model (without a store they drop the cells).
    void setTensors(const QStringList& tensors);
    void setFormats(const QStringList& formats);
    QStringList tensors() const { return m_tensors; }
    QStringList formats() const { return m_formats; }
    int rowOf(const QString& tensor) const { return m_rowOf.value(tensor, -1); }
    int columnOf(const QString& format) const { return m_columnOf.value(format, -1); }

    // Without a store: keeps these cells (unknown tensors and formats are ignored). With one: ignored, the
    // store's resultsReady already brought them.
    void addResults(const std::vector<SensitivityResult>& results);
    // Without a store: drops the cells.
    void clear();
    // Pending cells' tooltips say "computing…" rather than "not computed". Follows the store when there is
    // one.
    void setRunning(bool running);

    // nullptr while the cell is pending.
    const SensitivityResult* result(int row, int column) const;
    CellState state(int row, int column) const;
    Summary summary() const { return m_summary; }
    bool hasResults() const { return m_summary.ok + m_summary.notApplicable > 0; }
    // The colour of an SQNR under the current scale.
    QColor colorFor(double sqnrDb) const;
    std::pair<double, double> colorRange() const { return {m_lo, m_hi}; }
    // The scale's colour at t in [0, 1] (0: worst), for legends.
    static QColor rampColor(double t);

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

private:
    void resetLayout(const QStringList& tensors, const QStringList& formats);
    void absorb(const std::vector<SensitivityResult>& results);
    void recount();
    void count(const SensitivityResult& r);
    bool updateScale();
    QString cellText(const SensitivityResult* r) const;
    QString cellToolTip(int row, int column) const;
    size_t cellIndex(int row, int column) const
    {
        return size_t(row) * size_t(m_formats.size()) + size_t(column);
    }

    const SensitivityStore* m_store = nullptr;
    QStringList m_tensors;
    QStringList m_formats;
    QHash<QString, int> m_rowOf;
    QHash<QString, int> m_columnOf;
    std::vector<CellState> m_states;                     // row-major
    std::vector<std::optional<SensitivityResult>> m_own; // row-major; empty with a store
    Summary m_summary;
    double m_lo = 0, m_hi = 60;
    bool m_running = false;
};

} // namespace qs
