// SensitivityModel under Qt's model contract (QAbstractItemModelTester): fed by hand and over a real
// SensitivityStore (the model reads the store's cells, it does not copy them), one dataChanged per delivery,
// a reset on cleared(); and the view's selection interface (setSelectedTensors is silent, a click emits
// tensorsSelected).

#include "core/model/model.h"
#include "widgets/sensitivitymodel.h"
#include "widgets/sensitivitystore.h"
#include "widgets/sensitivityview.h"

#include <QAbstractItemModelTester>
#include <QBrush>
#include <QSignalSpy>
#include <QTableView>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>

using namespace qs;

namespace {

SensitivityResult cell(const char* tensor, const char* format, double sqnr, double bits = 4.5)
{
    SensitivityResult r;
    r.tensor = tensor;
    r.format = format;
    r.bitsPerWeight = bits;
    r.metrics.sqnrDb = sqnr;
    return r;
}

SensitivityResult failed(const char* tensor, const char* format)
{
    SensitivityResult r;
    r.tensor = tensor;
    r.format = format;
    r.error = "not a multiple of 256";
    return r;
}

// The cells (first row, first column, last row, last column) of each dataChanged that is not about tooltips.
QList<QList<int>> changedCells(const QSignalSpy& spy)
{
    QList<QList<int>> out;
    for (const QList<QVariant>& args : spy) {
        const auto roles = args.at(2).value<QList<int>>();
        if (roles == QList<int>{Qt::ToolTipRole})
            continue;
        const auto from = args.at(0).toModelIndex(), to = args.at(1).toModelIndex();
        out.append({from.row(), from.column(), to.row(), to.column()});
    }
    return out;
}

} // namespace

class TestSensitivityModel : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void cellsFedByHand();
    void readsTheStoresCells();
    void selectionInterface();

private:
    QTemporaryDir m_dir;
};

void TestSensitivityModel::initTestCase()
{
    QVERIFY(m_dir.isValid());
    qputenv("QUANTSCOPE_CACHE_DIR", m_dir.filePath(QStringLiteral("cache")).toLocal8Bit());
}

void TestSensitivityModel::cellsFedByHand()
{
    SensitivityModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QSignalSpy reset(&model, &QAbstractItemModel::modelReset);
    model.setFormats({QStringLiteral("Q8_0"), QStringLiteral("Q4_K")});
    model.setTensors({QStringLiteral("a"), QStringLiteral("b"), QStringLiteral("c")});
    QCOMPARE(reset.count(), 2);
    QCOMPARE(model.rowCount(), 3);
    QCOMPARE(model.columnCount(), 2);
    QCOMPARE(model.rowOf(QStringLiteral("c")), 2);
    QCOMPARE(model.rowOf(QStringLiteral("nope")), -1);
    QCOMPARE(model.headerData(1, Qt::Vertical).toString(), QStringLiteral("b"));
    QCOMPARE(model.headerData(1, Qt::Horizontal).toString(), QStringLiteral("Q4_K"));

    // One delivery, one dataChanged; the first sets the scale (20 to 35 dB), so it covers every cell. Unknown
    // names are ignored.
    QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
    model.addResults(
        {cell("a", "Q8_0", 33.0), cell("b", "Q4_K", 21.0), failed("a", "Q4_K"), cell("zzz", "Q8_0", 1.0)});
    QCOMPARE(changedCells(changed), (QList<QList<int>>{{0, 0, 2, 1}}));
    const QModelIndex a8 = model.index(0, 0);
    QCOMPARE(a8.data(SensitivityModel::SqnrRole).toDouble(), 33.0);
    QCOMPARE(a8.data(SensitivityModel::BitsPerWeightRole).toDouble(), 4.5);
    QCOMPARE(a8.data(Qt::DisplayRole).toString(), QStringLiteral("33.0"));
    QCOMPARE(a8.data(SensitivityModel::TensorNameRole).toString(), QStringLiteral("a"));
    QCOMPARE(a8.data(SensitivityModel::FormatNameRole).toString(), QStringLiteral("Q8_0"));
    QCOMPARE(a8.data(Qt::BackgroundRole).value<QBrush>().color().rgb(), model.colorFor(33.0).rgb());
    const QModelIndex na = model.index(0, 1);
    QCOMPARE(na.data(SensitivityModel::StateRole).toInt(), int(SensitivityModel::CellState::NotApplicable));
    QVERIFY(!na.data(SensitivityModel::SqnrRole).isValid());
    QCOMPARE(na.data(Qt::DisplayRole).toString(), QStringLiteral("n/a"));
    QVERIFY(na.data(Qt::ToolTipRole).toString().contains(QStringLiteral("not a multiple of 256")));
    const QModelIndex pending = model.index(2, 0);
    QCOMPARE(pending.data(SensitivityModel::StateRole).toInt(), int(SensitivityModel::CellState::Pending));
    QCOMPARE(pending.data(Qt::DisplayRole).toString(), QString());
    QVERIFY(pending.data(Qt::ToolTipRole).toString().contains(QStringLiteral("not computed")));
    model.setRunning(true);
    QVERIFY(pending.data(Qt::ToolTipRole).toString().contains(QStringLiteral("computing")));
    QCOMPARE(model.summary().ok, size_t(2));
    QCOMPARE(model.summary().notApplicable, size_t(1));
    QCOMPARE(model.colorRange(), std::make_pair(20.0, 35.0));

    // Cells inside the scale: only the rectangle they span changes. One outside it moves the scale: every
    // cell.
    changed.clear();
    model.addResults({cell("c", "Q4_K", 30.0), cell("b", "Q8_0", 28.0)});
    QCOMPARE(changedCells(changed), (QList<QList<int>>{{1, 0, 2, 1}}));
    changed.clear();
    model.addResults({cell("c", "Q8_0", 47.0)});
    QCOMPARE(changedCells(changed), (QList<QList<int>>{{0, 0, 2, 1}}));
    QCOMPARE(model.colorRange(), std::make_pair(20.0, 50.0));
    // A cell delivered again replaces the old one; the counts and the scale are redone from scratch.
    model.addResults({cell("c", "Q8_0", 24.0)});
    QCOMPARE(model.colorRange(), std::make_pair(20.0, 35.0));
    QCOMPARE(model.summary().ok, size_t(5));
    QCOMPARE(model.summary().maxSqnr, 33.0);

    model.clear();
    QCOMPARE(model.rowCount(), 3);
    QVERIFY(!model.hasResults());
    QVERIFY(!model.result(0, 0));
}

