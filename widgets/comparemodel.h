#pragma once
// The per-tensor comparison of two models (core/quant/compare.h) as a table: tensor, the two stored types,
// SQNR, RMSE, max |difference|, cosine. Rows arrive as the job streams them (appendTensors); sortable through a
// QSortFilterProxyModel on SortRole (raw numbers; identical tensors sort above every finite SQNR, tensors that
// could not be compared below everything).

#include "core/quant/compare.h"

#include <QAbstractTableModel>
#include <vector>

namespace qs {

class CompareModel final : public QAbstractTableModel {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(CompareModel)

public:
    enum Column { NameColumn, TypesColumn, SqnrColumn, RmseColumn, MaxDiffColumn, CosineColumn, ColumnCount };
    static constexpr int SortRole = Qt::UserRole + 1;

    explicit CompareModel(QObject* parent = nullptr);

    void clear();
    void appendTensors(std::vector<TensorComparison> tensors);
    const std::vector<TensorComparison>& tensors() const { return m_tensors; }
    const TensorComparison* tensorAt(int row) const;

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

private:
    std::vector<TensorComparison> m_tensors;
};

} // namespace qs
