// quantscope-cli sensitivity --measure kl and plan --sensitivity (ΔKL) --verify: the real executable on
// code-3m, every number checked against direct core calls (measureKlSensitivity, planError's sum, evaluate).
#include "app/cli_runner.h"

#include "core/infer/evaluate.h"
#include "core/infer/klsensitivity.h"
#include "core/model/model.h"
#include "core/plan/plan.h"
#include "core/util/fileio.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>
#include <cmath>
#include <map>

namespace {

const QString kCode3m = QStringLiteral(QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf");
const QString kText = QStringLiteral(QS_TEST_DATA "/eval/python-textwrap.txt");

bool close(double a, double b, double rel)
{
    return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b)) + 1e-12;
}

} // namespace

class TestCliKlSensitivity : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;

    CliRun cli(const QStringList& args)
    {
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(QStringLiteral("QUANTSCOPE_CACHE_DIR"), m_dir.filePath(QStringLiteral("cache")));
        return runQuantscopeCli(args, env, 300000);
    }

private slots:
    void measureFitPredictVerify()
    {
        const QStringList measure = {QStringLiteral("sensitivity"), kCode3m, QStringLiteral("--measure"),
                                     QStringLiteral("kl"), QStringLiteral("--text"), kText,
                                     QStringLiteral("--ctx"), QStringLiteral("32"), QStringLiteral("--tokens"),
                                     QStringLiteral("96"), QStringLiteral("--formats"),
                                     QStringLiteral("Q6_K,Q4_K,Q2_K"), QStringLiteral("--json")};
        const CliRun r = cli(measure);
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject root = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(root.value(QStringLiteral("measure")).toString(), QStringLiteral("kl"));
        QCOMPARE(root.value(QStringLiteral("chunks")).toInt(), 3);
        QCOMPARE(root.value(QStringLiteral("scored")).toInt(), 3 * 15);
        const QJsonArray results = root.value(QStringLiteral("results")).toArray();
        QCOMPARE(results.size(), 30 * 3);

        // The same measurement in-process.
        const auto model = qs::openModel(kCode3m.toStdString());
        qs::KlSensitivityParams p;
        p.model = model;
        p.text = qs::readRegularFile(kText.toStdString(), 1 << 20, "text");
        p.options.ctx = 32;
        p.options.maxTokens = 96;
        p.options.formats = {"Q6_K", "Q4_K", "Q2_K"};
        const qs::KlSensitivityResult core = qs::measureKlSensitivity(p);
        QCOMPARE(size_t(results.size()), core.cells.size());
        std::map<std::pair<std::string, std::string>, double> file;
        for (qsizetype i = 0; i < results.size(); ++i) {
            const QJsonObject o = results[i].toObject();
            const auto& c = core.cells[size_t(i)];
            QCOMPARE(o.value(QStringLiteral("tensor")).toString().toStdString(), c.unit);
            QCOMPARE(o.value(QStringLiteral("format")).toString().toStdString(), c.format);
            QCOMPARE(uint64_t(o.value(QStringLiteral("bytes")).toInteger()), c.bytes);
            const double d = o.value(QStringLiteral("delta_kl")).toDouble();
            QVERIFY2(close(d, c.deltaKl, 1e-5), c.unit.c_str());
            file[{c.unit, c.format}] = d;
        }
        const QString klFile = m_dir.filePath(QStringLiteral("kl.json"));
        {
            QFile f(klFile);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write(r.out);
        }
        // Again: every cell from the cache.
        const CliRun again = cli(measure);
        QCOMPARE(again.exitCode, 0);
        QCOMPARE(QJsonDocument::fromJson(again.out).object().value(QStringLiteral("cached_cells")).toInt(), 90);

        // Fit to the Q4_K_M size from ΔKL; predicted = the sum of the chosen cells; verified on windows 3-4.
        const QString planFile = m_dir.filePath(QStringLiteral("plan.json"));
        const CliRun fit = cli({QStringLiteral("plan"), kCode3m, QStringLiteral("--target"), QStringLiteral("llamacpp"),
                                QStringLiteral("--budget"), QStringLiteral("2259456"), QStringLiteral("--sensitivity"),
                                klFile, QStringLiteral("--verify"), QStringLiteral("--text"), kText,
                                QStringLiteral("--verify-ctx"), QStringLiteral("32"), QStringLiteral("--verify-chunks"),
                                QStringLiteral("2"), QStringLiteral("--verify-first-chunk"), QStringLiteral("3"),
                                QStringLiteral("--out"), planFile, QStringLiteral("--json")});
        QVERIFY2(fit.exitCode == 0, fit.err.constData());
        const QJsonObject plan = QJsonDocument::fromJson(fit.out).object();
        QCOMPARE(plan.value(QStringLiteral("budget")).toObject().value(QStringLiteral("measure")).toString(),
                 QStringLiteral("kl"));
        double sum = 0;
        const QJsonObject asg = plan.value(QStringLiteral("assignments")).toObject();
        QCOMPARE(asg.size(), 30);
        for (auto it = asg.begin(); it != asg.end(); ++it)
            sum += file.at({it.key().toStdString(), it.value().toString().toStdString()});
        const QJsonObject predicted = plan.value(QStringLiteral("predicted")).toObject();
        QVERIFY(close(predicted.value(QStringLiteral("kl")).toDouble(), sum, 1e-9));
        QCOMPARE(predicted.value(QStringLiteral("measured_tensors")).toInt(), 30);
        QVERIFY(close(plan.value(QStringLiteral("budget")).toObject().value(QStringLiteral("error")).toDouble(), sum,
                      1e-9));
        const QJsonObject verify = plan.value(QStringLiteral("verify")).toObject();
        QVERIFY(close(verify.value(QStringLiteral("predicted_kl")).toDouble(), sum, 1e-9));
        QCOMPARE(verify.value(QStringLiteral("chunks")).toInt(), 2);
        QCOMPARE(verify.value(QStringLiteral("first_chunk")).toInt(), 3);
        // The measured KL is the evaluation job's on the same windows (3 and 4 of the text).
        qs::EvalParams e;
        e.model = model;
        const std::vector<int32_t> tokens = qs::evaluationTokens(*model, p.text);
        e.tokens.assign(tokens.begin() + 3 * 32, tokens.end());
        e.ctx = 32;
        e.maxChunks = 2;
        e.plan = qs::Plan();
        for (auto it = asg.begin(); it != asg.end(); ++it)
            e.plan->assign(it.key().toStdString(), it.value().toString().toStdString());
        const qs::EvalResult measured = qs::evaluate(e);
        QVERIFY(measured.kldMean > 0);
        QVERIFY(close(verify.value(QStringLiteral("measured_kl")).toDouble(), measured.kldMean, 1e-5));

        // Text output names both.
        const CliRun text = cli({QStringLiteral("plan"), kCode3m, QStringLiteral("--preset"), QStringLiteral("Q4_K_M"),
                                 QStringLiteral("--sensitivity"), klFile, QStringLiteral("--verify"),
                                 QStringLiteral("--text"), kText, QStringLiteral("--verify-ctx"), QStringLiteral("32"),
                                 QStringLiteral("--verify-chunks"), QStringLiteral("2")});
        QVERIFY2(text.exitCode == 0, text.err.constData());
        QVERIFY(text.out.contains("predicted KL divergence"));
        QVERIFY(text.out.contains("measured (mean over 30 positions of 2 chunks of 32 tokens"));
    }

    void refusals()
    {
        auto fails = [&](const QStringList& args, const char* needle) {
            const CliRun r = cli(args);
            QCOMPARE(r.exitCode, 1);
            QVERIFY2(r.err.contains(needle), r.err.constData());
        };
        fails({QStringLiteral("sensitivity"), kCode3m, QStringLiteral("--measure"), QStringLiteral("kl")}, "--text");
        fails({QStringLiteral("sensitivity"), kCode3m, QStringLiteral("--measure"), QStringLiteral("mse")},
              "weight or kl");
        fails({QStringLiteral("sensitivity"), kCode3m, QStringLiteral("--text"), kText}, "--measure kl only");
        fails({QStringLiteral("sensitivity"), kCode3m, QStringLiteral("--measure"), QStringLiteral("kl"),
               QStringLiteral("--text"), kText, QStringLiteral("--granularity"), QStringLiteral("layer")},
              "tensor or group");
        fails({QStringLiteral("plan"), kCode3m, QStringLiteral("--verify")}, "--text");
        fails({QStringLiteral("plan"), kCode3m, QStringLiteral("--text"), kText}, "--verify only");
        // Group results cannot drive the per-tensor fit.
        const QString group = m_dir.filePath(QStringLiteral("group.json"));
        {
            QFile f(group);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write(R"({"measure":"kl","granularity":"group","results":[]})");
        }
        fails({QStringLiteral("plan"), kCode3m, QStringLiteral("--budget"), QStringLiteral("2000000"),
               QStringLiteral("--sensitivity"), group},
              "granularity tensor");
    }
};

QTEST_APPLESS_MAIN(TestCliKlSensitivity)
#include "tst_cli_klsensitivity.moc"
