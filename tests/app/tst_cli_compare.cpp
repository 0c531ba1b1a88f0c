// quantscope-cli compare: JSON of an identical pair (GGUF against its Hugging Face layout) and of
// llama-quantize's output against its input, the difference histogram, and refused arguments.
#include "app/cli_runner.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTest>
#include <cmath>

namespace {
const QString kSample = QStringLiteral(QS_SAMPLE_DIR "/stories260K");
const QString kRef = QStringLiteral(QS_TEST_DATA "/reference/llama-quantize");
} // namespace

class TestCliCompare : public QObject {
    Q_OBJECT

private slots:
    void identicalPair()
    {
        const CliRun r = runQuantscopeCli({QStringLiteral("compare"), kSample + QStringLiteral("/stories260K.gguf"),
                                           kSample + QStringLiteral("/hf-f32"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const QJsonArray tensors = QJsonDocument::fromJson(r.out).object().value(QStringLiteral("tensors")).toArray();
        QCOMPARE(tensors.size(), 48);
        for (const QJsonValue& v : tensors) {
            const QJsonObject o = v.toObject();
            QVERIFY(o.value(QStringLiteral("sqnr_db")).isNull()); // identical: infinite SQNR
            QCOMPARE(o.value(QStringLiteral("rmse")).toDouble(), 0.0);
        }
    }

    void quantizedPairWithHistogram()
    {
        const CliRun r = runQuantscopeCli({QStringLiteral("compare"), kRef + QStringLiteral("/tiny-F16.gguf"),
                                           kRef + QStringLiteral("/tiny-mix.gguf"), QStringLiteral("--tensor"),
                                           QStringLiteral("^blk\\.0\\.ffn_down"), QStringLiteral("--histogram"),
                                           QStringLiteral("16"), QStringLiteral("--json")});
        QCOMPARE(r.exitCode, 0);
        const QJsonArray tensors = QJsonDocument::fromJson(r.out).object().value(QStringLiteral("tensors")).toArray();
        QCOMPARE(tensors.size(), 1);
        const QJsonObject t = tensors.first().toObject();
        QCOMPARE(t.value(QStringLiteral("tensor")).toString(), QStringLiteral("blk.0.ffn_down.weight"));
        QVERIFY(t.value(QStringLiteral("candidate_type")).toString() != QStringLiteral("F16"));
        const double sqnr = t.value(QStringLiteral("sqnr_db")).toDouble();
        QVERIFY(sqnr > 5 && sqnr < 60);
        const QJsonObject h = t.value(QStringLiteral("difference_histogram")).toObject();
        qint64 total = 0;
        for (const QJsonValue& c : h.value(QStringLiteral("counts")).toArray())
            total += c.toInteger();
        QCOMPARE(total, t.value(QStringLiteral("values")).toInteger());
        QCOMPARE(h.value(QStringLiteral("edges")).toArray().size(), h.value(QStringLiteral("counts")).toArray().size() + 1);
    }

    void refusesBadArguments()
    {
        QCOMPARE(runQuantscopeCli({QStringLiteral("compare"), kRef + QStringLiteral("/tiny-F16.gguf")}).exitCode, 1);
        CliRun r = runQuantscopeCli({QStringLiteral("compare"), kRef + QStringLiteral("/tiny-F16.gguf"),
                                     kRef + QStringLiteral("/tiny-mix.gguf"), QStringLiteral("--histogram"),
                                     QStringLiteral("0")});
        QCOMPARE(r.exitCode, 1);
        r = runQuantscopeCli({QStringLiteral("compare"), kRef + QStringLiteral("/tiny-F16.gguf"),
                              kRef + QStringLiteral("/missing.gguf")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY(r.err.contains("missing.gguf"));
    }
};

QTEST_MAIN(TestCliCompare)
#include "tst_cli_compare.moc"
