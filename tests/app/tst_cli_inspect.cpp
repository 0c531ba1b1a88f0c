// quantscope-cli inspect and dump, run as the real executable on the bundled sample model in all three
// of its encodings (GGUF F32, safetensors F32, sharded safetensors BF16).
#include "app/cli_runner.h"
#include "widgets/safetensors_writer.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QTest>

#include <cstring>
#include <vector>

namespace {

using Run = CliRun;

Run cli(const QStringList& args) { return runQuantscopeCli(args); }

QString sample(const char* rel) { return QStringLiteral(QS_SAMPLE_DIR "/stories260K/") + QLatin1String(rel); }

std::vector<float> readFloats(const QString& path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    const QByteArray b = f.readAll();
    std::vector<float> v(static_cast<size_t>(b.size()) / 4);
    std::memcpy(v.data(), b.constData(), v.size() * 4);
    return v;
}

// stories260K: dim 64, 5 layers, kv dim 32, FFN 172, vocab 512. Per block: q 64x64, k 32x64, v 32x64,
// o 64x64, gate/up 172x64, down 64x172, two norms of 64; plus embedding, output head and final norm.
constexpr qint64 kBlockParams = 4096 + 2048 + 2048 + 4096 + 3 * 11008 + 2 * 64;
constexpr qint64 kParams = 5 * kBlockParams + 2 * 512 * 64 + 64; // 292800

} // namespace

class TestCliInspect : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;

