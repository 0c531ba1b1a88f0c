// The per-tensor quantize result table: what each column shows, the raw sort values (a copied tensor sorts
// above every measured SQNR), and sorting through a proxy as the dialog does.
#include "widgets/quantizeresultmodel.h"

#include <QAbstractItemModelTester>
#include <QSortFilterProxyModel>
#include <QTest>
#include <limits>

using namespace qs;

class TestQuantizeResultModel : public QObject {
    Q_OBJECT

private slots:
    void showsAndSorts()
    {
        QuantizeResultModel model;
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        QCOMPARE(model.rowCount(), 0);
        std::vector<QuantizedTensor> tensors(3);
        tensors[0] = {"blk.0.attn_q.weight", "Q4_K", 2304, false, 21.456, 4096};
        tensors[1] = {"output_norm.weight", "F32", 256, true, std::numeric_limits<double>::infinity(), 0};
        tensors[2] = {"output.weight", "Q8_0", 34816, false, 45.1, 32768};
        model.setTensors(tensors);
        QCOMPARE(model.rowCount(), 3);
        QCOMPARE(model.columnCount(), int(QuantizeResultModel::ColumnCount));
        QCOMPARE(model.index(0, QuantizeResultModel::NameColumn).data().toString(), QStringLiteral("blk.0.attn_q.weight"));
        QCOMPARE(model.index(0, QuantizeResultModel::FormatColumn).data().toString(), QStringLiteral("Q4_K"));
        QCOMPARE(model.index(1, QuantizeResultModel::FormatColumn).data().toString(), QStringLiteral("F32 (copied)"));
        QCOMPARE(model.index(0, QuantizeResultModel::BytesColumn).data().toString(), QStringLiteral("2.25 KiB"));
        QCOMPARE(model.index(0, QuantizeResultModel::BytesColumn).data(QuantizeResultModel::SortRole).toULongLong(),
                 2304ull);
        QCOMPARE(model.index(0, QuantizeResultModel::SqnrColumn).data().toString(), QStringLiteral("21.46"));
        QCOMPARE(model.index(1, QuantizeResultModel::SqnrColumn).data().toString(), QStringLiteral("exact"));
        QVERIFY(model.index(0, QuantizeResultModel::SqnrColumn).data(Qt::ToolTipRole).toString().contains(
            QStringLiteral("4,096")));

        QSortFilterProxyModel proxy;
        proxy.setSourceModel(&model);
        proxy.setSortRole(QuantizeResultModel::SortRole);
        proxy.sort(QuantizeResultModel::SqnrColumn, Qt::AscendingOrder);
        QStringList order;
        for (int r = 0; r < proxy.rowCount(); ++r)
            order << proxy.index(r, QuantizeResultModel::NameColumn).data().toString();
        QCOMPARE(order, (QStringList{QStringLiteral("blk.0.attn_q.weight"), QStringLiteral("output.weight"),
                                     QStringLiteral("output_norm.weight")}));
        proxy.sort(QuantizeResultModel::BytesColumn, Qt::DescendingOrder);
        QCOMPARE(proxy.index(0, QuantizeResultModel::NameColumn).data().toString(), QStringLiteral("output.weight"));

        model.setTensors({});
        QCOMPARE(proxy.rowCount(), 0);
    }
};

QTEST_MAIN(TestQuantizeResultModel)
#include "tst_quantizeresultmodel.moc"
