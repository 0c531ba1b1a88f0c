#include "widgets/sensitivitydelegate.h"

#include "widgets/sensitivitymodel.h"

#include <QHeaderView>
#include <QPainter>
#include <QTableView>

namespace qs {

void SensitivityDelegate::paint(QPainter* painter, const QStyleOptionViewItem& option,
                                const QModelIndex& index) const
{
    const QRect r = option.rect;
    painter->save();
    const auto state = SensitivityModel::CellState(index.data(SensitivityModel::StateRole).toInt());
    if (state == SensitivityModel::CellState::NotApplicable) {
        // Anchored to the table's content (its corner above the row names) rather than the viewport: the
        // hatching runs on across neighbouring cells and does not shift against itself while scrolling.
        QPoint origin = r.topLeft();
        if (const auto* table = qobject_cast<const QTableView*>(option.widget))
            origin = QPoint(table->columnViewportPosition(0) - table->verticalHeader()->width(),
                            table->rowViewportPosition(0) - table->horizontalHeader()->height());
        painter->setBrushOrigin(origin);
        paintNotApplicable(*painter, r);
    } else {
        painter->fillRect(r, index.data(Qt::BackgroundRole).value<QBrush>());
    }
    if (const QString text = index.data(Qt::DisplayRole).toString(); !text.isEmpty()) {
        painter->setFont(option.font);
        painter->setPen(index.data(Qt::ForegroundRole).value<QBrush>().color());
        painter->drawText(r, Qt::AlignCenter, text);
    }
    painter->setPen(QPen(option.palette.color(QPalette::Base), 1));
    painter->drawLine(r.topLeft(), r.topRight());
    painter->drawLine(r.topLeft(), r.bottomLeft());
    painter->restore();
}

void SensitivityDelegate::paintNotApplicable(QPainter& painter, const QRect& rect)
{
    painter.fillRect(rect, QColor(236, 236, 236));
    painter.fillRect(rect, QBrush(QColor(200, 200, 200), Qt::BDiagPattern));
}

} // namespace qs
