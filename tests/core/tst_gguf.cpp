// GGUF loader: real files (the sample model, ggml's reference vectors), files built by an independent
// writer (tests/core/gguf_builder.h), and hostile files, each asserting the error code, field and offset.
#include "core/gguf_builder.h"
#include "core/io/gguf.h"
#include "core/model/model.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QFile>
#include <QTemporaryDir>
#include <QTest>
#include <fstream>
#include <map>
#include <sstream>

using qstest::GgufBuilder;
using B = qstest::GgufBuilder;

namespace {

// Writes bytes to a fresh file in a temporary folder shared by the whole test run.
class TempFile {
public:
    explicit TempFile(const std::string& bytes, const char* name = "t.gguf")
    {
        static QTemporaryDir dir;
        static int counter = 0;
        m_path = std::filesystem::path(dir.path().toStdString()) / (std::to_string(++counter) + "-" + name);
        std::ofstream out(m_path, std::ios::binary);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    ~TempFile() { std::filesystem::remove(m_path); } // a live map survives the unlink
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    const std::filesystem::path& path() const { return m_path; }

private:
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
    b.tensor("token_embd.weight", {64, 4}, 0, 64 * 4 * 4);     // F32
    b.tensor("blk.0.attn_q.weight", {64, 64}, 1, 64 * 64 * 2); // F16
    b.tensor("blk.0.ffn_down.weight", {256, 2}, 12, 2 * 144);  // Q4_K
    return b;
}

QString s(const std::string& v)
{
    return QString::fromStdString(v);
}

} // namespace

#define EXPECT_ERROR(bytes, expCode, expField, expOffset)                                                    \
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
        QCOMPARE(meta.at("tokenizer.ggml.scores").arraySize(), size_t(512));
        QVERIFY(std::holds_alternative<qs::MetaNumbers>(meta.at("tokenizer.ggml.scores").value)); // packed
        QCOMPARE(
            std::get<std::string>(std::get<qs::MetaArray>(meta.at("tokenizer.ggml.tokens").value)[0].value),
            std::string("<unk>"));
        QVERIFY(std::abs(std::get<double>(meta.at("llama.attention.layer_norm_rms_epsilon").value) - 1e-5) <
                1e-9);

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
        b.kv("u8", B::vU8(200))
            .kv("i8", B::vI8(-100))
            .kv("u16", B::vU16(65000))
            .kv("i16", B::vI16(-30000))
            .kv("i32", B::vI32(-2000000000))
            .kv("u64", B::vU64(0xFFFFFFFFFFFFFFFFull))
            .kv("i64", B::vI64(-(int64_t(1) << 62)))
            .kv("f32", B::vF32(0.25f))
            .kv("f64", B::vF64(-1.5e300))
            .kv("yes", B::vBool(true))
            .kv("no", B::vBool(false))
            .kv("empty", B::vStr(""))
            .kv("nested",
                B::vArray(B::Array, {B::arrayPayload(B::I32, {B::le<int32_t>(-1), B::le<int32_t>(7)}),
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
        QCOMPARE(std::get<int64_t>(nested[0].item(1).value), int64_t(7));
        QCOMPARE(nested[0].toString(), std::string("[-1, 7]"));
        QCOMPARE(std::get<std::string>(std::get<qs::MetaArray>(nested[1].value)[0].value), std::string("x"));
        QVERIFY(m.at("none").isArray());
        QCOMPARE(m.at("none").arraySize(), size_t(0));

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
        for (auto& tensor : b.tensors) // small data so the loop is about the header
            tensor.ne.back() = 1;
        b.tensors[0].data.resize(64 * 4);
        b.tensors[1].data.resize(64 * 2);
        b.tensors[2].data.resize(144);
        const std::string full = b.build();
        QVERIFY(load(full));
        for (size_t n = 0; n < full.size(); ++n) {
            const Outcome o = tryLoad(full.substr(0, n));
            QVERIFY2(o.formatError, qPrintable(QStringLiteral("prefix %1: %2").arg(n).arg(s(o.what))));
            QVERIFY2(o.code == "truncated",
                     qPrintable(QStringLiteral("prefix %1: %2").arg(n).arg(s(o.what))));
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

    void versions()
    {
        auto b = smallModel();
        b.version = 2;
        QCOMPARE(load(b.build())->tensors().size(), size_t(3)); // v2 has the same layout as v3
        for (uint32_t v : {0u, 1u, 4u, 5u, 0xFFFFFFFFu}) {
            b.version = v;
            EXPECT_ERROR(b.build(), "bad-version", "version", 4);
        }
        b.version = 0x03000000; // a big-endian v3 file read as little-endian
        const Outcome o = tryLoad(b.build());
        QCOMPARE(s(o.code), QStringLiteral("bad-version"));
        QVERIFY2(o.what.find("big-endian") != std::string::npos, o.what.c_str());
    }

    void countsBeyondFile()
    {
        for (uint64_t n : {uint64_t(1) << 40, ~uint64_t(0), uint64_t(10000)}) {
            auto b = smallModel();
            b.tensorCount = n;
            EXPECT_ERROR(b.build(), "truncated", "tensor_count", 8);
            b = smallModel();
            b.kvCount = n;
            EXPECT_ERROR(b.build(), "truncated", "kv_count", 16);
        }
        // Counts that the file could hold by size but does not: reads run into the wrong section and fail
        // cleanly; here the extra "key" is the first tensor name and its "value type" is n_dims = 2.
        auto b = smallModel();
        b.kvCount = b.kvs.size() + 1;
        b.build();
        // n_dims = 2 reads as type u16 with a 2-byte value; the first tensor's name length then starts
        // 6 bytes into ne[] and is far too long.
        EXPECT_ERROR(b.build(), "truncated", "name of 'tensor 0'", b.layout.tensorNDims[0] + 6);
        // The metadata eats into the space the tensors need: caught after the metadata.
        b = smallModel();
        b.tensors.resize(1);
        b.tensorCount = 3;
        b.tensors[0].data.resize(16); // a file too short for three tensor infos after the metadata
        b.tensors[0].ne = {4};
        EXPECT_ERROR(b.build(), "truncated", "tensor_count", 8);
    }

    void lengthsBeyondFile()
    {
        auto b = smallModel();
        std::string bytes = b.build();
        // A key length beyond the file.
        auto patch = [](std::string bytes, uint64_t at, uint64_t value) {
            std::memcpy(bytes.data() + at, &value, 8);
            return bytes;
        };
        EXPECT_ERROR(patch(bytes, b.layout.kvStart[1], 1u << 20), "truncated", "key", b.layout.kvStart[1]);
        EXPECT_ERROR(patch(bytes, b.layout.kvStart[1], ~uint64_t(0)), "truncated", "key",
                     b.layout.kvStart[1]);
        // A string value length beyond the file.
        EXPECT_ERROR(patch(bytes, b.layout.kvValue[0], uint64_t(1) << 62), "truncated",
                     "value of 'general.architecture'", b.layout.kvValue[0]);
        // A tensor name length beyond the file.
        EXPECT_ERROR(patch(bytes, b.layout.tensorStart[1], bytes.size()), "truncated", "name of 'tensor 1'",
                     b.layout.tensorStart[1]);
        // Array lengths beyond the file, including ones whose byte size overflows 64 bits.
        const uint64_t countAt = b.layout.kvValue[4] + 4;
        for (uint64_t n : {uint64_t(100000), uint64_t(1) << 61, ~uint64_t(0)})
            EXPECT_ERROR(patch(bytes, countAt, n), "truncated", "array length of 'tokenizer.ggml.tokens'",
                         countAt);
        // An array of u64 whose count times 8 wraps around.
        b = smallModel();
        b.kv("big", B::vArray(B::U64, {B::le<uint64_t>(1)}));
        bytes = b.build();
        EXPECT_ERROR(patch(bytes, b.layout.kvValue[5] + 4, (uint64_t(1) << 61) + 1), "truncated",
                     "array length of 'big'", b.layout.kvValue[5] + 4);
        // A string inside an array longer than the file.
        b = smallModel();
        bytes = b.build();
        const uint64_t firstToken = b.layout.kvValue[4] + 12;
        EXPECT_ERROR(patch(bytes, firstToken, 1u << 30), "truncated", "value of 'tokenizer.ggml.tokens'",
                     firstToken);
    }

    // Each metadata value costs ~40 bytes in memory but may be one byte in the file; past 8 Mi values the
    // loader refuses rather than let a small file claim gigabytes.
    void metadataValueBudget()
    {
        auto b = smallModel();
        b.tensors.clear();
        b.kv("big", B::vArray(B::U8, {}));
        std::string bytes = b.build();
        const uint64_t countAt = b.layout.kvValue[5] + 4;
        const uint64_t n = (uint64_t(8) << 20) + 1;
        std::memcpy(bytes.data() + countAt, &n, 8);
        bytes.append(n, '\x01');
        EXPECT_ERROR(bytes, "unsupported", "array length of 'big'", countAt);
        // A million values (a large real vocabulary's tokens, scores and types) load.
        const uint64_t fits = uint64_t(1) << 20;
        std::memcpy(bytes.data() + countAt, &fits, 8);
        bytes.resize(bytes.size() - (n - fits));
        const auto model = load(bytes);
        const auto& big = model->metadata().at("big");
        QCOMPARE(big.arraySize(), size_t(fits));
        // Kept at one byte per item, as in the file (a MetaValue per item took 40 bytes: 40 MB here).
        QCOMPARE(std::get<qs::MetaNumbers>(big.value).bytes.size(), size_t(fits));
        QCOMPARE(std::get<uint64_t>(big.item(fits - 1).value), uint64_t(1));
    }

    // Arrays of numbers and bools are kept packed at their width in the file and read back item by item as
    // the scalars a single value of that type gives.
    void packedNumberArrays()
    {
        auto b = smallModel();
        b.kv("a_u8", B::vArray(B::U8, {B::le<uint8_t>(0), B::le<uint8_t>(255)}))
            .kv("a_i8", B::vArray(B::I8, {B::le<int8_t>(-128), B::le<int8_t>(127)}))
            .kv("a_u16", B::vArray(B::U16, {B::le<uint16_t>(65535)}))
            .kv("a_i16", B::vArray(B::I16, {B::le<int16_t>(-32768)}))
            .kv("a_u32", B::vArray(B::U32, {B::le<uint32_t>(4000000000u)}))
            .kv("a_i32", B::vArray(B::I32, {B::le<int32_t>(-7), B::le<int32_t>(9)}))
            .kv("a_u64", B::vArray(B::U64, {B::le<uint64_t>(~uint64_t(0))}))
            .kv("a_i64", B::vArray(B::I64, {B::le<int64_t>(INT64_MIN)}))
            .kv("a_f32", B::vArray(B::F32, {B::le<float>(-0.5f), B::le<float>(3.25f)}))
            .kv("a_f64", B::vArray(B::F64, {B::le<double>(1e-300)}))
            .kv("a_bool", B::vArray(B::Bool, {B::le<uint8_t>(1), B::le<uint8_t>(0)}));
        const auto model = load(b.build());
        const auto& m = model->metadata();
        auto item = [&](const char* key, size_t i) { return m.at(key).item(i).value; };
        QCOMPARE(std::get<uint64_t>(item("a_u8", 1)), uint64_t(255));
        QCOMPARE(std::get<int64_t>(item("a_i8", 0)), int64_t(-128));
        QCOMPARE(std::get<uint64_t>(item("a_u16", 0)), uint64_t(65535));
        QCOMPARE(std::get<int64_t>(item("a_i16", 0)), int64_t(-32768));
        QCOMPARE(std::get<uint64_t>(item("a_u32", 0)), uint64_t(4000000000u));
        QCOMPARE(std::get<int64_t>(item("a_i32", 0)), int64_t(-7));
        QCOMPARE(std::get<int64_t>(item("a_i32", 1)), int64_t(9));
        QCOMPARE(std::get<uint64_t>(item("a_u64", 0)), ~uint64_t(0));
        QCOMPARE(std::get<int64_t>(item("a_i64", 0)), int64_t(INT64_MIN));
        QCOMPARE(std::get<double>(item("a_f32", 1)), 3.25);
        QCOMPARE(std::get<double>(item("a_f64", 0)), 1e-300);
        QCOMPARE(std::get<bool>(item("a_bool", 0)), true);
        QCOMPARE(std::get<bool>(item("a_bool", 1)), false);
        QCOMPARE(m.at("a_i32").arraySize(), size_t(2));
        QCOMPARE(std::get<qs::MetaNumbers>(m.at("a_i32").value).bytes.size(), size_t(8)); // 4 bytes each
        QCOMPARE(m.at("a_f32").toString(), std::string("[-0.5, 3.25]"));
        QCOMPARE(m.at("a_bool").toString(), std::string("[true, false]"));
        // A bool item other than 0 or 1 is refused at its own byte.
        b = smallModel();
        b.kv("flags", B::vArray(B::Bool, {B::le<uint8_t>(0), B::le<uint8_t>(1), B::le<uint8_t>(2)}));
        b.build();
        EXPECT_ERROR(b.build(), "bad-value", "value of 'flags'", b.layout.kvValue[5] + 4 + 8 + 2);
    }

    // Counts the file could hold by size but no real model has: refused before anything is allocated.
    void countLimits()
    {
        auto b = smallModel();
        b.tensorCount = (uint64_t(1) << 20) + 1;
        std::string bytes = b.build();
        bytes.append(size_t(33) << 20, '\0'); // room for that many minimal tensor infos
        EXPECT_ERROR(bytes, "unsupported", "tensor_count", 8);
        b = smallModel();
        b.kvCount = (uint64_t(1) << 16) + 1;
        bytes = b.build();
        bytes.append(size_t(1) << 20, '\0');
        EXPECT_ERROR(bytes, "unsupported", "kv_count", 16);
    }

    void nestedArrays()
    {
        // Three levels are accepted: [[[1]]].
        const std::string level3 = B::arrayPayload(B::I32, {B::le<int32_t>(1)});
        const std::string level2 = B::arrayPayload(B::Array, {level3});
        auto b = smallModel();
        b.kv("deep", B::vArray(B::Array, {level2}));
        auto model = load(b.build());
        const auto& outer = std::get<qs::MetaArray>(model->metadata().at("deep").value);
        const auto& mid = std::get<qs::MetaArray>(outer.at(0).value);
        const auto& inner = mid.at(0);
        QCOMPARE(inner.arraySize(), size_t(1));
        QCOMPARE(std::get<int64_t>(inner.item(0).value), int64_t(1));
        // A fourth level is rejected where its item type starts.
        const std::string level4 = B::arrayPayload(B::Array, {B::arrayPayload(B::Array, {level3})});
        b = smallModel();
        b.kv("deeper", B::vArray(B::Array, {level4}));
        b.build();
        // value: type(4) | outer item type(4) count(8) | level2 item type(4) count(8) | level3 item type(4)
        // count(8) | level4 array payload starts here
        const uint64_t at = b.layout.kvValue[5] + 12 + 12 + 12;
        EXPECT_ERROR(b.build(), "bad-value", "array type of 'deeper'", at);
        // A billion nested empty arrays do not fit in the file.
        b = smallModel();
        b.kv("many", B::vArray(B::Array, {B::arrayPayload(B::U8, {})}));
        std::string bytes = b.build();
        const uint64_t n = 1000000000;
        std::memcpy(bytes.data() + b.layout.kvValue[5] + 4, &n, 8);
        EXPECT_ERROR(bytes, "truncated", "array length of 'many'", b.layout.kvValue[5] + 4);
    }

    void unknownValueType()
    {
        auto b = smallModel();
        b.kv("odd", B::le<uint32_t>(13) + B::le<uint32_t>(0));
        b.build();
        EXPECT_ERROR(b.build(), "bad-value", "value type of 'odd'", b.layout.kvType[5]);
        b = smallModel();
        b.kv("odd", B::le<uint32_t>(0x80000000u));
        EXPECT_ERROR(b.build(), "bad-value", "value type of 'odd'", b.layout.kvType[5]);
        b = smallModel();
        b.kv("oddarray", B::vArray(77, {}));
        EXPECT_ERROR(b.build(), "bad-value", "array type of 'oddarray'", b.layout.kvValue[5]);
        b = smallModel();
        b.kv("flag", B::le<uint32_t>(B::Bool) + B::le<uint8_t>(2));
        EXPECT_ERROR(b.build(), "bad-value", "value of 'flag'", b.layout.kvValue[5]);
    }

    void keys()
    {
        auto b = smallModel();
        b.kv("llama.block_count", B::vU32(2));
        EXPECT_ERROR(b.build(), "bad-value", "key", b.layout.kvStart[5]);
        b = smallModel();
        b.kv("", B::vU32(2));
        EXPECT_ERROR(b.build(), "bad-value", "key", b.layout.kvStart[5]);
        // Architecture keys of the wrong kind are named with their offset.
        b = smallModel();
        b.kvs[1].value = B::vStr("five");
        EXPECT_ERROR(b.build(), "bad-value", "llama.block_count", b.layout.kvStart[1]);
        b = smallModel();
        b.kvs[3].value = B::vI32(-4);
        EXPECT_ERROR(b.build(), "bad-value", "llama.attention.head_count", b.layout.kvStart[3]);
        b = smallModel();
        b.kvs[0].value = B::vU32(1);
        EXPECT_ERROR(b.build(), "bad-value", "general.architecture", b.layout.kvStart[0]);
    }

    void tensorTypes()
    {
        // Ids that ggml never assigned or that are beyond the table: rejected, naming the tensor.
        for (uint32_t id : {4u, 5u, 31u, 99u, 0xFFFFFFFFu}) {
            auto b = smallModel();
            b.tensors[1].type = id;
            const std::string bytes = b.build();
            EXPECT_ERROR(bytes, "unsupported", "type of 'blk.0.attn_q.weight'", b.layout.tensorType[1]);
            QVERIFY(tryLoad(bytes).what.find(std::to_string(id)) != std::string::npos);
        }
        // Every type in the table loads with the right size; those we cannot decode say so when decoded.
        int undecodable = 0;
        for (int i = 0; i < static_cast<int>(qs::DType::Count); ++i) {
            const auto& info = qs::dtypeInfo(static_cast<qs::DType>(i));
            if (info.ggmlType < 0)
                continue;
            GgufBuilder b;
            const uint64_t rowBlocks = 2, rows = 3;
            b.tensor("w", {rowBlocks * info.blockElements, rows}, static_cast<uint32_t>(info.ggmlType),
                     rowBlocks * rows * info.blockBytes);
            const auto model = load(b.build());
            const auto& t = model->tensors().at(0);
            QCOMPARE(qs::dtypeName(t.dtype), info.name);
            QCOMPARE(t.dtype, info.type);
            QCOMPARE(t.bytes, rowBlocks * rows * info.blockBytes);
            QCOMPARE(t.shape, (std::vector<uint64_t>{rows, rowBlocks * info.blockElements}));
            if (!info.decodable) {
                ++undecodable;
                std::vector<float> out(t.elements());
                try {
                    model->decode(t, 0, t.elements(), out.data());
                    QFAIL(info.name);
                } catch (const qs::Error& e) {
                    QCOMPARE(e.code(), qs::ErrorCode::Unsupported);
                }
            }
        }
        QVERIFY(undecodable > 0); // e.g. the IQ2/IQ3 grids and TQ types
    }

    void dims()
    {
        auto b = smallModel();
        b.tensors[0].ne = {64, 2, 1, 1, 2};
        b.tensors[0].data.resize(64 * 4 * 4);
        EXPECT_ERROR(b.build(), "bad-value", "n_dims of 'token_embd.weight'", b.layout.tensorNDims[0]);
        b = smallModel();
        b.tensors[0].nDims = 0;
        b.tensors[0].ne = {};
        EXPECT_ERROR(b.build(), "bad-value", "n_dims of 'token_embd.weight'", b.layout.tensorNDims[0]);
        b = smallModel();
        b.tensors[2].nDims = 1000000;
        EXPECT_ERROR(b.build(), "bad-value", "n_dims of 'blk.0.ffn_down.weight'", b.layout.tensorNDims[2]);
        // Four dimensions are fine: shape is reversed.
        b = smallModel();
        b.tensors[0].ne = {64, 2, 1, 2};
        QCOMPARE(load(b.build())->tensors()[0].shape, (std::vector<uint64_t>{2, 1, 2, 64}));
        // A zero dimension.
        b = smallModel();
        b.tensors[1].ne = {64, 0};
        EXPECT_ERROR(b.build(), "bad-value", "ne of 'blk.0.attn_q.weight'", b.layout.tensorNe[1] + 8);
        // Element counts that overflow 64 bits, or ggml's signed 64-bit counts.
        b = smallModel();
        b.tensors[1].ne = {uint64_t(1) << 32, uint64_t(1) << 32};
        EXPECT_ERROR(b.build(), "overflow", "ne of 'blk.0.attn_q.weight'", b.layout.tensorNe[1] + 8);
        b = smallModel();
        b.tensors[1].ne = {uint64_t(1) << 63};
        EXPECT_ERROR(b.build(), "overflow", "ne of 'blk.0.attn_q.weight'", b.layout.tensorNe[1]);
        // Elements fit, bytes do not (2^62 F32 values).
        b = smallModel();
        b.tensors[0].ne = {uint64_t(1) << 31, uint64_t(1) << 31};
        EXPECT_ERROR(b.build(), "overflow", "ne of 'token_embd.weight'", b.layout.tensorNe[0]);
        // A row that is not a whole number of blocks.
        b = smallModel();
        b.tensors[2].ne = {128, 4};
        EXPECT_ERROR(b.build(), "bad-value", "ne of 'blk.0.ffn_down.weight'", b.layout.tensorNe[2]);
        // Empty tensor name.
        b = smallModel();
        b.tensors[1].name = "";
        EXPECT_ERROR(b.build(), "bad-value", "name of 'tensor 1'", b.layout.tensorStart[1]);
    }

    void alignment()
    {
        // A valid non-default alignment moves the data section and the offsets.
        auto b = smallModel();
        b.alignment = 256;
        b.kv("general.alignment", B::vU32(256));
        auto model = load(b.build());
        QCOMPARE(b.layout.dataStart % 256, uint64_t(0));
        for (size_t i = 0; i < 3; ++i) {
            QCOMPARE(model->tensors()[i].offset % 256, uint64_t(0));
            const auto raw = model->rawData(model->tensors()[i]);
            QCOMPARE(std::string(reinterpret_cast<const char*>(raw.data()), raw.size()), b.tensors[i].data);
        }
        b = smallModel();
        b.alignment = 1;
        b.kv("general.alignment", B::vU64(1));
        QVERIFY(load(b.build()));
        for (const std::string& bad : {B::vU32(0), B::vU32(48), B::vU32(3), B::vI32(-32),
                                       B::vU64(~uint64_t(0)), B::vStr("32"), B::vF32(32.0f)}) {
            b = smallModel();
            b.kv("general.alignment", bad);
            b.build();
            EXPECT_ERROR(b.build(), "bad-value", "value of 'general.alignment'", b.layout.kvValue[5]);
        }
    }

    void offsets()
    {
        // Misaligned.
        auto b = smallModel();
        b.tensors[1].offset = 1024 + 4;
        EXPECT_ERROR(b.build(), "bad-value", "offset of 'blk.0.attn_q.weight'", b.layout.tensorOffset[1]);
        // Overlapping: the same start, and a start inside the previous tensor.
        b = smallModel();
        b.tensors[2].offset = 1024;
        EXPECT_ERROR(b.build(), "bad-value", "offset of 'blk.0.ffn_down.weight'", b.layout.tensorOffset[2]);
        b = smallModel();
        b.tensors[2].offset = 1024 + 8192 - 32; // inside blk.0.attn_q.weight [1024, 9216)
        EXPECT_ERROR(b.build(), "bad-value", "offset of 'blk.0.ffn_down.weight'", b.layout.tensorOffset[2]);
        // Past the end of the file, and so far that the end overflows.
        b = smallModel();
        std::string bytes = b.build();
        uint64_t far = uint64_t(1) << 40;
        std::memcpy(bytes.data() + b.layout.tensorOffset[1], &far, 8);
        EXPECT_ERROR(bytes, "truncated", "offset of 'blk.0.attn_q.weight'", b.layout.tensorOffset[1]);
        far = ~uint64_t(31);
        std::memcpy(bytes.data() + b.layout.tensorOffset[1], &far, 8);
        EXPECT_ERROR(bytes, "overflow", "offset of 'blk.0.attn_q.weight'", b.layout.tensorOffset[1]);
        // Out-of-order but disjoint tensors and holes are fine.
        b = smallModel();
        b.tensors[0].offset = 1024 + 8192 + 288 + 32 * 5;
        b.tensors[1].offset = 0;
        b.tensors[2].offset = 8192 + 64;
        model_ok(b);
    }

    void duplicateTensorNames()
    {
        auto b = smallModel();
        b.tensors[2].name = "token_embd.weight";
        const Outcome o = tryLoad(b.build());
        EXPECT_ERROR(b.build(), "bad-value", "tensor name", b.layout.tensorStart[2]);
        QVERIFY(o.what.find("token_embd.weight") != std::string::npos);
    }

    void tensorNameLimits()
    {
        // Issue 14: names are capped at parse time (a 1 MB name made regex rules overflow the stack) and must
        // be UTF-8 (dump could not name them otherwise).
        auto b = smallModel();
        b.tensors[1].name = std::string(qs::kMaxTensorNameBytes + 1, 'a');
        EXPECT_ERROR(b.build(), "bad-value", "name of 'tensor 1'", b.layout.tensorStart[1]);
        QVERIFY(tryLoad(b.build()).what.find("1025 bytes exceeds the limit of 1024") != std::string::npos);
        b.tensors[1].name = std::string(qs::kMaxTensorNameBytes, 'a'); // at the limit: fine
        QVERIFY2(!tryLoad(b.build()).threw, tryLoad(b.build()).what.c_str());
        b.tensors[1].name = "blk.0.\xff\x1b[2J.weight";
        EXPECT_ERROR(b.build(), "bad-value", "name of 'tensor 1'", b.layout.tensorStart[1]);
        // The message shows the name with its bad bytes escaped, never raw.
        QVERIFY(tryLoad(b.build()).what.find("blk.0.\\xff\\x1b[2J.weight") != std::string::npos);
    }

    void noTensors()
    {
        // Metadata only: the file ends right after the header, there is no data section.
        auto b = smallModel();
        b.tensors.clear();
        const std::string bytes = b.build();
        QCOMPARE(bytes.size(), b.layout.headerEnd);
        const auto model = load(bytes);
        QVERIFY(model->tensors().empty());
        QCOMPARE(model->config().vocabSize, 4u);
        QVERIFY(!model->config().tiedEmbeddings);
    }

    void configKeys()
    {
        GgufBuilder b;
        b.kv("general.architecture", B::vStr("gemma3"))
            .kv("gemma3.block_count", B::vU32(6))
            .kv("gemma3.embedding_length", B::vU64(640))
            .kv("gemma3.feed_forward_length", B::vI32(2048))
            .kv("gemma3.attention.head_count", B::vU32(4))
            .kv("gemma3.attention.head_count_kv", B::vU32(1))
            .kv("gemma3.attention.key_length", B::vU32(256))
            .kv("gemma3.context_length", B::vU64(uint64_t(1) << 33))
            .kv("gemma3.attention.sliding_window", B::vU32(512))
            .kv("gemma3.attention.sliding_window_pattern", B::vU32(3))
            .kv("gemma3.vocab_size", B::vU32(262144));
        b.tensor("token_embd.weight", {32, 2}, 0, 256).tensor("output.weight", {32, 2}, 0, 256);
        auto c = load(b.build())->config();
        QCOMPARE(c.architecture, std::string("gemma3"));
        QCOMPARE(c.layers, 6u);
        QCOMPARE(c.hiddenSize, 640u);
        QCOMPARE(c.intermediateSize, 2048u);
        QCOMPARE(c.heads, 4u);
        QCOMPARE(c.kvHeads, 1u);
        QCOMPARE(c.headDim, 256u); // explicit, not 640 / 4
        QCOMPARE(c.contextLength, uint64_t(1) << 33);
        QCOMPARE(c.slidingWindow, 512u);
        QCOMPARE(c.slidingWindowLayers, (std::vector<uint32_t>{0, 1, 3, 4})); // every third layer is global
        QCOMPARE(c.vocabSize, 262144u); // no tokenizer array: {arch}.vocab_size
        QVERIFY(!c.tiedEmbeddings);

        // Mixture of experts, per-layer bool window pattern, vocabulary from the embedding shape.
        GgufBuilder m;
        m.kv("general.architecture", B::vStr("gpt-oss"))
            .kv("gpt-oss.block_count", B::vU32(3))
            .kv("gpt-oss.expert_count", B::vU32(32))
            .kv("gpt-oss.expert_used_count", B::vU32(4))
            .kv("gpt-oss.attention.sliding_window", B::vU32(128))
            .kv("gpt-oss.attention.sliding_window_pattern",
                B::vArray(B::Bool, {B::le<uint8_t>(1), B::le<uint8_t>(0), B::le<uint8_t>(1)}));
        m.tensor("token_embd.weight", {32, 5}, 0, 32 * 5 * 4);
        c = load(m.build())->config();
        QCOMPARE(c.experts, 32u);
        QCOMPARE(c.expertsUsed, 4u);
        QCOMPARE(c.slidingWindowLayers, (std::vector<uint32_t>{0, 2}));
        QCOMPARE(c.vocabSize, 5u);
        QVERIFY(c.tiedEmbeddings);
        QCOMPARE(c.kvHeads, 0u); // heads unknown
    }

    void cancelAndProgress()
    {
        auto b = smallModel();
        TempFile f(b.build());
        qs::JobControl cancelled;
        cancelled.cancel();
        QVERIFY_THROWS_EXCEPTION(qs::CancelledError, qs::loadGguf(f.path(), &cancelled));
        double last = -1;
        bool monotonic = true;
        qs::JobControl job([&](double fraction, const std::string&) {
            monotonic = monotonic && fraction >= last;
            last = fraction;
        });
        QVERIFY(qs::loadGguf(f.path(), &job));
        QVERIFY(monotonic);
        QCOMPARE(last, 1.0);
    }

private:
    void model_ok(GgufBuilder& b)
    {
        const std::string bytes = b.build();
        const Outcome o = tryLoad(bytes);
        QVERIFY2(!o.threw, o.what.c_str());
        const auto model = load(bytes);
        for (size_t i = 0; i < b.tensors.size(); ++i) {
            const auto raw = model->rawData(model->tensors()[i]);
            QCOMPARE(std::string(reinterpret_cast<const char*>(raw.data()), raw.size()), b.tensors[i].data);
        }
    }
};

QTEST_APPLESS_MAIN(TestGguf)
#include "tst_gguf.moc"
