// SensitivityView: fed hand-made results, checks the painted cells (colour scale, n/a hatching, text),
// the tooltip, the bar chart's values, the (tensor, format) reported by a click and the SQNR-vs-bits curves.

#include "widgets/sensitivityview.h"

#include <QPushButton>
#include <QSignalSpy>
#include <QtTest>
#include <cmath>
#include <qcustomplot.h>

using namespace qs;

namespace {

SensitivityResult cell(const char* tensor, const char* format, double sqnr, double bits, uint64_t bytes)
{
    SensitivityResult r;
    r.tensor = tensor;
    r.format = format;
    r.rows = 8;
    r.cols = 256;
    r.bytes = bytes;
    r.bitsPerWeight = bits;
    r.metrics.sqnrDb = sqnr;
    r.metrics.relMse = std::pow(10.0, -sqnr / 10.0);
    r.metrics.cosine = 0.99871;
    return r;
}

SensitivityResult failed(const char* tensor, const char* format, const char* error)
{
    SensitivityResult r;
    r.tensor = tensor;
    r.format = format;
    r.error = error;
    return r;
}

} // namespace

class TestSensitivityView : public QObject {
    Q_OBJECT

private slots:
    void cellsColoursAndText();
    void clickReportsTensorAndFormat();
    void barsFollowChosenFormat();
    void barLabelsThinToFit();
    void curvesPerRoleAndSelection();
};

void TestSensitivityView::cellsColoursAndText()
{
    SensitivityView view;
    view.resize(900, 600);
    view.setFormats({QStringLiteral("BF16"), QStringLiteral("Q8_0"), QStringLiteral("Q4_K")});
    view.setTensors({QStringLiteral("a.weight"), QStringLiteral("b.weight"), QStringLiteral("c.weight")});
    view.addResults({cell("a.weight", "BF16", 47.9, 16, 4096), cell("a.weight", "Q8_0", 31.24, 8.5, 2176),
                     cell("b.weight", "BF16", 30.0, 16, 4096), cell("a.weight", "Q4_K", 12.3, 4.5, 1152),
                     failed("b.weight", "Q4_K", "row length 100 is not a multiple of 256"),
                     cell("unknown.weight", "BF16", 5.0, 16, 10)}); // not a row: ignored
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));

    // The scale spans the computed cells rounded outwards to 5 dB: 12.3 .. 47.9 -> 10 .. 50.
    QCOMPARE(view.colorRange(), std::make_pair(10.0, 50.0));
    QCOMPARE(view.colorFor(10.0).rgb(), QColor(0xd7, 0x30, 0x27).rgb()); // red: worst
    QCOMPARE(view.colorFor(30.0).rgb(), QColor(0xfe, 0xe0, 0x90).rgb()); // middle stop
    QCOMPARE(view.colorFor(50.0).rgb(), QColor(0x45, 0x75, 0xb4).rgb()); // blue: best
    QCOMPARE(view.colorFor(-3.0).rgb(), QColor(0xd7, 0x30, 0x27).rgb()); // clamped

    QCOMPARE(view.cellText(0, 0), QStringLiteral("47.9"));
    QCOMPARE(view.cellText(0, 1), QStringLiteral("31.2"));
    QCOMPARE(view.cellText(1, 2), QStringLiteral("n/a"));
    QCOMPARE(view.cellText(2, 0), QString()); // not computed yet
    QVERIFY(view.result(1, 2) && !view.result(1, 2)->ok());
    QVERIFY(!view.result(2, 1));

    // What is painted: the cell's corner (clear of the text) has the scale's colour; n/a is grey.
    const QImage image = view.heatmap()->grab().toImage();
    auto corner = [&](int row, int column) {
        const QRect r = view.cellRect(row, column);
        return QColor(image.pixel(r.left() + 3, r.top() + 3));
    };
    QCOMPARE(corner(1, 0).rgb(), view.colorFor(30.0).rgb());
    QCOMPARE(corner(0, 2).rgb(), view.colorFor(12.3).rgb());
    QCOMPARE(corner(0, 0).rgb(), view.colorFor(47.9).rgb());
    const QColor na = corner(1, 2);
    QCOMPARE(na.red(), na.green()); // grey (hatch or background)
    QCOMPARE(na.green(), na.blue());
    QVERIFY(na.red() >= 190 && na.red() <= 240);

    const QString tip = view.cellToolTip(0, 1);
    QVERIFY2(tip.contains(QStringLiteral("a.weight")) && tip.contains(QStringLiteral("Q8_0")),
             qPrintable(tip));
    QVERIFY2(tip.contains(QStringLiteral("8.500")), qPrintable(tip)); // bits per weight
    QVERIFY2(tip.contains(QStringLiteral("2,176")) || tip.contains(QStringLiteral("2176")), qPrintable(tip));
    QVERIFY2(tip.contains(QStringLiteral("31.24 dB")), qPrintable(tip));
    QVERIFY2(tip.contains(QStringLiteral("0.998710")), qPrintable(tip));  // cosine
    QVERIFY2(tip.contains(QStringLiteral("0.0007516")), qPrintable(tip)); // rel MSE 10^-3.124
    QVERIFY(view.cellToolTip(1, 2).contains(QStringLiteral("not a multiple of 256")));
    QVERIFY(view.cellToolTip(2, 0).contains(QStringLiteral("not computed")));
}

