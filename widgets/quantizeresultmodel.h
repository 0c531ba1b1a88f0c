#pragma once
// The per-tensor result of a quantize run (core/quant/tensorreport.h) as a table: tensor, format, bytes
// written and SQNR in dB. Sortable through a QSortFilterProxyModel on SortRole (raw numbers; a tensor
// copied unchanged sorts above every measured SQNR).

#include "core/quant/tensorreport.h"

#include <QAbstractTableModel>
#include <vector>

namespace qs {

class QuantizeResultModel final : public QAbstractTableModel {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(QuantizeResultModel)

public:
    enum Column { NameColumn, FormatColumn, BytesColumn, SqnrColumn, ColumnCount };
    static constexpr int SortRole = Qt::UserRole + 1;

    explicit QuantizeResultModel(QObject* parent = nullptr);

    void setTensors(std::vector<QuantizedTensor> tensors);
    const std::vector<QuantizedTensor>& tensors() const { return m_tensors; }

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

private:
    std::vector<QuantizedTensor> m_tensors;
};

} // namespace qs
