// quantscope-cli tokenize / generate / eval, run as the real executable: the stories260K and code-3m oracles
// through the CLI, eval's JSON equal to the core evaluation, a no-op plan with KL 0, a 4-bit plan with KL >
// 0, the refusals (context above the maximum, text that is not UTF-8) and Ctrl-C (exit 130).
#include "app/cli_runner.h"
#include "core/infer/evaluate.h"
#include "core/model/model.h"
#include "core/plan/planio.h"
#include "core/util/fileio.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>
#include <cmath>

namespace {

const QString kStories = QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
const QString kStoriesText = QStringLiteral(QS_SAMPLE_DIR "/eval/stories.txt");
const QString kCode3m = QStringLiteral(QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf");
const QString kCodeText = QStringLiteral(QS_TEST_DATA "/eval/python-textwrap.txt");

QList<int> intList(const QJsonValue& v)
{
    QList<int> out;
    for (const auto& e : v.toArray())
        out.append(e.toInt());
    return out;
}

QJsonObject jsonFile(const QString& path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? QJsonDocument::fromJson(f.readAll()).object() : QJsonObject();
}

} // namespace

class TestCliEval : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    QString m_noop, m_q4;

private slots:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_noop = m_dir.filePath(QStringLiteral("noop.json"));
        qs::savePlan(qs::Plan{}, m_noop.toStdString());
        const auto model = qs::openModel(kCode3m.toStdString());
        qs::Plan q4;
        for (const auto& t : model->tensors())
            if (t.shape.size() == 2)
                q4.assign(t.name, "Q4_0");
        m_q4 = m_dir.filePath(QStringLiteral("q4.json"));
        qs::savePlan(q4, m_q4.toStdString());
    }

    void generateStoriesFromBos()
    {
        const CliRun r = runQuantscopeCli({QStringLiteral("generate"), kStories, QStringLiteral("-n"),
                                           QStringLiteral("200"), QStringLiteral("--json")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        QFile f(QStringLiteral(QS_SAMPLE_DIR "/stories260K/expected_greedy_ids.txt"));
        QVERIFY(f.open(QIODevice::ReadOnly));
        QList<int> expected;
        for (const QByteArray& s : f.readAll().simplified().split(' '))
            expected.append(s.toInt());
        QCOMPARE(expected.size(), 200);
        QCOMPARE(intList(o[QStringLiteral("ids")]), expected);
        QCOMPARE(intList(o[QStringLiteral("prompt_ids")]), QList<int>{1});
        QVERIFY2(o[QStringLiteral("text")].toString().startsWith(
                     QStringLiteral("Once upon a time, there was a little girl named Lily.")),
                 qPrintable(o[QStringLiteral("text")].toString()));
        // Plain output is the text.
        const CliRun plain = runQuantscopeCli(
            {QStringLiteral("generate"), kStories, QStringLiteral("-n"), QStringLiteral("12")});
        QVERIFY2(plain.exitCode == 0, plain.err.constData());
        QVERIFY2(plain.out.startsWith("Once upon a time"), plain.out.constData());
    }

    void code3mPromptsTokenizeAndGenerate()
    {
        const QJsonObject expected = jsonFile(QStringLiteral(QS_TEST_DATA "/code-3m/expected_greedy.json"));
        const QJsonArray prompts = expected[QStringLiteral("prompts")].toArray();
        QCOMPARE(prompts.size(), 5);
        for (const auto& v : prompts) {
            const QJsonObject p = v.toObject();
            const QString prompt = p[QStringLiteral("prompt")].toString();
            const CliRun t =
                runQuantscopeCli({QStringLiteral("tokenize"), kCode3m, prompt, QStringLiteral("--json")});
            QVERIFY2(t.exitCode == 0, t.err.constData());
            QCOMPARE(intList(QJsonDocument::fromJson(t.out).object()[QStringLiteral("ids")]),
                     intList(p[QStringLiteral("prompt_ids")]));
            const CliRun g =
                runQuantscopeCli({QStringLiteral("generate"), kCode3m, QStringLiteral("--prompt"), prompt,
                                  QStringLiteral("-n"), QStringLiteral("32"), QStringLiteral("--json")});
            QVERIFY2(g.exitCode == 0, g.err.constData());
            const QJsonObject o = QJsonDocument::fromJson(g.out).object();
            QCOMPARE(intList(o[QStringLiteral("prompt_ids")]), intList(p[QStringLiteral("prompt_ids")]));
            QCOMPARE(intList(o[QStringLiteral("ids")]), intList(p[QStringLiteral("greedy_32")]));
        }
    }

    void tokenizeFileAndPlainOutput()
    {
        const QString file = m_dir.filePath(QStringLiteral("prompt.txt"));
        QFile f(file);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("def main(");
        f.close();
        const CliRun r =
            runQuantscopeCli({QStringLiteral("tokenize"), kCode3m, QStringLiteral("--text"), file});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        QCOMPARE(r.out.trimmed(), QByteArray("0 334 960 262 9"));
        const CliRun nobos = runQuantscopeCli({QStringLiteral("tokenize"), kCode3m, QStringLiteral("--text"),
                                               file, QStringLiteral("--no-bos")});
        QCOMPARE(nobos.out.trimmed(), QByteArray("334 960 262 9"));
        const CliRun bad = runQuantscopeCli({QStringLiteral("tokenize"), kCode3m, QStringLiteral("--text"),
                                             QStringLiteral(QS_TEST_DATA "/eval/latin1.txt")});
        QCOMPARE(bad.exitCode, 1);
        QVERIFY2(bad.err.contains("UTF-8"), bad.err.constData());
    }

    void evalEqualsCoreResult()
    {
        const CliRun r =
            runQuantscopeCli({QStringLiteral("eval"), kCode3m, QStringLiteral("--text"), kCodeText,
                              QStringLiteral("--plan"), m_q4, QStringLiteral("--ctx"), QStringLiteral("128"),
                              QStringLiteral("--chunks"), QStringLiteral("2"), QStringLiteral("--threads"),
                              QStringLiteral("2"), QStringLiteral("--json")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();

        qs::EvalParams p;
        p.model = qs::openModel(kCode3m.toStdString());
        p.text = qs::readRegularFile(kCodeText.toStdString(), 1 << 20);
        p.plan = qs::loadPlan(m_q4.toStdString());
        p.ctx = 128;
        p.maxChunks = 2;
        const qs::EvalResult core = qs::evaluate(p);
        QCOMPARE(o[QStringLiteral("perplexity")].toDouble(), core.perplexity);
        QCOMPARE(o[QStringLiteral("perplexity_quantized")].toDouble(), core.perplexityQuantized);
        QCOMPARE(o[QStringLiteral("kld_mean")].toDouble(), core.kldMean);
        QCOMPARE(o[QStringLiteral("kld_median")].toDouble(), core.kldMedian);
        QCOMPARE(o[QStringLiteral("kld_p99")].toDouble(), core.kldP99);
        QCOMPARE(o[QStringLiteral("kld_max")].toDouble(), core.kldMax);
        QCOMPARE(o[QStringLiteral("same_top")].toDouble(), core.sameTop);
        QVERIFY(core.kldMean > 0);
        QCOMPARE(o[QStringLiteral("chunks")].toArray().size(), 2);
        QCOMPARE(o[QStringLiteral("chunks")].toArray()[1].toObject()[QStringLiteral("kld_mean")].toDouble(),
                 core.perChunk[1].kldMean);
        QCOMPARE(o[QStringLiteral("scored")].toInt(), 2 * 63);
    }

    void evalWithoutAndWithNoOpPlan()
    {
        const CliRun plain =
            runQuantscopeCli({QStringLiteral("eval"), kStories, QStringLiteral("--text"), kStoriesText,
                              QStringLiteral("--ctx"), QStringLiteral("64"), QStringLiteral("--chunks"),
                              QStringLiteral("2"), QStringLiteral("--json")});
        QVERIFY2(plain.exitCode == 0, plain.err.constData());
        const QJsonObject a = QJsonDocument::fromJson(plain.out).object();
        QVERIFY(a[QStringLiteral("perplexity")].toDouble() > 1.0);
        QVERIFY(!a.contains(QStringLiteral("kld_mean")));

        const CliRun noop = runQuantscopeCli({QStringLiteral("eval"), kStories, QStringLiteral("--text"),
                                              kStoriesText, QStringLiteral("--ctx"), QStringLiteral("64"),
                                              QStringLiteral("--chunks"), QStringLiteral("2"),
                                              QStringLiteral("--plan"), m_noop, QStringLiteral("--json")});
        QVERIFY2(noop.exitCode == 0, noop.err.constData());
        const QJsonObject b = QJsonDocument::fromJson(noop.out).object();
        QCOMPARE(b[QStringLiteral("kld_mean")].toDouble(), 0.0);
        QCOMPARE(b[QStringLiteral("kld_max")].toDouble(), 0.0);
        QCOMPARE(b[QStringLiteral("same_top")].toDouble(), 1.0);
        QCOMPARE(b[QStringLiteral("perplexity_quantized")].toDouble(),
                 a[QStringLiteral("perplexity")].toDouble());

        const CliRun text =
            runQuantscopeCli({QStringLiteral("eval"), kStories, QStringLiteral("--text"), kStoriesText,
                              QStringLiteral("--ctx"), QStringLiteral("64"), QStringLiteral("--chunks"),
                              QStringLiteral("2"), QStringLiteral("--plan"), m_noop});
        QVERIFY2(text.exitCode == 0, text.err.constData());
        QVERIFY2(text.out.contains("same top token        100.00 %"), text.out.constData());
    }

    void evalRefusals()
    {
        const CliRun ctx = runQuantscopeCli({QStringLiteral("eval"), kCode3m, QStringLiteral("--text"),
                                             kCodeText, QStringLiteral("--ctx"), QStringLiteral("4096")});
        QCOMPARE(ctx.exitCode, 1);
        QVERIFY2(ctx.err.contains("a context of 4096 tokens is longer than the model's maximum of 256"),
                 ctx.err.constData());
        const CliRun utf8 = runQuantscopeCli({QStringLiteral("eval"), kCode3m, QStringLiteral("--text"),
                                              QStringLiteral(QS_TEST_DATA "/eval/latin1.txt")});
        QCOMPARE(utf8.exitCode, 1);
        QVERIFY2(utf8.err.contains("not valid UTF-8 (first invalid byte at offset 6)"), utf8.err.constData());
        const CliRun noText = runQuantscopeCli({QStringLiteral("eval"), kCode3m});
        QCOMPARE(noText.exitCode, 1);
        QVERIFY2(noText.err.contains("--text"), noText.err.constData());
    }

    // calibrate writes an importance file that sensitivity (and so quantize) reads, every block matrix
    // matched.
    void calibrateFeedsSensitivity()
    {
        const QString dat = m_dir.filePath(QStringLiteral("stories.dat"));
        const CliRun r = runQuantscopeCli({QStringLiteral("calibrate"), kStories, QStringLiteral("--text"),
                                           kStoriesText, QStringLiteral("--ctx"), QStringLiteral("128"),
                                           QStringLiteral("--imatrix-out"), dat, QStringLiteral("--json")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(o[QStringLiteral("entries")].toInt(), 35);
        QCOMPARE(o[QStringLiteral("chunks")].toInt(), 2733 / 128);
        const CliRun s = runQuantscopeCli(
            {QStringLiteral("sensitivity"), kStories, QStringLiteral("--imatrix"), dat,
             QStringLiteral("--formats"), QStringLiteral("Q8_0"), QStringLiteral("--tensor"),
             QStringLiteral("blk.0.attn_q"), QStringLiteral("--no-cache"), QStringLiteral("--json")});
        QVERIFY2(s.exitCode == 0, s.err.constData());
        const QJsonObject im = QJsonDocument::fromJson(s.out).object()[QStringLiteral("imatrix")].toObject();
        QCOMPARE(im[QStringLiteral("matched")].toInt(), 35);
        QCOMPARE(im[QStringLiteral("chunk_count")].toInt(), 2733 / 128);
        QCOMPARE(im[QStringLiteral("format")].toString(), QStringLiteral("legacy"));
        // The GGUF layout as well; another extension is refused.
        const QString gguf = m_dir.filePath(QStringLiteral("stories.imatrix.gguf"));
        const CliRun g = runQuantscopeCli({QStringLiteral("calibrate"), kStories, QStringLiteral("--text"),
                                           kStoriesText, QStringLiteral("--ctx"), QStringLiteral("128"),
                                           QStringLiteral("--imatrix-out"), gguf});
        QVERIFY2(g.exitCode == 0, g.err.constData());
        const CliRun sg = runQuantscopeCli(
            {QStringLiteral("sensitivity"), kStories, QStringLiteral("--imatrix"), gguf,
             QStringLiteral("--formats"), QStringLiteral("Q8_0"), QStringLiteral("--tensor"),
             QStringLiteral("blk.0.attn_q"), QStringLiteral("--no-cache"), QStringLiteral("--json")});
        QVERIFY2(sg.exitCode == 0, sg.err.constData());
        const QJsonObject img =
            QJsonDocument::fromJson(sg.out).object()[QStringLiteral("imatrix")].toObject();
        QCOMPARE(img[QStringLiteral("matched")].toInt(), 35);
        QCOMPARE(img[QStringLiteral("format")].toString(), QStringLiteral("gguf"));
        const CliRun bad =
            runQuantscopeCli({QStringLiteral("calibrate"), kStories, QStringLiteral("--text"), kStoriesText,
                              QStringLiteral("--imatrix-out"), m_dir.filePath(QStringLiteral("x.txt"))});
        QCOMPARE(bad.exitCode, 1);
        QVERIFY2(bad.err.contains(".gguf"), bad.err.constData());

        // Activation statistics (HDF5) with XᵀX: 4 distinct inputs per block; the file is also an importance
        // file for sensitivity, with the same values as the .dat above.
        const QString h5 = m_dir.filePath(QStringLiteral("stories.h5"));
        const CliRun a = runQuantscopeCli({QStringLiteral("calibrate"), kStories, QStringLiteral("--text"),
                                           kStoriesText, QStringLiteral("--ctx"), QStringLiteral("128"),
                                           QStringLiteral("--out"), h5, QStringLiteral("--hessians"),
                                           QStringLiteral("--json")});
        QVERIFY2(a.exitCode == 0, a.err.constData());
        const QJsonObject ao = QJsonDocument::fromJson(a.out).object();
        QCOMPARE(ao[QStringLiteral("inputs")].toInt(), 20);
        QCOMPARE(ao[QStringLiteral("hessians")].toBool(), true);
        QCOMPARE(ao[QStringLiteral("stats_file")].toString(), h5);
        QVERIFY(ao[QStringLiteral("file")].isNull());
        const CliRun sh = runQuantscopeCli(
            {QStringLiteral("sensitivity"), kStories, QStringLiteral("--imatrix"), h5,
             QStringLiteral("--formats"), QStringLiteral("Q8_0"), QStringLiteral("--tensor"),
             QStringLiteral("blk.0.attn_q"), QStringLiteral("--no-cache"), QStringLiteral("--json")});
        QVERIFY2(sh.exitCode == 0, sh.err.constData());
        const QJsonObject so = QJsonDocument::fromJson(sh.out).object();
        const QJsonObject imh = so[QStringLiteral("imatrix")].toObject();
        QCOMPARE(imh[QStringLiteral("matched")].toInt(), 35);
        QCOMPARE(imh[QStringLiteral("format")].toString(), QStringLiteral("activation-stats"));
        const QJsonObject sd = QJsonDocument::fromJson(s.out).object();
        const double wDat = sd[QStringLiteral("results")].toArray()[0].toObject()[QStringLiteral("weighted_mse")].toDouble();
        const double wH5 = so[QStringLiteral("results")].toArray()[0].toObject()[QStringLiteral("weighted_mse")].toDouble();
        QVERIFY(wDat > 0);
        QVERIFY2(std::fabs(wDat - wH5) <= 1e-4 * wDat, qPrintable(QStringLiteral("%1 vs %2").arg(wDat).arg(wH5)));
        const CliRun noOut = runQuantscopeCli({QStringLiteral("calibrate"), kStories, QStringLiteral("--text"),
                                               kStoriesText, QStringLiteral("--hessians"),
                                               QStringLiteral("--imatrix-out"), dat});
        QCOMPARE(noOut.exitCode, 1);
        QVERIFY2(noOut.err.contains("--hessians needs --out"), noOut.err.constData());
    }

    // eval --methods: the plan quantized with RTN and AWQ, each evaluated; the RTN entry equals plain
    // `eval --plan` (the Q4_0 file holds the plan's fake-quantized values); GPTQ without calibration text
    // is refused with the reason; an unknown method is an error.
    void evalMethods()
    {
        const QStringList base{QStringLiteral("eval"), kCode3m, QStringLiteral("--text"), kCodeText,
                               QStringLiteral("--plan"), m_q4, QStringLiteral("--ctx"), QStringLiteral("128"),
                               QStringLiteral("--chunks"), QStringLiteral("4"), QStringLiteral("--json")};
        const CliRun r = runQuantscopeCli(base + QStringList{QStringLiteral("--methods"), QStringLiteral("rtn,awq"),
                                                             QStringLiteral("--calibration"), kCodeText,
                                                             QStringLiteral("--calibration-ctx"), QStringLiteral("128")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(o[QStringLiteral("target")].toString(), QStringLiteral("gguf"));
        const QJsonArray methods = o[QStringLiteral("methods")].toArray();
        QCOMPARE(methods.size(), 2);
        const QJsonObject rtn = methods[0].toObject(), awq = methods[1].toObject();
        QCOMPARE(rtn[QStringLiteral("method")].toString(), QStringLiteral("rtn"));
        QVERIFY(rtn[QStringLiteral("ok")].toBool() && awq[QStringLiteral("ok")].toBool());
        QVERIFY(awq[QStringLiteral("kld_mean")].toDouble() < rtn[QStringLiteral("kld_mean")].toDouble());
        const CliRun plain = runQuantscopeCli(base);
        QVERIFY2(plain.exitCode == 0, plain.err.constData());
        const double direct = QJsonDocument::fromJson(plain.out).object()[QStringLiteral("kld_mean")].toDouble();
        QVERIFY2(std::fabs(rtn[QStringLiteral("kld_mean")].toDouble() - direct) <= 1e-9 * direct,
                 qPrintable(QStringLiteral("%1 vs %2").arg(rtn[QStringLiteral("kld_mean")].toDouble()).arg(direct)));

        const CliRun gptq = runQuantscopeCli(base + QStringList{QStringLiteral("--methods"), QStringLiteral("gptq")});
        QVERIFY2(gptq.exitCode == 0, gptq.err.constData());
        const QJsonObject g = QJsonDocument::fromJson(gptq.out).object()[QStringLiteral("methods")].toArray()[0].toObject();
        QVERIFY(!g[QStringLiteral("ok")].toBool());
        QVERIFY2(g[QStringLiteral("error")].toString().contains(QStringLiteral("calibration text")),
                 qPrintable(g[QStringLiteral("error")].toString()));
        const CliRun bad = runQuantscopeCli(base + QStringList{QStringLiteral("--methods"), QStringLiteral("rtn,fast")});
        QCOMPARE(bad.exitCode, 1);
        QVERIFY2(bad.err.contains("unknown method 'fast'"), bad.err.constData());
    }

    // eval --quantized: a file scored against the original; the model against itself diverges by exactly 0.
    void evalQuantizedFile()
    {
        const CliRun r = runQuantscopeCli({QStringLiteral("eval"), kCode3m, QStringLiteral("--text"), kCodeText,
                                           QStringLiteral("--ctx"), QStringLiteral("128"), QStringLiteral("--chunks"),
                                           QStringLiteral("2"), QStringLiteral("--quantized"), kCode3m,
                                           QStringLiteral("--json")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(o[QStringLiteral("kld_mean")].toDouble(), 0.0);
        QCOMPARE(o[QStringLiteral("same_top")].toDouble(), 1.0);
        QCOMPARE(o[QStringLiteral("perplexity_quantized")].toDouble(), o[QStringLiteral("perplexity")].toDouble());
        const CliRun both = runQuantscopeCli({QStringLiteral("eval"), kCode3m, QStringLiteral("--text"), kCodeText,
                                              QStringLiteral("--quantized"), kCode3m, QStringLiteral("--plan"), m_q4});
        QCOMPARE(both.exitCode, 1);
        QVERIFY2(both.err.contains("exclude each other"), both.err.constData());
    }

    // Ctrl-C while the evaluation runs: exit 130 (QUANTSCOPE_CLI_TEST_HOLD holds the job at its first
    // report).
    void interrupt()
    {
        const CliRun r = interruptCliWhenHolding({QStringLiteral("eval"), kCode3m, QStringLiteral("--text"),
                                                  kCodeText, QStringLiteral("--ctx"), QStringLiteral("128"),
                                                  QStringLiteral("--plan"), m_q4});
        QVERIFY2(r.err.contains("quantscope-cli: holding"), r.err.constData());
        QCOMPARE(r.exitCode, 130);
        QVERIFY2(r.err.contains("cancelled"), r.err.constData());
        QVERIFY(r.out.isEmpty());
    }
};

QTEST_GUILESS_MAIN(TestCliEval)
#include "tst_cli_eval.moc"