void TestSensitivityView::clickReportsTensorAndFormat()
{
    SensitivityView view;
    view.resize(900, 600);
    view.setFormats({QStringLiteral("BF16"), QStringLiteral("Q8_0"), QStringLiteral("Q4_K")});
    view.setTensors({QStringLiteral("a.weight"), QStringLiteral("b.weight")});
    view.addResults({cell("b.weight", "Q4_K", 20.0, 4.5, 1152)});
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    QSignalSpy clicked(&view, &SensitivityView::cellClicked);
    QTest::mouseClick(view.heatmap(), Qt::LeftButton, {}, view.cellRect(1, 2).center());
    QCOMPARE(clicked.count(), 1);
    QCOMPARE(clicked.at(0).at(0).toString(), QStringLiteral("b.weight"));
    QCOMPARE(clicked.at(0).at(1).toString(), QStringLiteral("Q4_K"));
    // Pending cells are clickable too (the histogram and grid are there already).
    QTest::mouseClick(view.heatmap(), Qt::LeftButton, {}, view.cellRect(0, 1).center());
    QCOMPARE(clicked.count(), 2);
    QCOMPARE(clicked.at(1).at(0).toString(), QStringLiteral("a.weight"));
    QCOMPARE(clicked.at(1).at(1).toString(), QStringLiteral("Q8_0"));
    // The name column and the header are not cells.
    QTest::mouseClick(view.heatmap(), Qt::LeftButton, {}, QPoint(5, view.cellRect(0, 0).center().y()));
    QTest::mouseClick(view.heatmap(), Qt::LeftButton, {}, QPoint(view.cellRect(0, 0).center().x(), 3));
    QCOMPARE(clicked.count(), 2);

    QSignalSpy compute(&view, &SensitivityView::computeRequested);
    QSignalSpy cancel(&view, &SensitivityView::cancelRequested);
    view.computeButton()->click();
    view.setRunning(true);
    view.computeButton()->click();
    QCOMPARE(compute.count(), 1);
    QCOMPARE(cancel.count(), 1);
}

