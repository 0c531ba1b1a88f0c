// The analysis views over real statistics: a small safetensors file with known values is opened through
// the real loader and analysed by the real engine; the table, its filters and CSV, the histogram
// (bins, readout, quantization grid), the per-channel view (outliers, sorting), the depth chart (click
// selects a tensor) and plot export are checked against values computed here.
#include "core/model/model.h"
#include "core/stats/stats.h"
#include "core/util/atomicfile.h"
#include "widgets/channelview.h"
#include "widgets/depthview.h"
#include "widgets/histogramview.h"
#include "widgets/plotutil.h"
#include "widgets/safetensors_writer.h"
#include "widgets/statsstore.h"
#include "widgets/statstablemodel.h"
#include "widgets/statstableview.h"

#include <QAbstractItemModelTester>
#include <QBuffer>
#include <QDir>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>
#include <qcustomplot.h>

#include <algorithm>
#include <cmath>

using namespace qs;

namespace {

// "a": 6 rows × 16, row 3 scaled ×20 (an outlier channel); "b": 4 × 16 ramp; "c": 16 values.
std::vector<qstest::F32Tensor> makeTensors()
{
    qstest::F32Tensor a{"layer.a.weight", {6, 16}, {}};
    for (int r = 0; r < 6; ++r)
        for (int c = 0; c < 16; ++c)
            a.values.push_back(float((c % 7) - 3) * 0.01f * (r == 3 ? 20.0f : 1.0f) + 0.001f * float(r));
    qstest::F32Tensor b{"layer.b.weight", {4, 16}, {}};
    for (int i = 0; i < 64; ++i)
        b.values.push_back(float(i) / 64.0f - 0.5f);
    qstest::F32Tensor c{"layer.c.bias", {16}, {}};
    for (int i = 0; i < 16; ++i)
        c.values.push_back(i % 2 ? 1.0f : -1.0f);
    return {a, b, c};
}

struct Reference {
    double min, max, mean, absmax;
};
Reference reference(const std::vector<float>& v)
{
    Reference r{v[0], v[0], 0, 0};
    for (float x : v) {
        r.min = std::min(r.min, double(x));
        r.max = std::max(r.max, double(x));
        r.mean += x;
        r.absmax = std::max(r.absmax, std::fabs(double(x)));
    }
    r.mean /= double(v.size());
    return r;
}

} // namespace

class TestStatsViews : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void tableAndCsv();
    void filters();
    void histogram();
    void channels();
    void depthClickSelectsTensor();
    void exportFormats();
    void failedCsvExportKeepsFile();

private:
    QTemporaryDir m_dir;
    std::shared_ptr<Model> m_model;
    std::vector<qstest::F32Tensor> m_tensors;
    StatsStore* m_store = nullptr;
};

void TestStatsViews::initTestCase()
{
    QVERIFY(m_dir.isValid());
    qputenv("QUANTSCOPE_CACHE_DIR", m_dir.filePath(QStringLiteral("cache")).toLocal8Bit());
    m_tensors = makeTensors();
    const QString path = m_dir.filePath(QStringLiteral("model.safetensors"));
    QVERIFY(qstest::writeSafetensorsF32(path, m_tensors));
    m_model = openModel(path.toStdString());
    QCOMPARE(m_model->tensors().size(), size_t(3));
    m_store = new StatsStore(this);
    m_store->setDeliveryInterval(10);
    m_store->setModel(m_model);
    QSignalSpy finished(m_store, &StatsStore::finished);
    QSignalSpy ready(m_store, &StatsStore::tensorsReady);
    m_store->analyze();
    QVERIFY(m_store->isRunning());
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 20000);
    QCOMPARE(finished.at(0).at(0).toBool(), false);
    QVERIFY(ready.count() >= 1);
    QCOMPARE(m_store->doneCount(), size_t(3));
    for (size_t i = 0; i < 3; ++i)
        QVERIFY(m_store->stats(i) && m_store->stats(i)->error.empty());
}