private slots:
    void inspectJson_data()
    {
        QTest::addColumn<QString>("path");
        QTest::addColumn<QString>("format");
        QTest::addColumn<qint64>("bytes");
        QTest::addColumn<int>("tensors");
        QTest::addColumn<QString>("embedding");
        QTest::newRow("gguf") << sample("stories260K.gguf") << "gguf" << 4 * kParams << 48
                              << "token_embd.weight";
        QTest::newRow("safetensors-f32") << sample("hf-f32/model.safetensors") << "safetensors" << 4 * kParams
                                         << 48 << "model.embed_tokens.weight";
        QTest::newRow("safetensors-bf16-sharded") << sample("hf-bf16-sharded") << "safetensors" << 2 * kParams
                                                  << 48 << "model.embed_tokens.weight";
    }

    void inspectJson()
    {
        QFETCH(QString, path);
        QFETCH(QString, format);
        QFETCH(qint64, bytes);
        QFETCH(int, tensors);
        QFETCH(QString, embedding);
        const Run r = cli({QStringLiteral("inspect"), path, QStringLiteral("--json")});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        const QJsonObject o = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(o.value(QStringLiteral("format")).toString(), format);
        QCOMPARE(o.value(QStringLiteral("architecture")).toString(), QStringLiteral("llama"));
        QCOMPARE(o.value(QStringLiteral("parameters")).toInteger(), kParams);
        QCOMPARE(o.value(QStringLiteral("bytes")).toInteger(), bytes);
        const QJsonArray list = o.value(QStringLiteral("tensors")).toArray();
        QCOMPARE(list.size(), tensors);
        bool found = false;
        for (const auto& v : list) {
            const QJsonObject t = v.toObject();
            if (t.value(QStringLiteral("name")).toString() != embedding)
                continue;
            found = true;
            QCOMPARE(t.value(QStringLiteral("role")).toString(), QStringLiteral("embedding"));
            QCOMPARE(t.value(QStringLiteral("block")).toInt(), -1);
            const QJsonArray shape = t.value(QStringLiteral("shape")).toArray();
            QCOMPARE(shape.size(), 2);
            QCOMPARE(shape[0].toInt(), 512);
            QCOMPARE(shape[1].toInt(), 64);
            QCOMPARE(t.value(QStringLiteral("bytes")).toInteger(), 512 * 64 * bytes / (4 * kParams) * 4);
        }
        QVERIFY(found);
        const QJsonObject config = o.value(QStringLiteral("config")).toObject();
        QCOMPARE(config.value(QStringLiteral("layers")).toInt(), 5);
        QCOMPARE(config.value(QStringLiteral("kv_heads")).toInt(), 4);
    }

    void inspectText()
    {
        const Run r = cli({QStringLiteral("inspect"), sample("stories260K.gguf")});
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.contains("blk.4.ffn_down.weight"));
        QVERIFY(r.out.contains("1171200 bytes"));
    }

    void controlCharactersEscaped()
    {
        // Issue 14: a tensor name holding a terminal escape sequence (ESC [2J clears the screen) and a bell
        // is shown escaped in every human-readable table; JSON escapes it on its own.
        const QString path = m_dir.filePath(QStringLiteral("evil.safetensors"));
        QVERIFY(qstest::writeSafetensorsF32(
            path, {{"model.layers.0.mlp.down_proj.weight\\u001b[2J\\u0007x", {2, 4}, {1, 2, 3, 4, 5, 6, 7, 8}},
                   {"model.layers.0.mlp.up_proj.weight", {2, 4}, {1, -2, 3, -4, 5, -6, 7, -8}}}));
        for (const char* command : {"inspect", "stats"}) {
            const Run r = cli({QString::fromLatin1(command), path});
            QCOMPARE(r.exitCode, 0);
            QVERIFY2(!r.out.contains('\x1b') && !r.out.contains('\x07'), command);
            QVERIFY2(r.out.contains("down_proj.weight\\x1b[2J\\x07x"), r.out.constData());
            // Columns stay aligned: the column after the name starts at the same character in both rows.
            const QString evilName = QStringLiteral("model.layers.0.mlp.down_proj.weight\\x1b[2J\\x07x");
            const QString plainName = QStringLiteral("model.layers.0.mlp.up_proj.weight");
            qsizetype evil = -1, plain = -1;
            const QRegularExpression nonSpace(QStringLiteral("\\S"));
            for (const QByteArray& l : r.out.split('\n')) {
                const QString line = QString::fromUtf8(l);
                if (line.startsWith(evilName))
                    evil = line.indexOf(nonSpace, evilName.size());
                else if (line.startsWith(plainName))
                    plain = line.indexOf(nonSpace, plainName.size());
            }
            QVERIFY2(evil > evilName.size(), command);
            QCOMPARE(plain, evil);
        }
        const Run json = cli({QStringLiteral("inspect"), path, QStringLiteral("--json")});
        QCOMPARE(json.exitCode, 0);
        QVERIFY(json.out.toLower().contains("down_proj.weight\\u001b[2j\\u0007x"));
    }

    // Issue 14: what a loader accepts but flags is shown, in text and JSON. Here a config.json beside the
    // weights that cannot be used (a layer count that is a string): the model loads from tensor names.
    void loaderWarningsShown()
    {
        QTemporaryDir dir;
        QVERIFY(qstest::writeSafetensorsF32(dir.filePath(QStringLiteral("model.safetensors")),
                                            {{"model.layers.0.mlp.up_proj.weight", {2, 4}, {1, 2, 3, 4, 5, 6, 7, 8}}}));
        QFile config(dir.filePath(QStringLiteral("config.json")));
        QVERIFY(config.open(QIODevice::WriteOnly));
        config.write(R"({"model_type":"llama","num_hidden_layers":"32"})");
        config.close();
        const Run text = cli({QStringLiteral("inspect"), dir.path()});
        QCOMPARE(text.exitCode, 0);
        QVERIFY2(text.out.contains("  warning       ") && text.out.contains("num_hidden_layers") &&
                     text.out.contains("config.json was not used"),
                 text.out.constData());
        const Run json = cli({QStringLiteral("inspect"), dir.path(), QStringLiteral("--json")});
        QCOMPARE(json.exitCode, 0);
        const QJsonArray warnings = QJsonDocument::fromJson(json.out).object().value(QStringLiteral("warnings")).toArray();
        QCOMPARE(warnings.size(), 1);
        QVERIFY(warnings[0].toString().contains(QStringLiteral("num_hidden_layers")));
        // A model without warnings has an empty list.
        const Run clean = cli({QStringLiteral("inspect"), sample("stories260K.gguf"), QStringLiteral("--json")});
        QCOMPARE(QJsonDocument::fromJson(clean.out).object().value(QStringLiteral("warnings")).toArray().size(), 0);
    }

    // The embedding is stored unpermuted in every encoding: GGUF F32 and safetensors F32 must agree
    // bit for bit, and the BF16 shard must hold exactly the bf16 rounding of those values.
    void dumpAgreesAcrossFormats()
    {
        QVERIFY(m_dir.isValid());
        const QString a = m_dir.filePath(QStringLiteral("gguf.f32"));
        const QString b = m_dir.filePath(QStringLiteral("st.f32"));
        const QString c = m_dir.filePath(QStringLiteral("bf16.f32"));
        Run r = cli({QStringLiteral("dump"), sample("stories260K.gguf"), QStringLiteral("token_embd.weight"),
                     QStringLiteral("--f32"), a});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        r = cli({QStringLiteral("dump"), sample("hf-f32/model.safetensors"), QStringLiteral("model.embed_tokens.weight"),
                 QStringLiteral("--f32"), b});
        QVERIFY2(r.exitCode == 0, r.err.constData());
        r = cli({QStringLiteral("dump"), sample("hf-bf16-sharded/model.safetensors.index.json"),
                 QStringLiteral("model.embed_tokens.weight"), QStringLiteral("--f32"), c});
        QVERIFY2(r.exitCode == 0, r.err.constData());

        const auto va = readFloats(a), vb = readFloats(b), vc = readFloats(c);
        QCOMPARE(va.size(), size_t(512 * 64));
        QCOMPARE(vb.size(), va.size());
        QCOMPARE(vc.size(), va.size());
        QVERIFY(std::memcmp(va.data(), vb.data(), va.size() * 4) == 0);
        for (size_t i = 0; i < va.size(); ++i) {
            uint32_t x;
            std::memcpy(&x, &va[i], 4);
            x += 0x7FFF + ((x >> 16) & 1); // round to nearest even bf16
            x &= 0xFFFF0000u;
            float expected;
            std::memcpy(&expected, &x, 4);
            QCOMPARE(vc[i], expected);
        }
    }

    void errors()
    {
        Run r = cli({QStringLiteral("inspect"), m_dir.filePath(QStringLiteral("missing.gguf"))});
        QCOMPARE(r.exitCode, 1);
        QVERIFY(r.err.contains("missing.gguf"));

        r = cli({QStringLiteral("dump"), sample("stories260K.gguf"), QStringLiteral("no.such.tensor"),
                 QStringLiteral("--f32"), m_dir.filePath(QStringLiteral("x.f32"))});
        QCOMPARE(r.exitCode, 1);
        QVERIFY(r.err.contains("no.such.tensor"));
        QVERIFY(!QFile::exists(m_dir.filePath(QStringLiteral("x.f32"))));

        const QString bad = m_dir.filePath(QStringLiteral("bad.gguf"));
        QFile f(bad);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("GGUF\x03\x00\x00\x00", 8); // version 3, then nothing: truncated tensor count
        f.close();
        r = cli({QStringLiteral("inspect"), bad});
        QCOMPARE(r.exitCode, 1);
        QVERIFY(r.err.contains("bad.gguf"));
        QVERIFY(r.err.contains("byte 8"));

        r = cli({QStringLiteral("no-such-command")});
        QCOMPARE(r.exitCode, 1);
    }
};

QTEST_GUILESS_MAIN(TestCliInspect)
#include "tst_cli_inspect.moc"
