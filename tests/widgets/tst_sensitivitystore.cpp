// SensitivityStore's two passes on code-3m (tensors of 768 and 1024 rows are sampled): the estimate fills
// every cell first, the exact pass replaces the sampled ones in place, started and finished come once, and
// the final cells equal the exact matrix of the core bit for bit; setSampling(false) never shows an estimate.

#include "core/model/model.h"
#include "core/quant/sensitivity.h"
#include "widgets/sensitivitystore.h"

#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>
#include <cstring>
#include <map>
#include <set>

using namespace qs;

namespace {

const char* kCode3m = QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf";

bool sameBits(double a, double b)
{
    return std::memcmp(&a, &b, sizeof a) == 0;
}

} // namespace

class TestSensitivityStore : public QObject {
    Q_OBJECT

private slots:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        qputenv("QUANTSCOPE_CACHE_DIR", m_dir.filePath(QStringLiteral("cache")).toLocal8Bit());
    }

    void estimateThenExact_data()
    {
        QTest::addColumn<bool>("sampling");
        QTest::newRow("estimate, then exact") << true;
        QTest::newRow("exact only") << false;
    }
    void estimateThenExact()
    {
        QFETCH(bool, sampling);
        // A fresh cache each time: the second row must not find the first row's exact cells.
        QTemporaryDir cache;
        qputenv("QUANTSCOPE_CACHE_DIR", cache.path().toLocal8Bit());
        const std::shared_ptr<const Model> model = openModel(kCode3m);
        const QStringList formats = {QStringLiteral("Q4_K"), QStringLiteral("INT8-ch-sym")};
        SensitivityStore store;
        store.setDeliveryInterval(5);
        store.setFormats(formats);
        store.setSampling(sampling);
        store.setModel(model);
        QSignalSpy started(&store, &SensitivityStore::started);
        QSignalSpy finished(&store, &SensitivityStore::finished);
        std::set<std::pair<std::string, std::string>> estimated, replaced;
        bool sawRefining = false;
        double lastProgress = 0;
        bool monotonic = true;
        connect(&store, &SensitivityStore::progressChanged, this, [&](double f, const QString&) {
            monotonic = monotonic && f >= lastProgress;
            lastProgress = f;
        });
        connect(&store, &SensitivityStore::resultsReady, this, [&](const std::vector<SensitivityResult>& cells) {
            sawRefining = sawRefining || store.isRefining();
            for (const SensitivityResult& r : cells) {
                if (r.isSampled()) {
                    // Every cell is estimated before any is refined.
                    QVERIFY(!store.isRefining());
                    estimated.insert({r.tensor, r.format});
                } else if (estimated.count({r.tensor, r.format})) {
                    replaced.insert({r.tensor, r.format});
                }
            }
        });
        store.compute();
        QVERIFY(store.isRunning());
        QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 120000);
        QCOMPARE(started.count(), 1);
        QCOMPARE(finished.at(0).at(0).toBool(), false);
        QVERIFY(!store.isRunning());
        QVERIFY(!store.isRefining());
        QVERIFY(monotonic);
        QCOMPARE(lastProgress, 1.0);
        if (sampling) {
            // token_embd, output (1024 rows) and 4 x ffn_gate, ffn_up (768 rows), in both formats.
            QCOMPARE(estimated.size(), size_t(2 * 10));
            QCOMPARE(replaced, estimated);
            QVERIFY(sawRefining);
        } else {
            QVERIFY(estimated.empty());
        }

        // The final cells are the exact matrix.
        SensitivityOptions exact;
        for (const QString& f : formats)
            exact.formats.push_back(f.toStdString());
        const auto truth = computeSensitivity(*model, exact);
        QCOMPARE(store.resultCount(), truth.size());
        for (const SensitivityResult& t : truth) {
            const SensitivityResult* r =
                store.result(QString::fromStdString(t.tensor), QString::fromStdString(t.format));
            QVERIFY(r);
            QVERIFY(!r->isSampled());
            QVERIFY2(sameBits(r->metrics.mse, t.metrics.mse), (t.tensor + " " + t.format).c_str());
            QVERIFY(sameBits(r->metrics.sqnrDb, t.metrics.sqnrDb));
        }
    }

private:
    QTemporaryDir m_dir;
};

QTEST_MAIN(TestSensitivityStore)
#include "tst_sensitivitystore.moc"