void TestStatsViews::tableAndCsv()
{
    StatsTableModel table(m_store);
    QAbstractItemModelTester tester(&table, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QCOMPARE(table.rowCount(), 3);
    QCOMPARE(table.columnCount(), int(StatsTableModel::ColumnCount));
    for (int row = 0; row < 3; ++row) {
        const Reference ref = reference(m_tensors[size_t(row)].values);
        const QModelIndex name = table.index(row, StatsTableModel::NameColumn);
        QCOMPARE(name.data().toString(), QString::fromStdString(m_tensors[size_t(row)].name));
        QCOMPARE(table.index(row, StatsTableModel::MinColumn).data(StatsTableModel::SortRole).toDouble(), ref.min);
        QCOMPARE(table.index(row, StatsTableModel::MaxColumn).data(StatsTableModel::SortRole).toDouble(), ref.max);
        QCOMPARE(table.index(row, StatsTableModel::AbsmaxColumn).data(StatsTableModel::SortRole).toDouble(), ref.absmax);
        QVERIFY(std::fabs(table.index(row, StatsTableModel::MeanColumn).data(StatsTableModel::SortRole).toDouble() -
                          ref.mean) < 1e-7);
        QCOMPARE(table.index(row, StatsTableModel::ElementsColumn).data(StatsTableModel::ExportRole).toString(),
                 QString::number(m_tensors[size_t(row)].values.size()));
    }
    // "c" is ±1 alternating: zero beyond 3σ, kurtosis -2 exactly (two-point distribution).
    QCOMPARE(table.index(2, StatsTableModel::KurtosisColumn).data(StatsTableModel::SortRole).toDouble(), -2.0);
    QCOMPARE(table.index(2, StatsTableModel::Beyond3Column).data(StatsTableModel::SortRole).toDouble(), 0.0);
    // Channel ratio of "a": row 3's absmax over the median row absmax.
    std::vector<double> rowAbs;
    for (int r = 0; r < 6; ++r) {
        double m = 0;
        for (int c = 0; c < 16; ++c)
            m = std::max(m, std::fabs(double(m_tensors[0].values[size_t(r * 16 + c)])));
        rowAbs.push_back(m);
    }
    std::vector<double> sorted = rowAbs;
    std::sort(sorted.begin(), sorted.end());
    const double ratio = sorted[5] / sorted[3]; // median of 6 as nth_element(n/2) takes the upper middle
    QVERIFY(std::fabs(table.index(0, StatsTableModel::ChannelRatioColumn).data(StatsTableModel::SortRole).toDouble() -
                      ratio) < 1e-5);

    QBuffer buffer;
    buffer.open(QIODevice::WriteOnly);
    QVERIFY(writeCsv(table, &buffer));
    const QStringList lines = QString::fromUtf8(buffer.data()).split(QStringLiteral("\r\n"), Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), 4);
    const QStringList header = lines[0].split(QLatin1Char(','));
    QCOMPARE(header.size(), int(StatsTableModel::ColumnCount));
    QCOMPARE(header[StatsTableModel::NameColumn], QStringLiteral("name"));
    QCOMPARE(header[StatsTableModel::KurtosisColumn], QStringLiteral("kurtosis"));
    const QStringList b = lines[2].split(QLatin1Char(','));
    QCOMPARE(b[StatsTableModel::NameColumn], QStringLiteral("layer.b.weight"));
    QCOMPARE(b[StatsTableModel::MinColumn].toDouble(), -0.5);
    QCOMPARE(b[StatsTableModel::MaxColumn].toDouble(), double(63.0f / 64.0f - 0.5f));
    QCOMPARE(b[StatsTableModel::ElementsColumn], QStringLiteral("64"));
}

