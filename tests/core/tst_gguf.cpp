// GGUF loader: real files (the sample model, ggml's reference vectors), files built by an independent
// writer (tests/core/gguf_builder.h), and hostile files, each asserting the error code, field and offset.
#include "core/io/gguf.h"
#include "core/model/model.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include "core/gguf_builder.h"

#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include <fstream>
#include <map>
#include <sstream>

using qstest::GgufBuilder;
using B = qstest::GgufBuilder;

namespace {

// Writes bytes to a fresh file in a temporary folder.
class TempFile {
public:
    explicit TempFile(const std::string& bytes, const char* name = "t.gguf")
    {
        m_path = std::filesystem::path(m_dir.path().toStdString()) / name;
        std::ofstream out(m_path, std::ios::binary);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    const std::filesystem::path& path() const { return m_path; }

private:
    QTemporaryDir m_dir;
    std::filesystem::path m_path;
};

std::shared_ptr<qs::Model> load(const std::string& bytes)
{
    TempFile f(bytes);
    return qs::loadGguf(f.path(), nullptr);
}

struct Outcome {
    bool threw = false;
    bool formatError = false;
    std::string code, field, what;
    std::optional<uint64_t> offset;
};

Outcome tryLoad(const std::string& bytes)
{
    Outcome o;
    try {
        load(bytes);
    } catch (const qs::FormatError& e) {
        o.threw = o.formatError = true;
        o.code = qs::errorCodeName(e.code());
        o.field = e.field();
        o.offset = e.offset();
        o.what = e.what();
    } catch (const qs::Error& e) {
        o.threw = true;
        o.code = qs::errorCodeName(e.code());
        o.what = e.what();
    }
    return o;
}

// A small valid model: a few metadata types, a vocabulary, three tensors of different types.
GgufBuilder smallModel()
{
    GgufBuilder b;
    b.kv("general.architecture", B::vStr("llama"))
        .kv("llama.block_count", B::vU32(1))
        .kv("llama.embedding_length", B::vU32(64))
        .kv("llama.attention.head_count", B::vU32(4))
        .kv("tokenizer.ggml.tokens", B::vStrings({"<unk>", "a", "b", "c"}));
    b.tensor("token_embd.weight", {64, 4}, 0, 64 * 4 * 4);   // F32
    b.tensor("blk.0.attn_q.weight", {64, 64}, 1, 64 * 64 * 2); // F16
    b.tensor("blk.0.ffn_down.weight", {256, 2}, 12, 2 * 144);  // Q4_K
    return b;
}

QString s(const std::string& v) { return QString::fromStdString(v); }

} // namespace

#define EXPECT_ERROR(bytes, expCode, expField, expOffset)                                                   \
    do {                                                                                                     \
        const Outcome o_ = tryLoad(bytes);                                                                   \
        QVERIFY2(o_.formatError, ("expected a FormatError, got: " + (o_.threw ? o_.what : "none")).c_str()); \
        QCOMPARE(s(o_.code), QStringLiteral(expCode));                                                       \
        QCOMPARE(s(o_.field), QString(expField));                                                            \
        QCOMPARE(o_.offset, std::optional<uint64_t>(expOffset));                                             \
    } while (0)

class TestGguf : public QObject {
    Q_OBJECT
private slots:
    void stories260K()
    {
        const auto model = qs::loadGguf(QS_SAMPLE_DIR "/stories260K/stories260K.gguf", nullptr);
        QCOMPARE(model->format(), qs::ModelFormat::Gguf);
        QCOMPARE(model->tensors().size(), size_t(48)); // 3 + 5 blocks x 9
        const auto* embd = model->find("token_embd.weight");
        QVERIFY(embd);
        QCOMPARE(embd->shape, (std::vector<uint64_t>{512, 64}));
        QCOMPARE(embd->dtype, qs::DType::F32);
        QCOMPARE(embd->bytes, uint64_t(512 * 64 * 4));
        const auto* k = model->find("blk.3.attn_k.weight");
        QVERIFY(k);
        QCOMPARE(k->shape, (std::vector<uint64_t>{32, 64})); // 4 kv heads x 8
        const auto* down = model->find("blk.4.ffn_down.weight");
        QVERIFY(down);
        QCOMPARE(down->shape, (std::vector<uint64_t>{64, 172}));
        QCOMPARE(model->find("output_norm.weight")->shape, (std::vector<uint64_t>{64}));
        QCOMPARE(model->parameterCount(), uint64_t(292800));

        const auto& c = model->config();
        QCOMPARE(c.architecture, std::string("llama"));
        QCOMPARE(c.layers, 5u);
        QCOMPARE(c.hiddenSize, 64u);
        QCOMPARE(c.intermediateSize, 172u);
        QCOMPARE(c.heads, 8u);
        QCOMPARE(c.kvHeads, 4u);
        QCOMPARE(c.headDim, 8u);
        QCOMPARE(c.vocabSize, 512u);
        QCOMPARE(c.contextLength, uint64_t(2048));
        QVERIFY(!c.tiedEmbeddings); // has output.weight
        QCOMPARE(c.slidingWindow, 0u);

        const auto& meta = model->metadata();
        QCOMPARE(meta.at("general.name").toString(), std::string("llama"));
        QCOMPARE(std::get<uint64_t>(meta.at("tokenizer.ggml.eos_token_id").value), uint64_t(2));
        QCOMPARE(std::get<qs::MetaArray>(meta.at("tokenizer.ggml.scores").value).size(), size_t(512));
        QCOMPARE(std::get<std::string>(std::get<qs::MetaArray>(meta.at("tokenizer.ggml.tokens").value)[0].value),
                 std::string("<unk>"));
        QVERIFY(std::abs(std::get<double>(meta.at("llama.attention.layer_norm_rms_epsilon").value) - 1e-5) < 1e-9);

        // The first embedding value, read independently of the loader: the data offset is the last field
        // of the first tensor info, relative to the 32-aligned end of the header.
        std::vector<float> row(64);
        model->decodeRows(*embd, 0, 1, row.data());
        QFile f(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
        QVERIFY(f.open(QIODevice::ReadOnly));
        QVERIFY(f.seek(static_cast<qint64>(embd->offset)));
        const QByteArray raw = f.read(64 * 4);
        QCOMPARE(std::memcmp(raw.constData(), row.data(), raw.size()), 0);
        QCOMPARE(embd->offset % 32, uint64_t(0));
    }

    void referenceQuants()
    {
        const auto model = qs::loadGguf(QS_TEST_DATA "/reference/ggml-quants.gguf", nullptr);
        QCOMPARE(model->config().architecture, std::string("reference"));
        QCOMPARE(std::get<uint64_t>(model->metadata().at("reference.ncol").value), uint64_t(2048));
        const auto* q4k = model->find("gauss.q4_K");
        QVERIFY(q4k);
        QCOMPARE(q4k->dtype, qs::DType::Q4_K);
        QCOMPARE(q4k->shape, (std::vector<uint64_t>{8, 2048}));
        QCOMPARE(q4k->bytes, uint64_t(9216));

        // Every row of ggml's own error table names a tensor with its stored size.
        QFile table(QS_TEST_DATA "/reference/ggml-quants-error-table.txt");
        QVERIFY(table.open(QIODevice::ReadOnly | QIODevice::Text));
        int rows = 0;
        while (!table.atEnd()) {
            const QString line = QString::fromUtf8(table.readLine()).simplified();
            if (line.isEmpty() || line.startsWith(QLatin1String("wrote "))) // trailing note
                continue;
            // "gauss q4_K imx=0 bytes= 9216 bpw=4.5000 ..."
            const QStringList parts = line.split(' ');
            QVERIFY2(parts.size() >= 5, qPrintable(line));
            const QString dist = parts[0], type = parts[1];
            const bool imx = parts[2] == QLatin1String("imx=1");
            const int bytesAt = parts.indexOf(QStringLiteral("bytes="));
            QVERIFY2(bytesAt > 0, qPrintable(line));
            const uint64_t bytes = parts[bytesAt + 1].toULongLong();
            const std::string name = (dist + '.' + type + (imx ? ".imx" : "")).toStdString();
            const auto* t = model->find(name);
            QVERIFY2(t, name.c_str());
            QCOMPARE(t->bytes, bytes);
            const auto dtype = qs::dtypeFromName(type.toStdString());
            QVERIFY2(dtype, qPrintable(type));
            QCOMPARE(qs::dtypeName(t->dtype), qs::dtypeName(*dtype));
            QCOMPARE(t->shape, (std::vector<uint64_t>{8, 2048}));
            // The dequantized reference beside it is F32 of the same shape.
            if (!imx) {
                const auto* deq = model->find(name + ".deq");
                QVERIFY2(deq, name.c_str());
                QCOMPARE(deq->dtype, qs::DType::F32);
                QCOMPARE(deq->bytes, uint64_t(8 * 2048 * 4));
            }
            ++rows;
        }
        QCOMPARE(rows, 130);
        // Tensors are laid out in the file without overlap.
        std::vector<std::pair<uint64_t, uint64_t>> spans;
        for (const auto& t : model->tensors())
            spans.emplace_back(t.offset, t.offset + t.bytes);
        std::sort(spans.begin(), spans.end());
        for (size_t i = 1; i < spans.size(); ++i)
            QVERIFY(spans[i - 1].second <= spans[i].first);
        QVERIFY(spans.back().second <= model->files()[0]->size());
        QCOMPARE(model->tensors().size(), size_t(215));
    }

    void builtModelRoundTrip()
    {
        auto b = smallModel();
        b.kv("u8", B::vU8(200)).kv("i8", B::vI8(-100)).kv("u16", B::vU16(65000)).kv("i16", B::vI16(-30000))
            .kv("i32", B::vI32(-2000000000)).kv("u64", B::vU64(0xFFFFFFFFFFFFFFFFull))
            .kv("i64", B::vI64(-(int64_t(1) << 62))).kv("f32", B::vF32(0.25f)).kv("f64", B::vF64(-1.5e300))
            .kv("yes", B::vBool(true)).kv("no", B::vBool(false)).kv("empty", B::vStr(""))
            .kv("nested", B::vArray(B::Array, {B::arrayPayload(B::I32, {B::le<int32_t>(-1), B::le<int32_t>(7)}),
                                               B::arrayPayload(B::String, {B::str("x")})}))
            .kv("none", B::vArray(B::F32, {}));
        const auto model = load(b.build());
        const auto& m = model->metadata();
        QCOMPARE(m.size(), size_t(19));
        QCOMPARE(std::get<uint64_t>(m.at("u8").value), uint64_t(200));
        QCOMPARE(std::get<int64_t>(m.at("i8").value), int64_t(-100));
        QCOMPARE(std::get<uint64_t>(m.at("u16").value), uint64_t(65000));
        QCOMPARE(std::get<int64_t>(m.at("i16").value), int64_t(-30000));
        QCOMPARE(std::get<int64_t>(m.at("i32").value), int64_t(-2000000000));
        QCOMPARE(std::get<uint64_t>(m.at("u64").value), uint64_t(0xFFFFFFFFFFFFFFFFull));
        QCOMPARE(std::get<int64_t>(m.at("i64").value), -(int64_t(1) << 62));
        QCOMPARE(std::get<double>(m.at("f32").value), 0.25);
        QCOMPARE(std::get<double>(m.at("f64").value), -1.5e300);
        QCOMPARE(std::get<bool>(m.at("yes").value), true);
        QCOMPARE(std::get<bool>(m.at("no").value), false);
        QCOMPARE(std::get<std::string>(m.at("empty").value), std::string());
        const auto& nested = std::get<qs::MetaArray>(m.at("nested").value);
        QCOMPARE(nested.size(), size_t(2));
        QCOMPARE(std::get<int64_t>(std::get<qs::MetaArray>(nested[0].value)[1].value), int64_t(7));
        QCOMPARE(std::get<std::string>(std::get<qs::MetaArray>(nested[1].value)[0].value), std::string("x"));
        QVERIFY(std::get<qs::MetaArray>(m.at("none").value).empty());

        QCOMPARE(model->tensors().size(), size_t(3));
        const auto& t = model->tensors();
        QCOMPARE(t[0].shape, (std::vector<uint64_t>{4, 64}));
        QCOMPARE(t[1].dtype, qs::DType::F16);
        QCOMPARE(t[2].dtype, qs::DType::Q4_K);
        QCOMPARE(t[2].shape, (std::vector<uint64_t>{2, 256}));
        QCOMPARE(t[2].bytes, uint64_t(288));
        for (size_t i = 0; i < 3; ++i) {
            QCOMPARE(t[i].offset, b.layout.dataStart + (i == 0 ? 0 : i == 1 ? 1024 : 1024 + 8192));
            const auto raw = model->rawData(t[i]);
            QCOMPARE(std::string(reinterpret_cast<const char*>(raw.data()), raw.size()), b.tensors[i].data);
        }
        const auto& c = model->config();
        QCOMPARE(c.architecture, std::string("llama"));
        QCOMPARE(c.layers, 1u);
        QCOMPARE(c.heads, 4u);
        QCOMPARE(c.kvHeads, 4u); // head_count_kv absent: no GQA
        QCOMPARE(c.headDim, 16u);
        QCOMPARE(c.vocabSize, 4u);
        QVERIFY(c.tiedEmbeddings); // token_embd without output.weight
    }

    // Every proper prefix of a valid file is rejected as truncated, naming where it stopped.
    void truncatedAtEveryByte()
    {
        auto b = smallModel();
        const std::string full = b.build();
        QVERIFY(load(full));
        for (size_t n = 0; n < full.size(); ++n) {
            const Outcome o = tryLoad(full.substr(0, n));
            QVERIFY2(o.formatError, qPrintable(QStringLiteral("prefix %1: %2").arg(n).arg(s(o.what))));
            QVERIFY2(o.code == "truncated", qPrintable(QStringLiteral("prefix %1: %2").arg(n).arg(s(o.what))));
            QVERIFY(o.offset.has_value());
            QVERIFY(!o.field.empty());
            if (n < b.layout.headerEnd)
                QVERIFY2(*o.offset <= n, qPrintable(QStringLiteral("prefix %1: %2").arg(n).arg(s(o.what))));
        }
        // Specific sections.
        EXPECT_ERROR(full.substr(0, 3), "truncated", "magic", 0);
        EXPECT_ERROR(full.substr(0, 6), "truncated", "version", 4);
        EXPECT_ERROR(full.substr(0, 12), "truncated", "tensor_count", 8);
        EXPECT_ERROR(full.substr(0, 20), "truncated", "kv_count", 16);
        // Cut inside the vocabulary's third string: its length field says more than remains.
        const size_t vocab = b.layout.kvValue[4];
        const size_t third = vocab + 4 + 8 + (8 + 5) + (8 + 1) + (8 + 1); // item type, count, 3 strings
        EXPECT_ERROR(full.substr(0, third + 8), "truncated", "value of 'tokenizer.ggml.tokens'", third);
        // Cut inside the last tensor's data.
        EXPECT_ERROR(full.substr(0, full.size() - 1), "truncated", "offset of 'blk.0.ffn_down.weight'",
                     b.layout.tensorOffset[2]);
    }

    void badMagic()
    {
        auto b = smallModel();
        b.magic = "GGUG";
        EXPECT_ERROR(b.build(), "bad-magic", "magic", 0);
        b.magic = std::string("\0\0\0\0", 4);
        EXPECT_ERROR(b.build(), "bad-magic", "magic", 0);
        // Through openModel (detected by extension, rejected by magic).
        TempFile f(b.build(), "bad.gguf");
        QVERIFY_THROWS_EXCEPTION(qs::FormatError, qs::openModel(f.path()));
    }
};

QTEST_APPLESS_MAIN(TestGguf)
#include "tst_gguf.moc"
