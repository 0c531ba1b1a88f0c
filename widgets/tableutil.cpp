#include "widgets/tableutil.h"

#include <QTableWidget>

namespace qs {

void setNumberTableCell(QTableWidget* table, int row, int column, const QString& text, const QString& tip)
{
    auto* item = new QTableWidgetItem(text);
    item->setToolTip(tip);
    if (column > 0)
        item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    table->setItem(row, column, item);
}

} // namespace qs