void TestSensitivityModel::readsTheStoresCells()
{
    const auto sample = openModel(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
    SensitivityStore store;
    store.setDeliveryInterval(5); // many small deliveries
    SensitivityModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.setStore(&store);
    QCOMPARE(model.formats(), store.formats());
    QCOMPARE(model.rowCount(), 0);

    QSignalSpy reset(&model, &QAbstractItemModel::modelReset);
    store.setModel(sample);
    QCOMPARE(reset.count(), 1);
    QCOMPARE(model.tensors(), store.tensors());
    QCOMPARE(model.rowCount(), 37);

    QSignalSpy delivered(&store, &SensitivityStore::resultsReady);
    QSignalSpy finished(&store, &SensitivityStore::finished);
    QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
    store.compute();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 120000);
    QVERIFY(delivered.count() > 0);
    QCOMPARE(changedCells(changed).size(), delivered.count()); // batched: one signal per delivery

    // Every cell is the store's own object, not a copy.
    size_t cells = 0;
    for (int row = 0; row < model.rowCount(); ++row)
        for (int column = 0; column < model.columnCount(); ++column) {
            const SensitivityResult* r = model.result(row, column);
            QVERIFY(r);
            QCOMPARE(r, store.result(model.tensors()[row], model.formats()[column]));
            ++cells;
        }
    QCOMPARE(cells, store.resultCount());
    QCOMPARE(model.summary().ok + model.summary().notApplicable, store.resultCount());

    // A model change clears the store, and the model with it.
    store.setModel(sample);
    QCOMPARE(reset.count(), 2);
    QVERIFY(!model.hasResults());
    QVERIFY(!model.result(0, 0));
}

void TestSensitivityModel::selectionInterface()
{
    SensitivityView view;
    view.resize(900, 600);
    view.setFormats({QStringLiteral("BF16"), QStringLiteral("Q8_0")});
    view.setTensors({QStringLiteral("a.weight"), QStringLiteral("b.weight"), QStringLiteral("c.weight")});
    view.addResults({cell("a.weight", "BF16", 48.0, 16), cell("b.weight", "BF16", 47.0, 16)});
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    QSignalSpy selected(&view, &SensitivityView::tensorsSelected);

    // From outside (the window, a selection hub): rows selected, nothing emitted.
    view.setSelectedTensors({QStringLiteral("c.weight"), QStringLiteral("a.weight")});
    QCOMPARE(selected.count(), 0);
    QItemSelectionModel* selection = view.table()->selectionModel();
    QVERIFY(selection->isRowSelected(0, {}) && selection->isRowSelected(2, {}));
    QVERIFY(!selection->isRowSelected(1, {}));
    // The selection outlives a new layout.
    view.setFormats({QStringLiteral("BF16"), QStringLiteral("Q8_0"), QStringLiteral("Q4_K")});
    QVERIFY(selection->isRowSelected(0, {}) && selection->isRowSelected(2, {}));
    QCOMPARE(selected.count(), 0);

    // By the user: one signal with the clicked tensor.
    QTest::mouseClick(view.heatmap(), Qt::LeftButton, {}, view.cellRect(1, 1).center());
    QCOMPARE(selected.count(), 1);
    QCOMPARE(selected.at(0).at(0).toStringList(), QStringList{QStringLiteral("b.weight")});
    QCOMPARE(view.selectedTensors(), QStringList{QStringLiteral("b.weight")});
    QVERIFY(selection->isRowSelected(1, {}) && !selection->isRowSelected(0, {}));
}

QTEST_MAIN(TestSensitivityModel)
#include "tst_sensitivitymodel.moc"
