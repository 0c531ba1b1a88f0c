#pragma once
// Paints a SensitivityModel cell as a heatmap cell: the model's colour (BackgroundRole) with the SQNR text in
// a contrasting colour, grey hatching under "n/a" for formats that cannot encode the tensor, light grey while
// pending. A one-pixel line of the base colour on the left and top edges keeps neighbouring cells of similar
// colour apart. Selection is not painted here (the view frames the selected rows).

#include <QStyledItemDelegate>

namespace qs {

class SensitivityDelegate final : public QStyledItemDelegate {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SensitivityDelegate)

public:
    using QStyledItemDelegate::QStyledItemDelegate;

    void paint(QPainter* painter, const QStyleOptionViewItem& option,
               const QModelIndex& index) const override;

    // The hatching of n/a cells, shared with the colour scale's legend.
    static void paintNotApplicable(QPainter& painter, const QRect& rect);
};

} // namespace qs
