#pragma once
// Every tensor × every statistic, one row per tensor in model order. Rows exist from the start; their
// statistics fill in as the analysis streams results (dataChanged per batch). SortRole gives numbers for
// sorting, ExportRole full-precision values for CSV.

#include "core/model/model.h"

#include <QAbstractTableModel>
#include <QSortFilterProxyModel>
#include <QRegularExpression>

#include <functional>
#include <memory>
#include <optional>
#include <vector>

class QIODevice;

namespace qs {

class StatsStore;

class StatsTableModel final : public QAbstractTableModel {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(StatsTableModel)

public:
    enum Column {
        NameColumn, RoleColumn, BlockColumn, DTypeColumn, ElementsColumn, MinColumn, MaxColumn, MeanColumn,
        StdColumn, AbsmaxColumn, KurtosisColumn, ZerosColumn, NanColumn, InfColumn, Beyond3Column,
        Beyond6Column, ChannelRatioColumn, PlanColumn, ColumnCount
    };
    enum Roles {
        TensorNameRole = Qt::UserRole + 1,
        TensorIndexRole,
        SortRole,
        ExportRole,     // full precision, no units (CSV)
        RoleIdRole,     // int(TensorRole)
        BlockRole,      // int, -1 outside blocks
        HasStatsRole,   // bool
    };

    explicit StatsTableModel(StatsStore* store, QObject* parent = nullptr);

    // Reads the current model from the store (called on StatsStore::cleared).
    void reload();
    // Which statistic a column shows, for the overview chart's choices ("absmax", "kurtosis", ...).
    static QString columnKey(int column);

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

    QModelIndex indexForTensor(const QString& name) const;
    // Where the Plan column reads a tensor's assigned format from; planChanged() after every plan edit.
    void setFormatLookup(std::function<QString(const std::string&)> lookup);
    void planChanged();

private:
    void onTensorsReady(const std::vector<size_t>& indices);
    std::optional<double> value(int row, int column) const;

    StatsStore* m_store;
    std::shared_ptr<const Model> m_model;
    std::function<QString(const std::string&)> m_formatOf;
};

// Filters the statistics table by name regular expression, role and block range.
class StatsFilterProxy final : public QSortFilterProxyModel {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(StatsFilterProxy)

public:
    explicit StatsFilterProxy(QObject* parent = nullptr);
    bool setNamePattern(const QString& pattern); // false when invalid (then matched literally)
    void setRole(std::optional<int> role);       // int(TensorRole), nullopt: every role
    void setBlockRange(int first, int last);     // inclusive; (-1, -1): every tensor

protected:
    bool filterAcceptsRow(int sourceRow, const QModelIndex& sourceParent) const override;

private:
    QRegularExpression m_name;
    std::optional<int> m_role;
    int m_firstBlock = -1;
    int m_lastBlock = -1;
};

struct TensorStats;
// The statistic named by a StatsTableModel::columnKey ("absmax", "kurtosis", "beyond_6sigma" (in %),
// "channel_ratio", ...) of a tensor; nullopt when it does not apply.
std::optional<double> statisticValue(const TensorStats& stats, const QString& key);

// Writes the rows and columns of `model` (e.g. the filtered, sorted proxy) as RFC 4180 CSV with a header
// line, using ExportRole values where the model provides them.
bool writeCsv(const QAbstractItemModel& model, QIODevice* out);

} // namespace qs
