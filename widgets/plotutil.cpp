#include "widgets/plotutil.h"

#include "core/util/atomicfile.h"
#include "core/util/error.h"
#include "widgets/formatting.h"

#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMessageBox>
#include <QSettings>
#include <QSvgGenerator>
#include <qcustomplot.h>

#include <algorithm>

namespace qs {

namespace {

// Ticks at 0 and ±{1, 2, 5}·10^k in value space, thinned to what fits, placed at transformed positions.
class SymlogTicker final : public QCPAxisTicker {
public:
    explicit SymlogTicker(double c) : m_c(c) {}

protected:
    QVector<double> createTickVector(double, const QCPRange& range) override
    {
        const double lo = symlogInverse(range.lower, m_c);
        const double hi = symlogInverse(range.upper, m_c);
        const double maxAbs = std::max(std::fabs(lo), std::fabs(hi));
        std::vector<double> values;
        if (lo <= 0 && hi >= 0)
            values.push_back(0.0);
        if (maxAbs > 0) {
            const int kLow = int(std::floor(std::log10(m_c))) - 1;
            const int kHigh = int(std::ceil(std::log10(maxAbs)));
            for (int k = kLow; k <= kHigh; ++k)
                for (double m : {1.0, 2.0, 5.0}) {
                    const double v = m * std::pow(10.0, k);
                    if (v < m_c * 0.5)
                        continue; // inside the linear zone ticks crowd; 0 and ±c suffice
                    for (double s : {-v, v})
                        if (s >= lo && s <= hi)
                            values.push_back(s);
                }
        }
        std::sort(values.begin(), values.end());
        QVector<double> ticks;
        for (double v : values)
            ticks.push_back(symlogForward(v, m_c));
        // Keep the ticks at least 1/12 of the range apart.
        const double minGap = range.size() / 12.0;
        QVector<double> thinned;
        for (double t : ticks)
            if (thinned.isEmpty() || t - thinned.back() >= minGap || t == 0.0)
                thinned.push_back(t);
        return thinned;
    }
    QString getTickLabel(double tick, const QLocale&, QChar, int) override
    {
        return formatStat(symlogInverse(tick, m_c));
    }
    int getSubTickCount(double) override { return 0; }

private:
    double m_c;
};

} // namespace

void stylePlot(QCustomPlot* plot)
{
    plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    // Antialiased text and axes; data lines are drawn plain (thousands of impulses stay cheap).
    plot->setAntialiasedElements(QCP::aeAxes | QCP::aeLegend | QCP::aeLegendItems | QCP::aeItems);
    plot->setNotAntialiasedElements(QCP::aePlottables | QCP::aeFills | QCP::aeGrid | QCP::aeSubGrid);
    plot->setNoAntialiasingOnDrag(true);
    QFont font = plot->font();
    font.setPointSizeF(std::max(9.0, font.pointSizeF()));
    for (QCPAxis* axis : {plot->xAxis, plot->yAxis}) {
        axis->setTickLabelFont(font);
        axis->setLabelFont(font);
        axis->grid()->setPen(QPen(QColor(220, 220, 220), 1, Qt::DotLine));
        axis->grid()->setZeroLinePen(QPen(QColor(170, 170, 170), 1));
        axis->setBasePen(QPen(QColor(90, 90, 90)));
        axis->setTickPen(QPen(QColor(90, 90, 90)));
        axis->setSubTickPen(QPen(QColor(140, 140, 140)));
    }
    plot->legend->setFont(font);
    plot->legend->setBrush(QColor(255, 255, 255, 220));
    plot->legend->setBorderPen(QPen(QColor(200, 200, 200)));
    plot->setBackground(Qt::white);
}

void setSymlogXAxis(QCustomPlot* plot, double c)
{
    if (c > 0)
        plot->xAxis->setTicker(QSharedPointer<QCPAxisTicker>(new SymlogTicker(c)));
    else
        plot->xAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
}

void putLegendAbove(QCustomPlot* plot, int wrap)
{
    plot->plotLayout()->insertRow(0);
    plot->plotLayout()->addElement(0, 0, plot->legend);
    plot->legend->setFillOrder(QCPLegend::foColumnsFirst);
    plot->legend->setWrap(wrap);
    plot->legend->setBorderPen(Qt::NoPen);
    plot->legend->setBrush(Qt::NoBrush);
    plot->legend->setMargins(QMargins(4, 0, 4, 0));
    plot->plotLayout()->setRowStretchFactor(0, 0.001);
    plot->plotLayout()->setRowSpacing(0);
}

QIcon toolIcon(const char* themeName, const char* resource)
{
    const QString path = QLatin1String(resource);
    return QIcon::fromTheme(QLatin1String(themeName), QFile::exists(path) ? QIcon(path) : QIcon());
}

QWidget* toolbarLabel(const QString& text)
{
    auto* label = new QLabel(text);
    label->setContentsMargins(8, 0, 3, 0);
    return label;
}

QColor seriesColor(int index)
{
    static const QColor colors[] = {QColor(31, 119, 180), QColor(255, 127, 14), QColor(44, 160, 44),
                                    QColor(214, 39, 40),  QColor(148, 103, 189), QColor(140, 86, 75),
                                    QColor(227, 119, 194), QColor(127, 127, 127), QColor(188, 189, 34),
                                    QColor(23, 190, 207)};
    return colors[size_t(index) % (sizeof(colors) / sizeof(colors[0]))];
}

bool exportPlot(QCustomPlot* plot, const QString& destination, QString* error)
{
    const QString suffix = QFileInfo(destination).suffix().toLower();
    // Rendered into a temporary file beside the destination, then committed durably: a failed export
    // (full disk, unwritable folder) never replaces a good file.
    const std::filesystem::path finalPath = destination.toStdString();
    const QString path = QString::fromStdString(temporaryPathBeside(finalPath).string());
    bool ok = false;
    if (suffix == QLatin1String("png")) {
        ok = plot->savePng(path, plot->width(), plot->height(), 2.0);
    } else if (suffix == QLatin1String("pdf")) {
        ok = plot->savePdf(path, plot->width(), plot->height(), QCP::epNoCosmetic, QStringLiteral("Quantscope"));
    } else if (suffix == QLatin1String("svg")) {
        QSvgGenerator generator;
        generator.setFileName(path);
        generator.setSize(plot->size());
        generator.setViewBox(QRect(QPoint(0, 0), plot->size()));
        generator.setTitle(QStringLiteral("Quantscope plot"));
        QCPPainter painter;
        ok = painter.begin(&generator);
        if (ok) {
            plot->toPainter(&painter, plot->width(), plot->height());
            ok = painter.end();
        }
    } else {
        if (error)
            *error = QObject::tr("Unknown image type '%1': use .png, .svg or .pdf").arg(suffix);
        return false;
    }
    if (ok) {
        try {
            commitTemporaryFile(path.toStdString(), finalPath);
        } catch (const Error& e) {
            if (error)
                *error = QString::fromStdString(e.what());
            return false;
        }
    } else {
        QFile::remove(path);
        if (error)
            *error = QObject::tr("Cannot write %1").arg(destination);
    }
    return ok;
}

QString exportPlotDialog(QWidget* parent, QCustomPlot* plot, const QString& suggestedName)
{
    QSettings settings;
    const QString dir = settings.value(QStringLiteral("exportDirectory")).toString();
    QString selected;
    QString path = QFileDialog::getSaveFileName(
        parent, QObject::tr("Export Plot"), QDir(dir).filePath(suggestedName + QStringLiteral(".png")),
        QObject::tr("PNG image (*.png);;SVG drawing (*.svg);;PDF document (*.pdf)"), &selected);
    if (path.isEmpty())
        return {};
    if (QFileInfo(path).suffix().isEmpty())
        path += selected.contains(QLatin1String("svg")) ? QStringLiteral(".svg")
                : selected.contains(QLatin1String("pdf")) ? QStringLiteral(".pdf")
                                                          : QStringLiteral(".png");
    settings.setValue(QStringLiteral("exportDirectory"), QFileInfo(path).absolutePath());
    QString error;
    if (!exportPlot(plot, path, &error)) {
        QMessageBox::warning(parent, QObject::tr("Export Plot"), error);
        return {};
    }
    return path;
}

QLabel* plotMessageLabel()
{
    auto* label = new QLabel;
    label->setAlignment(Qt::AlignCenter);
    label->setWordWrap(true);
    label->setStyleSheet(QStringLiteral("color: #666;"));
    return label;
}

} // namespace qs