void TestSensitivityView::barsFollowChosenFormat()
{
    SensitivityView view;
    view.setFormats({QStringLiteral("BF16"), QStringLiteral("Q8_0"), QStringLiteral("Q4_K")});
    view.setTensors({QStringLiteral("a.weight"), QStringLiteral("b.weight"), QStringLiteral("c.weight")});
    view.addResults({cell("a.weight", "BF16", 50, 16, 1), cell("b.weight", "BF16", 51, 16, 1),
                     cell("a.weight", "Q8_0", 35, 8.5, 1), cell("b.weight", "Q8_0", 36, 8.5, 1),
                     cell("a.weight", "Q4_K", 20, 4.5, 1), failed("b.weight", "Q4_K", "no")});
    // Automatic: the format covering the most tensors, then the fewest bits -> Q8_0.
    QCOMPARE(view.barFormat(), QStringLiteral("Q8_0"));
    auto values = view.barValues();
    QCOMPARE(values.size(), size_t(3));
    QCOMPARE(values[0], 35.0);
    QCOMPARE(values[1], 36.0);
    QVERIFY(std::isnan(values[2]));
    view.setBarFormat(QStringLiteral("Q4_K"));
    values = view.barValues();
    QCOMPARE(values[0], 20.0);
    QVERIFY(std::isnan(values[1])); // n/a
    // An explicit choice sticks while more results arrive.
    view.addResults({cell("c.weight", "BF16", 49, 16, 1)});
    QCOMPARE(view.barFormat(), QStringLiteral("Q4_K"));

    // Clicking the second bar is clicking b.weight's cell of the bar format.
    view.resize(900, 700);
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    QCustomPlot* plot = view.barPlot();
    plot->replot();
    QSignalSpy clicked(&view, &SensitivityView::cellClicked);
    const QPoint bar(int(plot->xAxis->coordToPixel(1.0)), int(plot->yAxis->coordToPixel(5.0)));
    QTest::mouseClick(plot, Qt::LeftButton, {}, bar);
    QCOMPARE(clicked.count(), 1);
    QCOMPARE(clicked.at(0).at(0).toString(), QStringLiteral("b.weight"));
    QCOMPARE(clicked.at(0).at(1).toString(), QStringLiteral("Q4_K"));
}

void TestSensitivityView::barLabelsThinToFit()
{
    // Issue 13 #6: 114 tensor names under a narrow chart smeared together; only as many as fit are written.
    SensitivityView view;
    view.setFormats({QStringLiteral("Q8_0")});
    QStringList tensors;
    std::vector<SensitivityResult> results;
    std::vector<std::string> names;
    for (int i = 0; i < 114; ++i)
        names.push_back("blk." + std::to_string(i / 7) + ".t" + std::to_string(i % 7) + ".weight");
    for (const auto& n : names) {
        tensors << QString::fromStdString(n);
        results.push_back(cell(n.c_str(), "Q8_0", 35, 8.5, 1));
    }
    view.setTensors(tensors);
    view.addResults(results);
    view.resize(700, 600);
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    QCustomPlot* plot = view.barPlot();
    // Labels drawn at most one per label height of the plot's width: the ticks never overlap.
    QTRY_VERIFY(view.barLabelStep() > 1);
    auto ticker = plot->xAxis->ticker().dynamicCast<QCPAxisTickerText>();
    QVERIFY(ticker);
    const int shown = int(ticker->ticks().size());
    const double lineHeight = QFontMetricsF(plot->xAxis->tickLabelFont()).height();
    QVERIFY2(shown * lineHeight <= plot->width(), qPrintable(QStringLiteral("%1 labels").arg(shown)));
    QCOMPARE(shown, (114 + view.barLabelStep() - 1) / view.barLabelStep());
    // A selected tensor is always named.
    view.setSelectedTensors({QStringLiteral("blk.15.t4.weight")});
    QTRY_VERIFY(plot->xAxis->ticker().dynamicCast<QCPAxisTickerText>()->ticks().contains(109.0));
    // Wide enough: every name.
    view.resize(3000, 600);
    QTRY_COMPARE(view.barLabelStep(), 1);
}

