// quantscope-cli quantize, run as the real executable: llama-quantize's bytes from a preset plan, JSON
// result, exit codes (1 on validation / IO failure, 130 on Ctrl-C) and no partial output.
#include "app/cli_runner.h"
#include "core/gguf_builder.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>
#include <csignal>

namespace {

const QString kRef = QStringLiteral(QS_TEST_DATA "/reference/llama-quantize");

QByteArray readAll(const QString& path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

} // namespace

class TestCliQuantize : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    QString m_plan;

    QString tmp(const QString& name) const { return m_dir.filePath(name); }

    // llama.cpp's Q4_K_M mix for code-3m, saved as `name` (empty on failure).
    QString code3mQ4kmPlan(const QString& name) const
    {
        const QString plan = tmp(name);
        const CliRun r = runQuantscopeCli({QStringLiteral("plan"), QStringLiteral(QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf"),
                                           QStringLiteral("--preset"), QStringLiteral("llama.cpp-Q4_K_M"),
                                           QStringLiteral("--out"), plan});
        return r.exitCode == 0 ? plan : QString();
    }

private slots:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_plan = tmp(QStringLiteral("q4km.json"));
        const CliRun r = runQuantscopeCli({QStringLiteral("plan"), kRef + QStringLiteral("/tiny-F16.gguf"),
                                           QStringLiteral("--preset"), QStringLiteral("llama.cpp-Q4_K_M"),
                                           QStringLiteral("--out"), m_plan});
        QVERIFY2(r.exitCode == 0, r.err.constData());
    }

