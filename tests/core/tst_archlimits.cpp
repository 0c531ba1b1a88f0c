// One set of architecture limits for every config source (core/model/archlimits.h): hostile metadata
// claiming 2^32 layers, more KV heads than heads, or thousands of experts is an error naming the field,
// from config.json, from GGUF keys and from the layout reader alike.
#include "core/model/archlimits.h"
#include "core/plan/modellayout.h"
#include "core/util/error.h"
#include "core/gguf_builder.h"

#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

using namespace qs;
using B = qstest::GgufBuilder;

namespace {
QString errorOf(const std::function<void()>& f)
{
    try {
        f();
    } catch (const FormatError& e) {
        return QString::fromStdString(e.field() + ": " + e.detail());
    } catch (const std::exception& e) {
        return QStringLiteral("other: ") + QString::fromUtf8(e.what());
    }
    return {};
}
} // namespace

class TestArchLimits : public QObject {
    Q_OBJECT

private slots:
    void realModelsPass()
    {
        ModelConfig llama70b;
        llama70b.layers = 80, llama70b.hiddenSize = 8192, llama70b.intermediateSize = 28672;
        llama70b.heads = 64, llama70b.kvHeads = 8, llama70b.headDim = 128, llama70b.vocabSize = 128256;
        llama70b.contextLength = 131072;
        QVERIFY(errorOf([&] { checkArchitecture(llama70b, "llama70b"); }).isEmpty());
        ModelConfig deepseek = llama70b;
        deepseek.layers = 61, deepseek.experts = 256, deepseek.expertsUsed = 8, deepseek.heads = 128, deepseek.kvHeads = 128;
        QVERIFY(errorOf([&] { checkArchitecture(deepseek, "dsv3"); }).isEmpty());
        QVERIFY(errorOf([&] { checkArchitecture(ModelConfig{}, "unknown"); }).isEmpty()); // zeros: unknown
    }

    void inconsistentOrAbsurdFail()
    {
        ModelConfig c;
        c.heads = 8, c.kvHeads = 16;
        QVERIFY(errorOf([&] { checkArchitecture(c, "x"); }).startsWith(QStringLiteral("kv_heads: KV heads (16) exceed")));
        c.kvHeads = 3;
        QVERIFY(errorOf([&] { checkArchitecture(c, "x"); }).contains(QStringLiteral("do not divide")));
        c = {};
        c.experts = 8, c.expertsUsed = 4294967295u;
        QVERIFY(errorOf([&] { checkArchitecture(c, "x"); }).startsWith(QStringLiteral("experts_used:")));
        c = {};
        c.layers = 1024, c.experts = 1024; // each within its limit, the product is not
        QVERIFY(errorOf([&] { checkArchitecture(c, "x"); }).contains(QStringLiteral("1024 layers x 1024 experts")));
        c = {};
        c.layers = 4294967295u;
        QVERIFY(errorOf([&] { checkArchitecture(c, "x"); }).startsWith(QStringLiteral("layers:")));
    }

    // The 4.6 KB GGUF of the audit: block_count 2^32 - 1 made `estimate` spin; now the loader refuses it.
    void ggufBlockCountRefusedAtOpen()
    {
        B b;
        b.kv("general.architecture", B::vStr("gemma2"))
            .kv("gemma2.block_count", B::vU32(4294967295u))
            .kv("gemma2.attention.sliding_window", B::vU32(4096));
        b.tensor("token_embd.weight", {32, 2}, 0, 256);
        QTemporaryDir dir;
        const std::string path = dir.filePath(QStringLiteral("x.gguf")).toStdString();
        {
            const std::string bytes = b.build();
            QFile f(QString::fromStdString(path));
            QVERIFY(f.open(QIODevice::WriteOnly));
            QCOMPARE(f.write(bytes.data(), qint64(bytes.size())), qint64(bytes.size()));
        }
        QVERIFY(errorOf([&] { openLayout(path); }).startsWith(QStringLiteral("layers:")));
    }

    // A 600-byte Mixtral-style config.json with 4096 experts x 1024 layers: refused before deriving tensors.
    void tinyConfigHugeWork()
    {
        const std::string json = R"({"model_type": "mixtral", "num_hidden_layers": 1024, "hidden_size": 4096,
            "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000,
            "num_local_experts": 1000, "num_experts_per_tok": 2})";
        QVERIFY(errorOf([&] { layoutFromConfigJson(json); }).startsWith(QStringLiteral("experts:")));
    }
};

QTEST_APPLESS_MAIN(TestArchLimits)
#include "tst_archlimits.moc"