void TestStatsViews::filters()
{
    StatsTableModel table(m_store);
    StatsFilterProxy proxy;
    proxy.setSourceModel(&table);
    QAbstractItemModelTester tester(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QCOMPARE(proxy.rowCount(), 3);
    QVERIFY(proxy.setNamePattern(QStringLiteral("\\.weight$")));
    QCOMPARE(proxy.rowCount(), 2);
    QVERIFY(!proxy.setNamePattern(QStringLiteral("a.weight(")));
    QCOMPARE(proxy.rowCount(), 0);
    proxy.setNamePattern(QString());
    const int roleOfC = int(m_model->tensors()[2].role.role);
    proxy.setRole(roleOfC);
    int expected = 0;
    for (const auto& t : m_model->tensors())
        expected += int(t.role.role) == roleOfC;
    QCOMPARE(proxy.rowCount(), expected);
    proxy.setRole(std::nullopt);
    proxy.setBlockRange(0, 1000); // none of these names has a block
    int inBlocks = 0;
    for (const auto& t : m_model->tensors())
        inBlocks += t.role.block >= 0;
    QCOMPARE(proxy.rowCount(), inBlocks);
    proxy.setBlockRange(-1, -1);
    // Sorting by absmax descending puts "c" (absmax 1) first.
    proxy.sort(StatsTableModel::AbsmaxColumn, Qt::DescendingOrder);
    QCOMPARE(proxy.index(0, 0).data().toString(), QStringLiteral("layer.c.bias"));
}

void TestStatsViews::histogram()
{
    HistogramView view;
    view.resize(700, 400);
    view.setModel(m_model);
    auto b = m_store->shared(1);
    view.setSeries({{QStringLiteral("b"), b, 1}});
    view.setBins(16);
    QCOMPARE(view.binned().size(), size_t(1));
    const BinnedHistogram& h = view.binned().front();
    QCOMPARE(h.counts.size(), size_t(16));
    // 64 evenly spaced values over [-0.5, 0.484375] in 16 equal bins: 4 per bin.
    for (uint64_t c : h.counts)
        QCOMPARE(c, uint64_t(4));
    QCOMPARE(h.edges.front(), -0.5);
    QVERIFY(view.readoutAt(0.0).contains(QStringLiteral("b: 4 (6.25%)")));

    // Symmetric log uses the standard deviation as threshold.
    view.setSymlogX(true);
    QCOMPARE(view.symlogThreshold(), b->std);
    QVERIFY(view.binned().front().symlog);
    view.setLogY(true);
    view.setNormalized(true);
    QCOMPARE(view.plot()->yAxis->scaleType(), QCPAxis::stLogarithmic);

    // Overlay with legend.
    view.setSymlogX(false);
    view.setSeries({{QStringLiteral("a"), m_store->shared(0), 0}, {QStringLiteral("b"), b, 1}});
    QCOMPARE(view.plot()->graphCount(), 2);
    QCOMPARE(view.plot()->legend->itemCount(), 2);
    // Each series' counts are exact for its own edges ("a" holds F32 values off the bfloat16 keys), in
    // both x scales and at several bin counts.
    const auto tensors = makeTensors();
    for (int bins : {16, 100, 700}) {
        view.setBins(bins);
        for (bool symlog : {false, true}) {
            view.setSymlogX(symlog);
            QCOMPARE(view.binned().size(), size_t(2));
            for (size_t t = 0; t < 2; ++t) {
                const BinnedHistogram& h = view.binned()[t];
                std::vector<uint64_t> direct(h.counts.size(), 0);
                uint64_t outside = 0;
                for (float v : tensors[t].values) {
                    const auto it = std::upper_bound(h.edges.begin(), h.edges.end(), double(v));
                    if (v < h.edges.front() || v > h.edges.back())
                        ++outside;
                    else
                        ++direct[std::min(size_t(it - h.edges.begin()) - 1, h.counts.size() - 1)];
                }
                QCOMPARE(h.counts, direct);
                QCOMPARE(h.below + h.above, outside);
            }
        }
    }
    view.setBins(16);
    view.setSymlogX(false);

    // Grid of a per-row INT4 format on the typical row of "a": 16 levels spanning that row.
    view.setSeries({{QStringLiteral("a"), m_store->shared(0), 0}});
    view.setGridFormat(QStringLiteral("INT4-g128-asym"));
    QVERIFY2(!view.gridLevels().empty(), qPrintable(view.gridDescription()));
    QVERIFY(view.gridLevels().size() <= 16);
    QVERIFY(view.gridDescription().contains(QStringLiteral("INT4-g128-asym")));
    view.setGridFormat(QString());
    QVERIFY(view.gridLevels().empty());
}

void TestStatsViews::channels()
{
    ChannelView view;
    view.resize(600, 300);
    view.setTensor(QStringLiteral("layer.a.weight"), m_store->shared(0));
    QCOMPARE(view.outliers(), std::vector<size_t>{3});
    QCOMPARE(view.order().size(), size_t(6));
    QCOMPARE(view.order().front(), size_t(0));
    view.setSorted(true);
    QCOMPARE(view.order().front(), size_t(3));
    QVERIFY(view.summaryText().contains(QStringLiteral("1 outlier")));
    QVERIFY(!view.summaryText().contains(QStringLiteral("selected")));
    // Several tensors selected: the view says it shows the first (issue 13).
    view.setTensor(QStringLiteral("layer.a.weight"), m_store->shared(0), QStringLiteral("the first of 3 selected tensors"));
    QVERIFY(view.summaryText().contains(QStringLiteral("the first of 3 selected tensors")));
    view.setOutlierFactor(1000);
    QVERIFY(view.outliers().empty());
    // A 1-D tensor has one channel: a message instead of a plot.
    view.setTensor(QStringLiteral("layer.c.bias"), m_store->shared(2));
    QVERIFY(view.order().empty());
}

void TestStatsViews::depthClickSelectsTensor()
{
    DepthView view(m_store);
    view.resize(700, 400);
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    view.setStatistic(QStringLiteral("absmax"));
    QVERIFY(view.seriesCount() >= 1);
    QSignalSpy activated(&view, &DepthView::tensorActivated);
    QCustomPlot* plot = view.plot();
    plot->replot();
    const auto data = plot->graph(0)->data();
    QVERIFY(data->size() >= 1);
    const auto point = data->at(0);
    const QPoint pixel(int(plot->xAxis->coordToPixel(point->key)), int(plot->yAxis->coordToPixel(point->value)));
    QTest::mouseClick(plot, Qt::LeftButton, Qt::NoModifier, pixel);
    QCOMPARE(activated.count(), 1);
    QCOMPARE(activated.at(0).at(0).toString(), view.tensorAt(0, 0));
    // Its value is that tensor's absmax.
    const QString name = view.tensorAt(0, 0);
    QCOMPARE(point->value, m_store->stats(name)->absmax);
}

void TestStatsViews::exportFormats()
{
    HistogramView view;
    view.resize(640, 360);
    view.setSeries({{QStringLiteral("b"), m_store->shared(1), 1}});
    const QString png = m_dir.filePath(QStringLiteral("h.png"));
    const QString svg = m_dir.filePath(QStringLiteral("h.svg"));
    const QString pdf = m_dir.filePath(QStringLiteral("h.pdf"));
    QVERIFY(exportPlot(view.plot(), png));
    QVERIFY(exportPlot(view.plot(), svg));
    QVERIFY(exportPlot(view.plot(), pdf));
    QString error;
    QVERIFY(!exportPlot(view.plot(), m_dir.filePath(QStringLiteral("h.bmpx")), &error));
    QVERIFY(error.contains(QStringLiteral("bmpx")));
    QImage image(png);
    QVERIFY(!image.isNull());
    QVERIFY(image.width() >= 640);
    QFile s(svg);
    QVERIFY(s.open(QIODevice::ReadOnly));
    const QByteArray svgText = s.readAll();
    QVERIFY(svgText.contains("<svg"));
    QVERIFY(svgText.contains("<path") || svgText.contains("<polyline"));
    QFile p(pdf);
    QVERIFY(p.open(QIODevice::ReadOnly));
    QVERIFY(p.read(5) == "%PDF-");
}

void TestStatsViews::failedCsvExportKeepsFile()
{
    // Issue 14: the CSV export goes through the atomic writer, so a disk that fills up mid-write (injected
    // ENOSPC) fails the export and leaves the previous file whole, with no temporary file beside it.
    StatsTableView view(m_store);
    const QString csv = m_dir.filePath(QStringLiteral("stats.csv"));
    QVERIFY(view.exportCsv(csv));
    auto read = [&csv] {
        QFile f(csv);
        return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
    };
    const QByteArray good = read();
    QVERIFY(good.startsWith("name,"));
    QVERIFY(good.size() > 64);
    AtomicFile::setFailAfterBytesForTesting(64);
    const bool exported = view.exportCsv(csv);
    AtomicFile::setFailAfterBytesForTesting(0);
    QVERIFY(!exported);
    QCOMPARE(read(), good);
    QCOMPARE(QDir(m_dir.path()).entryList({QStringLiteral("*stats.csv*")}, QDir::Files | QDir::Hidden),
             QStringList{QStringLiteral("stats.csv")});
}

QTEST_MAIN(TestStatsViews)
#include "tst_statsviews.moc"
