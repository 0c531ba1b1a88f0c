// quantscope-cli sensitivity / formats: the real executable on the sample model and the PP-OCR weights,
// every number checked against direct core calls.
#include "app/cli_runner.h"
#include "core/model/matrixview.h"
#include "core/model/model.h"
#include "core/quant/format.h"
#include "core/quant/metrics.h"
#include "core/quant/sensitivity.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QProcessEnvironment>
#include <QTemporaryDir>
#include <QTest>
#include <cmath>
#include <cstring>

namespace {

using Run = CliRun;

// The CLI caches results; tests keep that cache in a directory of their own.
const QTemporaryDir& cacheDir()
{
    static QTemporaryDir dir;
    return dir;
}

Run cli(const QStringList& args)
{
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("QUANTSCOPE_CACHE_DIR"), cacheDir().path());
    return runQuantscopeCli(args, env);
}

bool close(double a, double b)
{
    return std::fabs(a - b) <= 1e-12 * std::max(std::fabs(a), std::fabs(b)) + 1e-300;
}

const QString kStories = QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
const QString kPpocr = QStringLiteral(QS_TEST_DATA "/ppocr/model.safetensors");
const QString kCode3m = QStringLiteral(QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf");

// Checks every cell of a sensitivity JSON against a direct whole-tensor round trip of the same tensor.
void checkAgainstCore(const QString& path, const QJsonObject& root,
                      const std::vector<float>* importance = nullptr,
                      const std::string& importanceTensor = {})
{
    const auto model = qs::openModel(path.toStdString());
    const QJsonArray results = root.value(QStringLiteral("results")).toArray();
    QVERIFY(!results.isEmpty());
    int checked = 0;
    for (const auto& v : results) {
        const QJsonObject o = v.toObject();
        const std::string tensorName = o.value(QStringLiteral("tensor")).toString().toStdString();
        const std::string formatName = o.value(QStringLiteral("format")).toString().toStdString();
        const auto* t = model->find(tensorName);
        QVERIFY2(t, tensorName.c_str());
        QVERIFY(qs::isSensitivityCandidate(*t));
        const auto format = qs::findFormat(formatName);
        QVERIFY(format);
        // One row per output channel (core/model/matrixview.h): PaddleOCR's Linear [in, out] transposed, its
        // OIHW kernels flattened into rows of in·kh·kw.
        const qs::MatrixView view = qs::matrixViewOf(*model, *t);
        const uint64_t rows = view.rows, cols = view.cols;
        QCOMPARE(o.value(QStringLiteral("rows")).toInteger(), qint64(rows));
        QCOMPARE(o.value(QStringLiteral("cols")).toInteger(), qint64(cols));
        if (!format->supports(rows, cols)) {
            QVERIFY(o.contains(QStringLiteral("error")));
            QVERIFY(!o.contains(QStringLiteral("mse")));
            continue;
        }
        std::vector<float> stored(rows * cols), x(rows * cols), y(rows * cols);
        model->decodeRows(*t, 0, t->rows(), stored.data());
        qs::storedToView(view, stored.data(), x.data());
        const float* w = importance && tensorName == importanceTensor ? importance->data() : nullptr;
        format->roundTrip(x.data(), rows, cols, y.data(), w);
        const auto m = qs::computeErrorMetrics(x.data(), y.data(), rows, cols, w);
        const auto bytes = *format->storedBytes(rows, cols);
        QCOMPARE(o.value(QStringLiteral("bytes")).toInteger(), qint64(bytes));
        QCOMPARE(o.value(QStringLiteral("bits_per_weight")).toDouble(), 8.0 * bytes / (rows * cols));
        const std::string where = tensorName + " " + formatName;
        QVERIFY2(close(o.value(QStringLiteral("mse")).toDouble(), m.mse), where.c_str());
        QVERIFY2(close(o.value(QStringLiteral("rel_mse")).toDouble(), m.relMse), where.c_str());
        QVERIFY2(close(o.value(QStringLiteral("max_abs_err")).toDouble(), m.maxAbsErr), where.c_str());
        QVERIFY2(close(o.value(QStringLiteral("cosine")).toDouble(), m.cosine), where.c_str());
        if (std::isinf(m.sqnrDb))
            QVERIFY(o.value(QStringLiteral("sqnr_db")).isNull());
        else
            QVERIFY2(close(o.value(QStringLiteral("sqnr_db")).toDouble(), m.sqnrDb), where.c_str());
        if (importance) {
            QVERIFY(o.contains(QStringLiteral("weighted_mse")));
            if (w)
                QVERIFY2(close(o.value(QStringLiteral("weighted_mse")).toDouble(), *m.weightedMse),
                         where.c_str());
            else
                QVERIFY(o.value(QStringLiteral("weighted_mse")).isNull());
        } else {
            QVERIFY(!o.contains(QStringLiteral("weighted_mse")));
        }
        ++checked;
    }
    QVERIFY(checked > 0);
}

} // namespace

