#pragma once
// The statistics table with its filters (name regular expression, role, block range), a live count of
// matching tensors, and CSV export of exactly what is shown (filtered and sorted).

#include <QWidget>

class QComboBox;
class QLabel;
class QLineEdit;
class QSpinBox;
class QTableView;

namespace qs {

class StatsFilterProxy;
class StatsStore;
class StatsTableModel;

class StatsTableView final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(StatsTableView)

public:
    explicit StatsTableView(StatsStore* store, QWidget* parent = nullptr);

    QTableView* table() const { return m_table; }
    StatsTableModel* tableModel() const { return m_model; }
    StatsFilterProxy* proxy() const { return m_proxy; }
    QLineEdit* nameFilter() const { return m_name; }
    QComboBox* roleFilter() const { return m_role; }
    void setBlockRange(int first, int last); // (-1, -1): all

    // Writes the visible rows as CSV; false on I/O failure.
    bool exportCsv(const QString& path) const;
    // Selects the row of a tensor (no signal) and scrolls to it.
    void selectTensor(const QString& name);

public slots:
    void exportCsvDialog();

signals:
    void selectionChanged(const QStringList& tensorNames);

private:
    void onModelReset();
    void applyFilters();
    void updateCount();

    StatsStore* m_store;
    StatsTableModel* m_model;
    StatsFilterProxy* m_proxy;
    QTableView* m_table = nullptr;
    QLineEdit* m_name = nullptr;
    QComboBox* m_role = nullptr;
    QSpinBox* m_firstBlock = nullptr;
    QSpinBox* m_lastBlock = nullptr;
    QLabel* m_count = nullptr;
    bool m_selecting = false;
};

} // namespace qs
