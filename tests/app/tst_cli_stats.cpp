// quantscope-cli stats: the JSON numbers against an independent computation from the decoded weights, the
// options, the cache and the error paths — through the real executable.
#include "app/cli_runner.h"

#include "core/model/model.h"
#include "core/stats/histogram.h"
#include "core/stats_reference.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QtTest>

using namespace qstest;

namespace {

using Run = CliRun;

Run runCli(const QStringList& args, const QString& cacheDir)
{
    auto env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("QUANTSCOPE_CACHE_DIR"), cacheDir);
    return runQuantscopeCli(QStringList{QStringLiteral("stats")} + args, env);
}

const QString kPpocr = QStringLiteral(QS_TEST_DATA "/ppocr/model.safetensors");

} // namespace

class TestCliStats : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_cache;

private slots:
    void jsonMatchesIndependentComputation()
    {
        const Run r =
            runCli({kPpocr, QStringLiteral("--json"), QStringLiteral("--bins"), QStringLiteral("16"),
                    QStringLiteral("--tensor"), QStringLiteral("^(conv2d_1[0-9]+|linear_7[0-9])\\.w_0$")},
                   m_cache.path());
        QCOMPARE(r.exitCode, 0);
        QVERIFY2(r.err.isEmpty(), r.err.constData()); // no progress bar for a sub-second run
        const QJsonArray tensors =
            QJsonDocument::fromJson(r.out).object().value(QStringLiteral("tensors")).toArray();
        auto model = qs::openModel(kPpocr.toStdString());
        const QRegularExpression re(QStringLiteral("^(conv2d_1[0-9]+|linear_7[0-9])\\.w_0$"));
        const auto matching =
            std::count_if(model->tensors().begin(), model->tensors().end(), [&](const qs::TensorInfo& t) {
                return re.match(QString::fromStdString(t.name)).hasMatch();
            });
        QVERIFY(matching >= 10);
        QCOMPARE(tensors.size(), qsizetype(matching));
        for (const auto& v : tensors) {
            const QJsonObject o = v.toObject();
            const auto* t = model->find(o.value(QStringLiteral("name")).toString().toStdString());
            QVERIFY(t);
            const auto x = decodeAll(*model, *t);
            const auto ref = reference(x, 0);
            QCOMPARE(o.value(QStringLiteral("count")).toInteger(), qint64(ref.count));
            QCOMPARE(o.value(QStringLiteral("zeros")).toInteger(), qint64(ref.zeros));
            QCOMPARE(o.value(QStringLiteral("nan")).toInteger(), 0);
            QCOMPARE(o.value(QStringLiteral("inf")).toInteger(), 0);
            QCOMPARE(o.value(QStringLiteral("min")).toDouble(), ref.min);
            QCOMPARE(o.value(QStringLiteral("max")).toDouble(), ref.max);
            QCOMPARE(o.value(QStringLiteral("absmax")).toDouble(), ref.absmax);
            QVERIFY(std::fabs(o.value(QStringLiteral("mean")).toDouble() - ref.mean) <= 1e-12 * ref.std);
            QVERIFY(std::fabs(o.value(QStringLiteral("std")).toDouble() / ref.std - 1) <= 1e-12);
            QVERIFY(std::fabs(o.value(QStringLiteral("kurtosis")).toDouble() / ref.kurtosis - 1) <= 1e-10);
            const double share3 = double(beyond(x, ref.mean, ref.std, 3)) / double(ref.finite);
            const double share6 = double(beyond(x, ref.mean, ref.std, 6)) / double(ref.finite);
            QCOMPARE(o.value(QStringLiteral("beyond_3sigma")).toDouble(), share3);
            QCOMPARE(o.value(QStringLiteral("beyond_6sigma")).toDouble(), share6);

            const QJsonObject h = o.value(QStringLiteral("histogram")).toObject();
            QCOMPARE(h.value(QStringLiteral("scale")).toString(), QStringLiteral("linear"));
            const QJsonArray edges = h.value(QStringLiteral("edges")).toArray();
            const QJsonArray counts = h.value(QStringLiteral("counts")).toArray();
            std::vector<double> e;
            for (const auto& v : edges)
                e.push_back(v.toDouble());
            QCOMPARE(counts.size(), edges.size() - 1);
            QVERIFY(edgesNearUniform(e, 16, ref.min, ref.max)); // exact bins, moved off F32 keys at most
            QCOMPARE(e.front(), ref.min); // the tensor's exact range: its ends never move
            QCOMPARE(e.back(), ref.max);
            const auto expected = referenceBins(x, e); // every value in the bin that holds it
            for (int i = 0; i < counts.size(); ++i)
                QCOMPARE(counts[i].toInteger(), qint64(expected[size_t(i)]));

            // Per output channel: rows of a matrix, one feature map of an OIHW kernel, and the last axis of
            // Paddle's Linear weights ("*.w_0", stored [in, out]), regrouped here so each channel is contiguous.
            const QJsonObject ch = o.value(QStringLiteral("channels")).toObject();
            const bool last = t->shape.size() == 2 && t->name.ends_with(".w_0");
            const uint64_t channels = last ? t->shape.back() : t->shape.size() >= 4 ? t->shape[0] : t->rows();
            QCOMPARE(ch.value(QStringLiteral("count")).toInteger(), qint64(channels));
            std::vector<float> grouped = x;
            if (last)
                for (size_t k = 0; k < x.size() / channels; ++k)
                    for (size_t c = 0; c < channels; ++c)
                        grouped[c * (x.size() / channels) + k] = x[k * channels + c];
            const auto perChannel = reference(grouped, x.size() / channels);
            const double maxAbs =
                *std::max_element(perChannel.channelAbsmax.begin(), perChannel.channelAbsmax.end());
            QCOMPARE(ch.value(QStringLiteral("absmax")).toObject().value(QStringLiteral("max")).toDouble(),
                     maxAbs);
        }
    }

    void optionsShapeTheOutput()
    {
        const Run sym = runCli({kPpocr, QStringLiteral("--json"), QStringLiteral("--symlog"),
                                QStringLiteral("--bins"), QStringLiteral("40"), QStringLiteral("--tensor"),
                                QStringLiteral("conv2d_106.w_0"), QStringLiteral("--channels")},
                               m_cache.path());
        QCOMPARE(sym.exitCode, 0);
        const QJsonObject o = QJsonDocument::fromJson(sym.out)
                                  .object()
                                  .value(QStringLiteral("tensors"))
                                  .toArray()
                                  .first()
                                  .toObject();
        const QJsonObject h = o.value(QStringLiteral("histogram")).toObject();
        QCOMPARE(h.value(QStringLiteral("scale")).toString(), QStringLiteral("symlog"));
        QCOMPARE(h.value(QStringLiteral("linthresh")).toDouble(), o.value(QStringLiteral("std")).toDouble());
        QCOMPARE(h.value(QStringLiteral("counts")).toArray().size(), 40);
        qint64 total = 0;
        for (const auto& c : h.value(QStringLiteral("counts")).toArray())
            total += c.toInteger();
        QCOMPARE(total, o.value(QStringLiteral("finite")).toInteger());
        QCOMPARE(o.value(QStringLiteral("channels"))
                     .toObject()
                     .value(QStringLiteral("absmax_values"))
                     .toArray()
                     .size(),
                 60);

        const Run text =
            runCli({kPpocr, QStringLiteral("--tensor"), QStringLiteral("^conv2d_106")}, m_cache.path());
        QCOMPARE(text.exitCode, 0);
        QVERIFY(text.out.contains("conv2d_106.w_0"));
        QVERIFY(text.out.contains("conv2d_106.b_0"));
        QVERIFY(!text.out.contains("conv2d_107"));
        QVERIFY(text.out.contains("kurtosis"));
    }

    void cacheIsUsedUnlessDisabled()
    {
        QTemporaryDir cache;
        const QStringList args{kPpocr, QStringLiteral("--json"), QStringLiteral("--tensor"),
                               QStringLiteral("^linear_7")};
        auto cachedFlags = [](const Run& r) {
            QList<bool> flags;
            for (const auto& v :
                 QJsonDocument::fromJson(r.out).object().value(QStringLiteral("tensors")).toArray())
                flags.append(v.toObject().value(QStringLiteral("cached")).toBool());
            return flags;
        };
        const Run first = runCli(args, cache.path());
        QCOMPARE(first.exitCode, 0);
        QVERIFY(!cachedFlags(first).isEmpty());
        QVERIFY(!cachedFlags(first).contains(true));
        const Run second = runCli(args, cache.path());
        QVERIFY(!cachedFlags(second).contains(false));
        // The cached numbers are the same numbers.
        auto strip = [](QByteArray json) { return json.replace("\"cached\": true", "\"cached\": false"); };
        QCOMPARE(strip(second.out), first.out);
        const Run off = runCli(args + QStringList{QStringLiteral("--no-cache")}, cache.path());
        QVERIFY(!cachedFlags(off).contains(true));
    }

    void errors()
    {
        const Run none =
            runCli({kPpocr, QStringLiteral("--tensor"), QStringLiteral("^no-such-tensor$")}, m_cache.path());
        QCOMPARE(none.exitCode, 1);
        QVERIFY(none.err.contains("no tensor matches"));
        QCOMPARE(runCli({kPpocr, QStringLiteral("--bins"), QStringLiteral("0")}, m_cache.path()).exitCode, 1);
        QCOMPARE(runCli({kPpocr, QStringLiteral("--tensor"), QStringLiteral("(")}, m_cache.path()).exitCode,
                 1);
        QCOMPARE(runCli({QStringLiteral("/no/such/model.safetensors")}, m_cache.path()).exitCode, 1);
        QCOMPARE(runCli({}, m_cache.path()).exitCode, 1);
        // Issue 14: --tensor is matched by RE2 like plan rules: a back-reference is refused by name, and a
        // catastrophic-backtracking pattern simply does not match (it hung with a backtracking engine).
        const Run backref =
            runCli({kPpocr, QStringLiteral("--tensor"), QStringLiteral("(.*)\\1\\1")}, m_cache.path());
        QCOMPARE(backref.exitCode, 1);
        QVERIFY2(backref.err.contains("--tensor"), backref.err.constData());
        const Run nested =
            runCli({kPpocr, QStringLiteral("--tensor"), QStringLiteral("^(.*.*)*X$")}, m_cache.path());
        QCOMPARE(nested.exitCode, 1);
        QVERIFY(nested.err.contains("no tensor matches"));
    }
};

QTEST_APPLESS_MAIN(TestCliStats)
#include "tst_cli_stats.moc"