class TestCliSensitivity : public QObject {
    Q_OBJECT
private slots:
    void storiesDefaultFormats()
    {
        const Run r = cli({QStringLiteral("sensitivity"), kStories, QStringLiteral("--json")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject root = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(root.value(QStringLiteral("formats")).toArray().size(),
                 qsizetype(qs::defaultSensitivityFormats().size()));
        const auto model = qs::openModel(kStories.toStdString());
        size_t candidates = 0;
        for (const auto& t : model->tensors())
            candidates += qs::isSensitivityCandidate(t);
        QVERIFY(candidates >= 5 * 7); // 7 matrices per block
        QCOMPARE(root.value(QStringLiteral("results")).toArray().size(),
                 qsizetype(candidates * qs::defaultSensitivityFormats().size()));
        checkAgainstCore(kStories, root);
    }

    // By default tensors of many rows are estimated from a row sample (fields added, the old ones kept);
    // --exact measures every row, as a direct round trip does.
    void code3mSampledByDefault()
    {
        const QStringList args = {QStringLiteral("sensitivity"), kCode3m, QStringLiteral("--json"),
                                  QStringLiteral("--no-cache"), QStringLiteral("--formats"),
                                  QStringLiteral("Q4_K,INT8-ch-sym")};
        const Run r = cli(args);
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject root = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(root.value(QStringLiteral("exact")).toBool(true), false);
        QCOMPARE(root.value(QStringLiteral("sampling")).toObject().value(QStringLiteral("fraction")).toDouble(),
                 1.0 / 16);
        int sampled = 0;
        for (const auto& v : root.value(QStringLiteral("results")).toArray()) {
            const QJsonObject o = v.toObject();
            const qint64 rows = o.value(QStringLiteral("rows")).toInteger();
            // 256 rows at least, and only where that is less than half the tensor.
            QCOMPARE(o.value(QStringLiteral("sampled")).toBool(), rows > 512);
            if (rows <= 512) {
                QVERIFY(!o.contains(QStringLiteral("mse_ci")));
                continue;
            }
            ++sampled;
            QCOMPARE(o.value(QStringLiteral("sampled_rows")).toInteger(), qint64(256));
            QCOMPARE(o.value(QStringLiteral("sample_fraction")).toDouble(), 256.0 / double(rows));
            QCOMPARE(o.value(QStringLiteral("confidence")).toDouble(), 0.95);
            const QJsonArray mse = o.value(QStringLiteral("mse_ci")).toArray(),
                             sqnr = o.value(QStringLiteral("sqnr_db_ci")).toArray();
            QVERIFY(mse[0].toDouble() <= o.value(QStringLiteral("mse")).toDouble());
            QVERIFY(o.value(QStringLiteral("mse")).toDouble() <= mse[1].toDouble());
            QVERIFY(sqnr[0].toDouble() <= o.value(QStringLiteral("sqnr_db")).toDouble());
            QVERIFY(o.value(QStringLiteral("sqnr_db")).toDouble() <= sqnr[1].toDouble());
        }
        QCOMPARE(sampled, 2 * 10); // token_embd, output (1024 rows), 4 x ffn_gate, ffn_up (768 rows)
        const Run e = cli(args + QStringList{QStringLiteral("--exact")});
        QVERIFY2(e.exitCode == 0, e.err.constData());
        const QJsonObject exact = QJsonDocument::fromJson(e.out).object();
        QCOMPARE(exact.value(QStringLiteral("exact")).toBool(), true);
        QVERIFY(!exact.contains(QStringLiteral("sampling")));
        for (const auto& v : exact.value(QStringLiteral("results")).toArray())
            QVERIFY(!v.toObject().value(QStringLiteral("sampled")).toBool(true));
        checkAgainstCore(kCode3m, exact);
        // The text table marks the estimates.
        const Run text = cli({QStringLiteral("sensitivity"), kCode3m, QStringLiteral("--no-cache"),
                              QStringLiteral("--formats"), QStringLiteral("Q4_K")});
        QVERIFY(text.out.contains("~"));
        QVERIFY(text.out.contains("±"));
        QCOMPARE(cli(args + QStringList{QStringLiteral("--sample-fraction"), QStringLiteral("0")}).exitCode, 1);
    }

    void storiesWithImatrix()
    {
        // A legacy imatrix for blk.0.attn_q.weight only: 64 values, ncall 2 (values are halved on load).
        QTemporaryDir dir;
        const QString imx = dir.filePath(QStringLiteral("stories.dat"));
        std::vector<float> raw(64), importance(64);
        for (int j = 0; j < 64; ++j) {
            raw[j] = 1.0f + static_cast<float>((j * 37) % 11);
            importance[j] = raw[j] / 2.0f;
        }
        QByteArray data;
        auto put = [&](const void* p, int n) { data.append(static_cast<const char*>(p), n); };
        const int32_t entries = 1, ncall = 2, nval = 64;
        const std::string name = "blk.0.attn_q.weight";
        const int32_t len = static_cast<int32_t>(name.size());
        put(&entries, 4);
        put(&len, 4);
        put(name.data(), len);
        put(&ncall, 4);
        put(&nval, 4);
        put(raw.data(), 64 * 4);
        QFile f(imx);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(data);
        f.close();

        const Run r = cli({QStringLiteral("sensitivity"), kStories, QStringLiteral("--json"),
                           QStringLiteral("--imatrix"), imx, QStringLiteral("--formats"),
                           QStringLiteral("q8_0,INT4,fp8,nf4,Q4_K"), QStringLiteral("--tensor"),
                           QStringLiteral("^blk\\.0\\.")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject root = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(root.value(QStringLiteral("formats")).toArray().at(1).toString(),
                 QStringLiteral("INT4-g128-asym"));
        QCOMPARE(root.value(QStringLiteral("results")).toArray().size(), qsizetype(7 * 5));
        const QJsonObject cover = root.value(QStringLiteral("imatrix")).toObject();
        QCOMPARE(cover.value(QStringLiteral("format")).toString(), QStringLiteral("legacy"));
        QCOMPARE(cover.value(QStringLiteral("matched")).toInt(), 1);
        const QJsonArray missing = cover.value(QStringLiteral("missing")).toArray();
        QVERIFY(missing.contains(QStringLiteral("blk.0.attn_k.weight")));
        QVERIFY(
            missing.contains(QStringLiteral("blk.4.ffn_down.weight"))); // coverage is over the whole model
        QVERIFY(!missing.contains(QStringLiteral("blk.0.attn_q.weight")));
        checkAgainstCore(kStories, root, &importance, name);
    }

    void ppocr()
    {
        const Run r =
            cli({QStringLiteral("sensitivity"), kPpocr, QStringLiteral("--json"), QStringLiteral("--formats"),
                 QStringLiteral("BF16,INT8-ch-sym,INT4-g128-asym,INT4-g32-sym,FP8-E4M3,FP8-E5M2-ch,NF4,Q8_0"),
                 QStringLiteral("--threads"), QStringLiteral("2"), QStringLiteral("--exact")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject root = QJsonDocument::fromJson(r.out).object();
        // Issue 13 #4: all 47 weight tensors, the 9 Linear weights and the 38 OIHW convolution kernels
        // (measured per output channel, rows of in·kh·kw). Rows that a format's block does not divide get
        // "cannot store" cells, as a 2-D row of that width would.
        QCOMPARE(root.value(QStringLiteral("results")).toArray().size(), qsizetype(47 * 8));
        checkAgainstCore(kPpocr, root);
        QVERIFY(root.value(QStringLiteral("skipped")).toArray().isEmpty());
        int q80 = 0, int8 = 0;
        for (const auto& v : root.value(QStringLiteral("results")).toArray()) {
            const QJsonObject o = v.toObject();
            const bool ok = !o.contains(QStringLiteral("error"));
            q80 += ok && o.value(QStringLiteral("format")).toString() == QLatin1String("Q8_0");
            int8 += ok && o.value(QStringLiteral("format")).toString() == QLatin1String("INT8-ch-sym");
        }
        QCOMPARE(int8, 47);
        // Q8_0's 32-value blocks fit the rows of 11 tensors (1x1 and 1x3 kernels over 32·k inputs); the other
        // rows hold 9, 16, 25, 27, 60, 120 or 240 values (the Linear weights have 120 or 240 inputs).
        QCOMPARE(q80, 11);
        // The heavy-tailed head (stored [120 in, 6625 out]: 6625 rows of 120): per-tensor FP8 keeps more than
        // per-row INT4 on the same tensor.
        double fp8 = 0, int4 = 0;
        for (const auto& v : root.value(QStringLiteral("results")).toArray()) {
            const QJsonObject o = v.toObject();
            if (o.value(QStringLiteral("tensor")).toString() != QLatin1String("linear_85.w_0"))
                continue;
            if (o.value(QStringLiteral("format")).toString() == QLatin1String("FP8-E4M3"))
                fp8 = o.value(QStringLiteral("sqnr_db")).toDouble();
            if (o.value(QStringLiteral("format")).toString() == QLatin1String("INT4-g128-asym"))
                int4 = o.value(QStringLiteral("sqnr_db")).toDouble();
        }
        QVERIFY(fp8 > int4 && int4 > 0);
    }

    void cache()
    {
        const QStringList args = {QStringLiteral("sensitivity"),
                                  kStories,
                                  QStringLiteral("--json"),
                                  QStringLiteral("--formats"),
                                  QStringLiteral("INT3-g32-sym,Q5_1,FP8-E5M2"),
                                  QStringLiteral("--tensor"),
                                  QStringLiteral("blk\\.[12]\\.")};
        const Run first = cli(args);
        QVERIFY2(first.exitCode == 0, first.err.constData());
        const Run second = cli(args);
        QVERIFY2(second.exitCode == 0, second.err.constData());
        const QJsonObject a = QJsonDocument::fromJson(first.out).object();
        const QJsonObject b = QJsonDocument::fromJson(second.out).object();
        const QJsonArray ra = a.value(QStringLiteral("results")).toArray();
        const QJsonArray rb = b.value(QStringLiteral("results")).toArray();
        QCOMPARE(ra.size(), qsizetype(2 * 7 * 3));
        QCOMPARE(rb.size(), ra.size());
        for (qsizetype i = 0; i < ra.size(); ++i) {
            QJsonObject x = ra[i].toObject(), y = rb[i].toObject();
            QVERIFY(!x.value(QStringLiteral("cached")).toBool());
            QCOMPARE(y.value(QStringLiteral("cached")).toBool(), !y.contains(QStringLiteral("error")));
            x.remove(QStringLiteral("cached"));
            y.remove(QStringLiteral("cached"));
            QCOMPARE(x, y); // the same numbers, to the last bit
        }
        checkAgainstCore(kStories, b); // cached values are the core's values
        const Run off = cli(args + QStringList{QStringLiteral("--no-cache")});
        for (const auto& v :
             QJsonDocument::fromJson(off.out).object().value(QStringLiteral("results")).toArray())
            QVERIFY(!v.toObject().value(QStringLiteral("cached")).toBool());
    }

    void errors()
    {
        QCOMPARE(cli({QStringLiteral("sensitivity"), kStories, QStringLiteral("--formats"),
                      QStringLiteral("Q4_X")})
                     .exitCode,
                 1);
        QCOMPARE(
            cli({QStringLiteral("sensitivity"), kStories, QStringLiteral("--tensor"), QStringLiteral("(")})
                .exitCode,
            1);
        QCOMPARE(cli({QStringLiteral("sensitivity")}).exitCode, 1);
        QCOMPARE(cli({QStringLiteral("sensitivity"), QStringLiteral("/nonexistent.gguf")}).exitCode, 1);
        QCOMPARE(
            cli({QStringLiteral("sensitivity"), kStories, QStringLiteral("--imatrix"), kStories}).exitCode,
            1);
        const Run text = cli(
            {QStringLiteral("sensitivity"), kStories, QStringLiteral("--tensor"), QStringLiteral("attn_q")});
        QCOMPARE(text.exitCode, 0);
        QVERIFY(text.out.contains("blk.4.attn_q.weight"));
        QVERIFY(!text.out.contains("ffn_up"));
    }

    void formats()
    {
        const Run r = cli({QStringLiteral("formats"), QStringLiteral("--json")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonArray list =
            QJsonDocument::fromJson(r.out).object().value(QStringLiteral("formats")).toArray();
        QCOMPARE(list.size(), qsizetype(qs::allFormatNames().size()));
        std::map<QString, QJsonObject> byName;
        for (const auto& v : list)
            byName[v.toObject().value(QStringLiteral("name")).toString()] = v.toObject();
        QCOMPARE(byName[QStringLiteral("Q4_K")].value(QStringLiteral("bits_per_weight")).toDouble(), 4.5);
        QCOMPARE(byName[QStringLiteral("Q6_K")].value(QStringLiteral("bits_per_weight")).toDouble(), 6.5625);
        QCOMPARE(
            byName[QStringLiteral("INT4-g128-asym")].value(QStringLiteral("bytes_4096x4096")).toInteger(),
            qint64(8732672));
        QCOMPARE(byName[QStringLiteral("INT4-g128-asym")].value(QStringLiteral("bits_per_weight")).toDouble(),
                 4.1640625);
        QCOMPARE(byName[QStringLiteral("NF4")].value(QStringLiteral("bits_per_weight")).toDouble(), 4.5);
        QCOMPARE(byName[QStringLiteral("FP8-E4M3")].value(QStringLiteral("bytes_4096x4096")).toInteger(),
                 qint64(16777220));
        QVERIFY(byName[QStringLiteral("Q8_0")].value(QStringLiteral("default")).toBool());
        QVERIFY(!byName[QStringLiteral("Q4_0")].value(QStringLiteral("default")).toBool());
        const Run text = cli({QStringLiteral("formats")});
        QCOMPARE(text.exitCode, 0);
        QVERIFY(text.out.contains("INT3-g64-asym"));
    }
};

QTEST_APPLESS_MAIN(TestCliSensitivity)
#include "tst_cli_sensitivity.moc"