    void presetPlanMatchesLlamaQuantize()
    {
        const QString out = tmp(QStringLiteral("q4km.gguf"));
        const CliRun r = runQuantscopeCli(
            {QStringLiteral("quantize"), kRef + QStringLiteral("/tiny-F16.gguf"), QStringLiteral("--plan"),
             m_plan, QStringLiteral("--to"), QStringLiteral("gguf"), QStringLiteral("--out"), out,
             QStringLiteral("--imatrix"), kRef + QStringLiteral("/tiny.imatrix.gguf"),
             QStringLiteral("--threads"), QStringLiteral("2"), QStringLiteral("--json")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        const QByteArray bytes = readAll(out);
        QCOMPARE(o.value(QStringLiteral("bytes_written")).toInteger(), qint64(bytes.size()));
        QCOMPARE(o.value(QStringLiteral("weight_bytes_written")).toInteger(),
                 o.value(QStringLiteral("predicted_weight_bytes")).toInteger());
        QVERIFY(o.value(QStringLiteral("seconds")).toDouble() > 0);
        QCOMPARE(o.value(QStringLiteral("files")).toArray().size(), 1);
        QVERIFY(o.value(QStringLiteral("warnings")).isArray());
        QVERIFY(bytes == readAll(kRef + QStringLiteral("/tiny-Q4_K_M-imatrix.gguf")));
        // Per tensor: bytes adding up to the tensor data, an SQNR for every quantized tensor, null for a copy.
        const QJsonArray tensors = o.value(QStringLiteral("tensors")).toArray();
        QVERIFY(tensors.size() > 10);
        qint64 sum = 0;
        int measured = 0;
        for (const auto& v : tensors) {
            const QJsonObject t = v.toObject();
            QVERIFY(!t.value(QStringLiteral("name")).toString().isEmpty());
            QVERIFY(!t.value(QStringLiteral("format")).toString().isEmpty());
            sum += t.value(QStringLiteral("bytes")).toInteger();
            if (t.value(QStringLiteral("copied")).toBool()) {
                QVERIFY(t.value(QStringLiteral("sqnr_db")).isNull());
                QCOMPARE(t.value(QStringLiteral("sampled_values")).toInteger(), 0);
            } else {
                QVERIFY(t.value(QStringLiteral("sqnr_db")).toDouble() > 5);
                QVERIFY(t.value(QStringLiteral("sampled_values")).toInteger() > 0);
                ++measured;
            }
        }
        QCOMPARE(sum, o.value(QStringLiteral("weight_bytes_written")).toInteger());
        QVERIFY(measured > 0);
        // Not a terminal: no progress line.
        QVERIFY(r.err.isEmpty());
    }

    void split()
    {
        const CliRun r = runQuantscopeCli(
            {QStringLiteral("quantize"), kRef + QStringLiteral("/tiny-F16.gguf"), QStringLiteral("--plan"),
             m_plan, QStringLiteral("--out"), tmp(QStringLiteral("split.gguf")),
             QStringLiteral("--split-max-size"), QStringLiteral("0.4M"), QStringLiteral("--json")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonArray files =
            QJsonDocument::fromJson(r.out).object().value(QStringLiteral("files")).toArray();
        QCOMPARE(files.size(), 4);
        for (int i = 0; i < files.size(); ++i)
            QCOMPARE(QFileInfo(files[i].toString()).fileName(),
                     QStringLiteral("split-%1-of-00004.gguf").arg(i + 1, 5, 10, QLatin1Char('0')));
        QVERIFY(!QFile::exists(tmp(QStringLiteral("split.gguf"))));
    }

    void failures()
    {
        const QString input = tmp(QStringLiteral("input.gguf"));
        QVERIFY(QFile::copy(kRef + QStringLiteral("/tiny-F16.gguf"), input));
        const QByteArray original = readAll(input);
        CliRun r = runQuantscopeCli({QStringLiteral("quantize"), input, QStringLiteral("--plan"), m_plan,
                                     QStringLiteral("--out"), input});
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("is the input file"), r.err.constData());
        QVERIFY(readAll(input) == original);

        r = runQuantscopeCli({QStringLiteral("quantize"), input, QStringLiteral("--plan"), m_plan,
                              QStringLiteral("--to"), QStringLiteral("gptq"), QStringLiteral("--out"),
                              tmp(QStringLiteral("gptq"))});
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("cannot write gptq") || r.err.contains("GPTQ") || r.err.contains("gptq"), r.err.constData());
        QVERIFY(!QFile::exists(tmp(QStringLiteral("gptq"))));

        r = runQuantscopeCli({QStringLiteral("quantize"), input, QStringLiteral("--plan"), m_plan,
                              QStringLiteral("--to"), QStringLiteral("onnx"), QStringLiteral("--out"),
                              tmp(QStringLiteral("x"))});
        QCOMPARE(r.exitCode, 1);

        r = runQuantscopeCli({QStringLiteral("quantize"), input, QStringLiteral("--plan"), m_plan,
                              QStringLiteral("--out"), tmp(QStringLiteral("x.gguf")),
                              QStringLiteral("--split-max-size"), QStringLiteral("lots")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY(r.err.contains("--split-max-size"));

        // A plan naming a tensor the model lacks.
        QFile plan(m_plan);
        QVERIFY(plan.open(QIODevice::ReadOnly));
        QByteArray text = plan.readAll();
        text.replace("blk.1.ffn_up.weight", "blk.9.ffn_up.weight");
        const QString bad = tmp(QStringLiteral("bad-plan.json"));
        QFile out(bad);
        QVERIFY(out.open(QIODevice::WriteOnly));
        out.write(text);
        out.close();
        r = runQuantscopeCli({QStringLiteral("quantize"), input, QStringLiteral("--plan"), bad,
                              QStringLiteral("--out"), tmp(QStringLiteral("bad.gguf"))});
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("tensor 'blk.9.ffn_up.weight': is in the plan but not in the model"),
                 r.err.constData());
        QVERIFY(!QFile::exists(tmp(QStringLiteral("bad.gguf"))));
    }

    // --method gptq: the calibration pass, then GPTQ's codes in a GPTQ checkpoint; per-tensor proxy errors in
    // the JSON; GGUF and a missing calibration text are refused.
    void gptqMethod()
    {
        const QString model = QStringLiteral(QS_SAMPLE_DIR "/stories260K/hf-f32");
        QJsonObject assignments;
        for (int l = 0; l < 5; ++l)
            for (const char* t : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                  "mlp.gate_proj", "mlp.up_proj"})
                assignments[QStringLiteral("model.layers.%1.%2.weight").arg(l).arg(QLatin1String(t))] =
                    QStringLiteral("INT4-g32-asym");
        const QString planPath = tmp(QStringLiteral("gptq-plan.json"));
        QFile plan(planPath);
        QVERIFY(plan.open(QIODevice::WriteOnly));
        plan.write(QJsonDocument(QJsonObject{{QStringLiteral("format"), QStringLiteral("quantscope-plan")},
                                             {QStringLiteral("version"), 1},
                                             {QStringLiteral("tiers"), QJsonArray{QStringLiteral("INT4-g32-asym")}},
                                             {QStringLiteral("assignments"), assignments}})
                       .toJson());
        plan.close();
        const QString text = QStringLiteral(QS_SAMPLE_DIR "/eval/stories.txt");
        const QString out = tmp(QStringLiteral("gptq-out"));
        CliRun r = runQuantscopeCli({QStringLiteral("quantize"), model, QStringLiteral("--plan"), planPath,
                                     QStringLiteral("--to"), QStringLiteral("gptq"), QStringLiteral("--out"), out,
                                     QStringLiteral("--method"), QStringLiteral("gptq"),
                                     QStringLiteral("--calibration"), text, QStringLiteral("--calibration-vocab"),
                                     QStringLiteral(QS_SAMPLE_DIR "/stories260K/stories260K.gguf"),
                                     QStringLiteral("--calibration-ctx"),
                                     QStringLiteral("128"), QStringLiteral("--act-order"), QStringLiteral("--damp"),
                                     QStringLiteral("0.02"), QStringLiteral("--json")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        const QJsonArray gptq = o.value(QStringLiteral("gptq")).toArray();
        QCOMPARE(gptq.size(), 30);
        for (const auto& v : gptq) {
            const QJsonObject t = v.toObject();
            QVERIFY(t.value(QStringLiteral("proxy_error")).toDouble() <
                    t.value(QStringLiteral("proxy_error_rtn")).toDouble());
        }
        const QJsonObject qcfg =
            QJsonDocument::fromJson(readAll(out + QStringLiteral("/quantize_config.json"))).object();
        QCOMPARE(qcfg.value(QStringLiteral("desc_act")).toBool(), true);

        r = runQuantscopeCli({QStringLiteral("quantize"), model, QStringLiteral("--plan"), planPath,
                              QStringLiteral("--to"), QStringLiteral("gguf"), QStringLiteral("--out"),
                              tmp(QStringLiteral("g.gguf")), QStringLiteral("--method"), QStringLiteral("gptq"),
                              QStringLiteral("--calibration"), text});
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("GGUF"), r.err.constData());
        r = runQuantscopeCli({QStringLiteral("quantize"), model, QStringLiteral("--plan"), planPath,
                              QStringLiteral("--to"), QStringLiteral("gptq"), QStringLiteral("--out"),
                              tmp(QStringLiteral("g2")), QStringLiteral("--method"), QStringLiteral("gptq")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("--calibration"), r.err.constData());
        QVERIFY(!QFile::exists(tmp(QStringLiteral("g2"))));
        r = runQuantscopeCli({QStringLiteral("quantize"), model, QStringLiteral("--plan"), planPath,
                              QStringLiteral("--to"), QStringLiteral("gptq"), QStringLiteral("--out"),
                              tmp(QStringLiteral("g3")), QStringLiteral("--method"), QStringLiteral("gptq"),
                              QStringLiteral("--calibration"), text, QStringLiteral("--damp"), QStringLiteral("x")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("--damp"), r.err.constData());
    }

    // --method gptq --to gguf: GPTQ's levels in the ggml blocks of llama.cpp's Q4_K_M mix (Q4_K and Q6_K), the
    // per-tensor proxy errors below round to nearest's; act-order is refused with the reason.
    void gptqIntoGguf()
    {
        const QString model = QStringLiteral(QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf");
        const QString text = QStringLiteral(QS_TEST_DATA "/eval/python-textwrap.txt");
        const QString plan = code3mQ4kmPlan(QStringLiteral("code3m-q4km-gptq.json"));
        QVERIFY(!plan.isEmpty());
        const QString out = tmp(QStringLiteral("code3m-gptq.gguf"));
        const QStringList base = {QStringLiteral("quantize"), model, QStringLiteral("--plan"), plan,
                                  QStringLiteral("--to"), QStringLiteral("gguf"), QStringLiteral("--out"), out,
                                  QStringLiteral("--allow-requantize"), QStringLiteral("--method"),
                                  QStringLiteral("gptq"), QStringLiteral("--calibration"), text,
                                  QStringLiteral("--ctx"), QStringLiteral("128")};
        CliRun r = runQuantscopeCli(base + QStringList{QStringLiteral("--json")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonArray gptq = QJsonDocument::fromJson(r.out).object().value(QStringLiteral("gptq")).toArray();
        QCOMPARE(gptq.size(), 28); // the 4 blocks' 7 matrices; token_embd and output stay round to nearest
        for (const auto& v : gptq) {
            const QJsonObject t = v.toObject();
            QVERIFY(t.value(QStringLiteral("format")).toString().endsWith(QStringLiteral("_K")));
            QVERIFY(t.value(QStringLiteral("proxy_error")).toDouble() <
                    t.value(QStringLiteral("proxy_error_rtn")).toDouble());
        }
        QVERIFY(QFile::exists(out));
        QVERIFY(QFile::remove(out));
        r = runQuantscopeCli(base + QStringList{QStringLiteral("--act-order")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("act-order"), r.err.constData());
        QVERIFY(!QFile::exists(out));
    }

    // Ctrl-C mid-run: exit 130, no output, no temporary file left. QUANTSCOPE_CLI_TEST_HOLD makes the job
    // wait at its first progress report (after the temporary output file exists) until it is cancelled, so the
    // interrupt lands mid-run on any machine.
    void awqMethod()
    {
        const QString model = QStringLiteral(QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf");
        const QString text = QStringLiteral(QS_TEST_DATA "/eval/python-textwrap.txt");
        const QString plan = code3mQ4kmPlan(QStringLiteral("code3m-q4km.json"));
        QVERIFY(!plan.isEmpty());
        const QString out = tmp(QStringLiteral("code3m-awq.gguf"));
        const QStringList base = {QStringLiteral("quantize"), model,          QStringLiteral("--plan"), plan,
                                  QStringLiteral("--out"),    out,            QStringLiteral("--allow-requantize")};
        CliRun r = runQuantscopeCli(base + QStringList{QStringLiteral("--method"), QStringLiteral("awq"),
                                                QStringLiteral("--calibration"), text, QStringLiteral("--ctx"),
                                                QStringLiteral("128"), QStringLiteral("--chunks"),
                                                QStringLiteral("4"), QStringLiteral("--json")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        const QJsonArray notes = o.value(QStringLiteral("method_notes")).toArray();
        QVERIFY(notes.size() > 16); // the summary and one line per layer group (4 layers x 4 groups)
        QVERIFY(notes.first().toString().startsWith(QStringLiteral("AWQ calibration")));
        QVERIFY2(notes.first().toString().contains(QStringLiteral("4 chunks of 128 tokens")),
                 qPrintable(notes.first().toString()));
        const QJsonArray groups = o.value(QStringLiteral("awq")).toArray();
        QCOMPARE(groups.size(), 16);
        for (const auto& v : groups) {
            const QJsonObject g = v.toObject();
            QVERIFY(g.value(QStringLiteral("scaled")).toBool());
            QVERIFY(g.value(QStringLiteral("error_awq")).toDouble() < g.value(QStringLiteral("error_rtn")).toDouble());
        }
        QCOMPARE(groups.first().toObject().value(QStringLiteral("folded_into")).toString(),
                 QStringLiteral("blk.0.attn_norm.weight"));
        QCOMPARE(o.value(QStringLiteral("bytes_written")).toInteger(), qint64(QFileInfo(out).size()));
        // Refusals: a method without its input, GPTQ into GGUF (ggml blocks round on their own), an unknown method.
        r = runQuantscopeCli(base + QStringList{QStringLiteral("--method"), QStringLiteral("awq")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("--calibration"), r.err.constData());
        r = runQuantscopeCli(base + QStringList{QStringLiteral("--method"), QStringLiteral("gptq")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("--calibration") || r.err.contains("ggml"), r.err.constData());
        r = runQuantscopeCli(base + QStringList{QStringLiteral("--method"), QStringLiteral("best")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("rtn, awq or gptq"), r.err.constData());
    }

    void interrupt()
    {
        // 6 matrices of 2048 x 4096 in F16: a run of several steps with a temporary file of 30 MB.
        qstest::GgufBuilder b;
        b.kv("general.architecture", qstest::GgufBuilder::vStr("llama"));
        for (int i = 0; i < 6; ++i)
            b.randomF16("blk." + std::to_string(i) + ".ffn_down.weight", 4096, 2048, 7 + i);
        const QString folder = tmp(QStringLiteral("big"));
        QVERIFY(QDir().mkpath(folder));
        const QString model = folder + QStringLiteral("/big.gguf");
        {
            QFile f(model);
            QVERIFY(f.open(QIODevice::WriteOnly));
            const std::string bytes = b.build();
            f.write(bytes.data(), qint64(bytes.size()));
        }
        const QString plan = tmp(QStringLiteral("q3k.json"));
        CliRun r = runQuantscopeCli({QStringLiteral("plan"), model, QStringLiteral("--preset"),
                                     QStringLiteral("all-Q3_K"), QStringLiteral("--out"), plan});
        QVERIFY2(r.exitCode == 0, r.err.constData());

        QFile::copy(kRef + QStringLiteral("/mix.txt"), folder + QStringLiteral("/out.gguf"));
        const QByteArray existing = readAll(folder + QStringLiteral("/out.gguf"));
        const CliRun run =
            interruptCliWhenHolding({QStringLiteral("quantize"), model, QStringLiteral("--plan"), plan,
                                     QStringLiteral("--out"), folder + QStringLiteral("/out.gguf")});
        QVERIFY2(run.err.contains("quantscope-cli: holding"), run.err.constData());
        QCOMPARE(run.exitCode, 130);
        QVERIFY2(run.err.contains("cancelled"), run.err.constData());
        QCOMPARE(readAll(folder + QStringLiteral("/out.gguf")), existing);
        QCOMPARE(QDir(folder).entryList(QDir::Files | QDir::Hidden).size(), 2); // big.gguf, out.gguf
    }
};

QTEST_GUILESS_MAIN(TestCliQuantize)
#include "tst_cli_quantize.moc"
