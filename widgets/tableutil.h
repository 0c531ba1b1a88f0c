#pragma once
// Small helpers for the read-only QTableWidgets of the panels (footprint, GPU fit).

#include <QString>

class QTableWidget;

namespace qs {

// Puts `text` (with `tip` as its tooltip) into the cell; every column but the first is right-aligned (numbers).
void setNumberTableCell(QTableWidget* table, int row, int column, const QString& text, const QString& tip = {});

} // namespace qs