void TestSensitivityView::curvesPerRoleAndSelection()
{
    SensitivityView view;
    // Columns deliberately not in bits order: the curves sort their points by bits per weight.
    view.setFormats({QStringLiteral("BF16"), QStringLiteral("Q8_0"), QStringLiteral("Q4_K")});
    view.setTensors({QStringLiteral("blk.0.attn_q.weight"), QStringLiteral("blk.1.attn_q.weight"),
                     QStringLiteral("blk.0.ffn_down.weight")});
    view.addResults(
        {cell("blk.0.attn_q.weight", "BF16", 48, 16, 1), cell("blk.0.attn_q.weight", "Q8_0", 35, 8.5, 1),
         cell("blk.0.attn_q.weight", "Q4_K", 20, 4.5, 1), cell("blk.1.attn_q.weight", "BF16", 50, 16, 1),
         cell("blk.1.attn_q.weight", "Q8_0", 37, 8.5, 1), failed("blk.1.attn_q.weight", "Q4_K", "no"),
         cell("blk.0.ffn_down.weight", "BF16", INFINITY, 16, 1), // lossless: no point
         cell("blk.0.ffn_down.weight", "Q8_0", 33, 8.5, 1),
         cell("blk.0.ffn_down.weight", "Q4_K", 18, 4.5, 1)});
    using V = std::vector<double>;
    auto curves = view.curves();
    QCOMPARE(curves.size(), size_t(2));
    // attn_q: Q4_K only blk.0 (blk.1 is n/a) = 20; Q8_0 (35+37)/2 = 36; BF16 (48+50)/2 = 49.
    QCOMPARE(curves[0].name, QStringLiteral("attn_q"));
    QVERIFY(!curves[0].tensor);
    QCOMPARE(curves[0].bits, (V{4.5, 8.5, 16}));
    QCOMPARE(curves[0].sqnrDb, (V{20, 36, 49}));
    // mlp_down: BF16 is infinite and skipped.
    QCOMPARE(curves[1].name, QStringLiteral("mlp_down"));
    QCOMPARE(curves[1].bits, (V{4.5, 8.5}));
    QCOMPARE(curves[1].sqnrDb, (V{18, 33}));

    // Selecting a tensor adds its own curve on top, thicker, named after it.
    view.setHighlighted({QStringLiteral("blk.1.attn_q.weight")});
    curves = view.curves();
    QCOMPARE(curves.size(), size_t(3));
    QVERIFY(curves[2].tensor);
    QCOMPARE(curves[2].name, QStringLiteral("blk.1.attn_q.weight"));
    QCOMPARE(curves[2].bits, (V{8.5, 16}));
    QCOMPARE(curves[2].sqnrDb, (V{37, 50}));

    // What the plot holds: one graph per curve with those points, the tensor's drawn last and thicker.
    QCustomPlot* plot = view.curvePlot();
    QCOMPARE(plot->graphCount(), 3);
    auto points = [plot](int g) {
        std::vector<std::pair<double, double>> out;
        for (auto it = plot->graph(g)->data()->constBegin(); it != plot->graph(g)->data()->constEnd(); ++it)
            out.emplace_back(it->key, it->value);
        return out;
    };
    using P = std::vector<std::pair<double, double>>;
    QCOMPARE(points(0), (P{{4.5, 20}, {8.5, 36}, {16, 49}}));
    QCOMPARE(points(1), (P{{4.5, 18}, {8.5, 33}}));
    QCOMPARE(points(2), (P{{8.5, 37}, {16, 50}}));
    QCOMPARE(plot->graph(0)->name(), QStringLiteral("attn_q"));
    QCOMPARE(plot->graph(2)->name(), QStringLiteral("blk.1.attn_q"));
    QVERIFY(plot->graph(2)->pen().widthF() > 2 * plot->graph(0)->pen().widthF());
    QVERIFY(plot->graph(0)->scatterStyle().shape() != QCPScatterStyle::ssNone);
    QCOMPARE(plot->graph(0)->lineStyle(), QCPGraph::lsLine);
    QVERIFY(plot->xAxis->range().contains(4.5) && plot->xAxis->range().contains(16));
    QVERIFY(plot->yAxis->range().contains(18) && plot->yAxis->range().contains(50));

    // Deselecting drops the tensor's curve; clearing drops everything.
    view.setHighlighted({});
    QCOMPARE(plot->graphCount(), 2);
    view.clear();
    QCOMPARE(plot->graphCount(), 0);
    QVERIFY(view.curves().empty());
}

QTEST_MAIN(TestSensitivityView)
#include "tst_sensitivityview.moc"
