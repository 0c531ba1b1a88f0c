#pragma once
// Shared plotting pieces: consistent QCustomPlot styling, the symmetric-log axis (QCustomPlot has none:
// data are plotted in transformed coordinates and a ticker labels them with real values), and export of
// any plot to PNG / SVG / PDF.

#include <QColor>
#include <QIcon>
#include <QString>

#include <cmath>
#include <vector>

class QCustomPlot;
class QLabel;
class QWidget;

namespace qs {

// sign(x) * log1p(|x| / c): linear within ±c, logarithmic beyond. c > 0.
inline double symlogForward(double x, double c)
{
    return std::copysign(std::log1p(std::fabs(x) / c), x);
}
inline double symlogInverse(double t, double c)
{
    return std::copysign(c * std::expm1(std::fabs(t)), t);
}

// Readable defaults: fonts, grid, margins, interactions (drag and wheel zoom).
void stylePlot(QCustomPlot* plot);
// Puts a symlog ticker with threshold c on the x axis (or restores a plain one when c <= 0).
void setSymlogXAxis(QCustomPlot* plot, double c);
// Moves the legend out of the data area into a row above it, items side by side (wrapping after `wrap`).
void putLegendAbove(QCustomPlot* plot, int wrap = 0);
// The themed icon, else the application's resource icon when the app bundles it (widgets tests don't).
QIcon toolIcon(const char* themeName, const char* resource);
// A label for a view's tool bar, with room on its left to separate it from the previous control.
QWidget* toolbarLabel(const QString& text);
// The grey, centred, word-wrapped label a plot view shows instead of its plot ("select a tensor", errors).
QLabel* plotMessageLabel();
// A palette of distinguishable series colours.
QColor seriesColor(int index);

// Writes the plot by file extension: .png (2x resolution), .svg (QSvgGenerator), .pdf. Returns false and
// sets *error when it cannot.
bool exportPlot(QCustomPlot* plot, const QString& path, QString* error = nullptr);
// Asks for a file name and exports; reports failures in a message box. Returns the written path.
QString exportPlotDialog(QWidget* parent, QCustomPlot* plot, const QString& suggestedName);

} // namespace qs
