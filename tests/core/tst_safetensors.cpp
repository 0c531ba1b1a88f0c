// safetensors loader: the bundled sample (single F32 file, sharded BF16 copy), the PP-OCR weights, every
// dtype, and every kind of hostile header built here with a small writer.
#include "core/io/gguf.h"
#include "core/io/safetensors.h"
#include "core/model/model.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QFile>
#include <QTemporaryDir>
#include <QTest>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>

using qs::ErrorCode;
namespace fs = std::filesystem;

namespace {

const fs::path kSample = fs::path(QS_SAMPLE_DIR) / "stories260K";

QByteArray le64(quint64 v)
{
    QByteArray b(8, '\0');
    for (int i = 0; i < 8; ++i)
        b[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
    return b;
}

// A safetensors file: 8-byte length, the header text as given, then `data`.
QByteArray stFile(const QByteArray& header, const QByteArray& data = {})
{
    return le64(static_cast<quint64>(header.size())) + header + data;
}

// Header text for one tensor entry.
QByteArray entry(const char* name, const char* dtype, const char* shape, quint64 begin, quint64 end)
{
    return QByteArray("\"") + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
           ",\"data_offsets\":[" + QByteArray::number(begin) + "," + QByteArray::number(end) + "]}";
}

void writeFile(const QString& path, const QByteArray& bytes)
{
    QFile f(path);
    QVERIFY2(f.open(QIODevice::WriteOnly), qPrintable(path));
    QCOMPARE(f.write(bytes), bytes.size());
}

QByteArray readFile(const fs::path& path)
{
    QFile f(QString::fromStdString(path.string()));
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll();
}

float f32At(const QByteArray& bytes, qint64 offset)
{
    float v;
    std::memcpy(&v, bytes.constData() + offset, 4);
    return v;
}

quint16 u16At(const QByteArray& bytes, qint64 offset)
{
    quint16 v;
    std::memcpy(&v, bytes.constData() + offset, 2);
    return v;
}

struct Failure {
    bool thrown = false;
    bool formatError = false;
    ErrorCode code = ErrorCode::Internal;
    std::string field;
    std::optional<uint64_t> offset;
    std::string message;
    std::string file;
};

Failure loadFailure(const fs::path& path)
{
    Failure f;
    try {
        qs::loadSafetensors(path, nullptr);
    } catch (const qs::FormatError& e) {
        f = {true, true, e.code(), e.field(), e.offset(), e.what(), e.file()};
    } catch (const qs::Error& e) {
        f = {true, false, e.code(), {}, {}, e.what(), {}};
    }
    return f;
}

} // namespace

class TestSafetensors : public QObject {
    Q_OBJECT
private slots:
    void sampleF32()
    {
        const fs::path file = kSample / "hf-f32" / "model.safetensors";
        const auto model = qs::loadSafetensors(file, nullptr);
        QCOMPARE(model->format(), qs::ModelFormat::Safetensors);
        QCOMPARE(model->tensors().size(), size_t(48));
        QCOMPARE(model->files().size(), size_t(1));
        QCOMPARE(model->metadata().at("format").toString(), std::string("pt"));
        QCOMPARE(model->parameterCount(), quint64((1176152 - 8 - 4944) / 4));
        QCOMPARE(model->totalBytes(), quint64(1176152 - 8 - 4944));

        const auto* norm = model->find("model.norm.weight");
        QVERIFY(norm);
        QCOMPARE(norm->shape, std::vector<uint64_t>{64});
        QCOMPARE(norm->dtype, qs::DType::F32);
        QCOMPARE(norm->bytes, quint64(256));
        QCOMPARE(norm->offset, quint64(8 + 4944 + 131072));
        // Tensors come in data order.
        QCOMPARE(model->tensors()[0].name, std::string("model.embed_tokens.weight"));
        QCOMPARE(model->tensors()[1].name, std::string("model.norm.weight"));

        // Values against the raw bytes read independently and against figures printed by Python's struct.
        const QByteArray raw = readFile(file);
        std::vector<float> values(64);
        model->decode(*norm, 0, 64, values.data());
        for (int i = 0; i < 64; ++i)
            QCOMPARE(values[i], f32At(raw, 136024 + 4 * i));
        QCOMPARE(values[0], 2.4583089351654053f);
        QCOMPARE(values[5], 4.425094127655029f);

        const auto* q = model->find("model.layers.0.self_attn.q_proj.weight");
        QVERIFY(q);
        QCOMPARE(q->shape, (std::vector<uint64_t>{64, 64}));
        std::vector<float> row(64);
        model->decodeRows(*q, 0, 1, row.data());
        QCOMPARE(row[0], 0.04439278692007065f);
        QCOMPARE(row[1], 0.07974770665168762f);
        QCOMPARE(row[2], -0.008925346657633781f);
        const auto* k = model->find("model.layers.0.self_attn.k_proj.weight");
        QCOMPARE(k->shape, (std::vector<uint64_t>{32, 64}));

        // config.json beside the weights.
        QVERIFY(!model->metadata().count("config_error"));
        const auto& c = model->config();
        QCOMPARE(c.architecture, std::string("llama"));
        QCOMPARE(c.layers, 5u);
        QCOMPARE(c.hiddenSize, 64u);
        QCOMPARE(c.kvHeads, 4u);
        QCOMPARE(c.headDim, 8u);
        QCOMPARE(c.vocabSize, 512u);
        QCOMPARE(model->find("model.layers.3.mlp.up_proj.weight")->role.role, qs::TensorRole::MlpUp);
        QCOMPARE(model->find("model.layers.3.mlp.up_proj.weight")->role.block, 3);
    }

    void sameValuesAsGguf()
    {
        // The GGUF of the same model: norms and V agree element for element; llama.cpp stores Q and K in
        // Meta's interleaved-rope row order, HF in halves per head: GGUF row h*d + 2i + j = HF row h*d +
        // j*d/2 + i.
        const auto hf = qs::loadSafetensors(kSample / "hf-f32" / "model.safetensors", nullptr);
        const auto gguf = qs::loadGguf(kSample / "stories260K.gguf", nullptr);
        auto values = [](const qs::Model& m, const char* name) {
            const auto* t = m.find(name);
            if (!t)
                return std::vector<float>();
            std::vector<float> v(t->elements());
            m.decode(*t, 0, v.size(), v.data());
            return v;
        };
        QCOMPARE(values(*hf, "model.norm.weight"), values(*gguf, "output_norm.weight"));
        QCOMPARE(values(*hf, "model.layers.2.self_attn.v_proj.weight"), values(*gguf, "blk.2.attn_v.weight"));
        QCOMPARE(values(*hf, "model.layers.4.mlp.down_proj.weight"), values(*gguf, "blk.4.ffn_down.weight"));
        QCOMPARE(values(*hf, "model.embed_tokens.weight"), values(*gguf, "token_embd.weight"));
        const auto* gq = gguf->find("blk.1.attn_q.weight");
        QVERIFY(gq);
        QCOMPARE(gq->shape, (std::vector<uint64_t>{64, 64}));
        const auto hq = values(*hf, "model.layers.1.self_attn.q_proj.weight");
        const auto gqv = values(*gguf, "blk.1.attn_q.weight");
        const int d = 8, cols = 64;
        for (int h = 0; h < 8; ++h)
            for (int i = 0; i < d / 2; ++i)
                for (int j = 0; j < 2; ++j)
                    for (int c = 0; c < cols; ++c)
                        QCOMPARE(gqv[(h * d + 2 * i + j) * cols + c], hq[(h * d + j * d / 2 + i) * cols + c]);
        QVERIFY(hq != gqv); // the permutation is real
    }

    void shardedMatchesF32AfterBf16Rounding()
    {
        const auto f32 = qs::loadSafetensors(kSample / "hf-f32" / "model.safetensors", nullptr);
        const auto bf16 = qs::loadSafetensors(kSample / "hf-bf16-sharded", nullptr);
        QCOMPARE(bf16->tensors().size(), f32->tensors().size());
        for (const char* name :
             {"model.norm.weight", "model.layers.0.self_attn.q_proj.weight",
              "model.layers.2.self_attn.v_proj.weight", "model.layers.4.mlp.down_proj.weight"}) {
            const auto* a = f32->find(name);
            const auto* b = bf16->find(name);
            QVERIFY2(a && b, name);
            QCOMPARE(b->dtype, qs::DType::BF16);
            QCOMPARE(b->shape, a->shape);
            const auto n = a->elements();
            std::vector<float> va(n), vb(n);
            f32->decode(*a, 0, n, va.data());
            bf16->decode(*b, 0, n, vb.data());
            const auto rawB = bf16->rawData(*b);
            for (uint64_t i = 0; i < n; ++i) {
                const quint16 bits = qs::floatToBf16(va[i]);
                quint16 stored;
                std::memcpy(&stored, rawB.data() + 2 * i, 2);
                QCOMPARE(stored, bits);
                QCOMPARE(vb[i], qs::bf16ToFloat(bits));
            }
        }
        // Two shards, one per file, and the norm is in the first one (raw bytes read independently).
        const auto* norm = bf16->find("model.norm.weight");
        QCOMPARE(bf16->files()[norm->fileIndex]->path().filename().string(),
                 std::string("model-00001-of-00002.safetensors"));
        const QByteArray raw = readFile(kSample / "hf-bf16-sharded" / "model-00001-of-00002.safetensors");
        QCOMPARE(u16At(raw, 8 + 2472 + 65536), quint16(0x401d));
        QCOMPARE(u16At(raw, 8 + 2472 + 65536 + 10), quint16(0x408e));
        const auto* v2 = bf16->find("model.layers.2.self_attn.v_proj.weight");
        QCOMPARE(bf16->files()[v2->fileIndex]->path().filename().string(),
                 std::string("model-00002-of-00002.safetensors"));
        QCOMPARE(v2->offset, quint64(8 + 2512));
    }

    void shardedOpenedEveryWay()
    {
        const fs::path dir = kSample / "hf-bf16-sharded";
        for (const fs::path& p :
             {dir, dir / "model.safetensors.index.json", dir / "model-00002-of-00002.safetensors"}) {
            const auto model = qs::loadSafetensors(p, nullptr);
            QCOMPARE(model->path(), p);
            QCOMPARE(model->files().size(), size_t(2));
            QCOMPARE(model->tensors().size(), size_t(48));
            QCOMPARE(model->totalBytes(), quint64(585600));
            const auto& total = model->metadata().at("total_size");
            QCOMPARE(std::get<uint64_t>(total.value), quint64(585600));
            QCOMPARE(model->metadata().at("format").toString(), std::string("pt"));
            QCOMPARE(model->config().layers, 5u);
            QCOMPARE(model->config().intermediateSize, 172u);
        }
    }

    void progressAndCancel()
    {
        std::mutex mutex;
        std::vector<double> fractions;
        qs::JobControl job([&](double f, const std::string&) {
            std::lock_guard lock(mutex);
            fractions.push_back(f);
        });
        qs::loadSafetensors(kSample / "hf-bf16-sharded", &job);
        QCOMPARE(fractions, (std::vector<double>{0.0, 0.5, 1.0}));

        // Cancelled while the first shard is being read: the second is never opened.
        int reports = 0;
        qs::JobControl* self = nullptr;
        qs::JobControl midway([&](double, const std::string&) {
            ++reports;
            self->cancel();
        });
        self = &midway;
        QVERIFY_THROWS_EXCEPTION(qs::CancelledError,
                                 qs::loadSafetensors(kSample / "hf-bf16-sharded", &midway));
        QCOMPARE(reports, 1);

        qs::JobControl cancelled;
        cancelled.cancel();
        QVERIFY_THROWS_EXCEPTION(qs::CancelledError,
                                 qs::loadSafetensors(kSample / "hf-bf16-sharded", &cancelled));
    }

    void ppocr()
    {
        const auto model =
            qs::loadSafetensors(fs::path(QS_TEST_DATA) / "ppocr" / "model.safetensors", nullptr);
        QCOMPARE(model->tensors().size(), size_t(122));
        QCOMPARE(model->totalBytes(), quint64(10770604 - 8 - 10160));
        QVERIFY(model->metadata().at("source").toString().find("PP-OCRv4") != std::string::npos);
        const auto* bn = model->find("batch_norm2d_148.w_0");
        QVERIFY(bn);
        QCOMPARE(bn->shape, std::vector<uint64_t>{60});
        QCOMPARE(bn->offset, quint64(8 + 10160 + 240));
        for (const auto& t : model->tensors())
            QCOMPARE(t.dtype, qs::DType::F32);
    }

    void everyDtype()
    {
        struct Case {
            const char* name;
            qs::DType type;
            QByteArray bytes; // two values
            float first, second;
        };
        auto f64 = [](double a, double b) {
            QByteArray r(16, '\0');
            std::memcpy(r.data(), &a, 8);
            std::memcpy(r.data() + 8, &b, 8);
            return r;
        };
        auto f32 = [](float a, float b) {
            QByteArray r(8, '\0');
            std::memcpy(r.data(), &a, 4);
            std::memcpy(r.data() + 4, &b, 4);
            return r;
        };
        const std::vector<Case> cases = {
            {"F64", qs::DType::F64, f64(1.5, -2.25), 1.5f, -2.25f},
            {"F32", qs::DType::F32, f32(3.0f, -0.5f), 3.0f, -0.5f},
            {"F16", qs::DType::F16, QByteArray::fromHex("003c00c0"), 1.0f, -2.0f},
            {"BF16", qs::DType::BF16, QByteArray::fromHex("803f4940"), 1.0f, 3.140625f},
            {"F8_E4M3", qs::DType::F8_E4M3, QByteArray::fromHex("38b8"), 1.0f, -1.0f},
            {"F8_E5M2", qs::DType::F8_E5M2, QByteArray::fromHex("3c7b"), 1.0f, 57344.0f},
            {"I64", qs::DType::I64, QByteArray::fromHex("fdffffffffffffff0700000000000000"), -3.0f, 7.0f},
            {"I32", qs::DType::I32, QByteArray::fromHex("fdffffff07000000"), -3.0f, 7.0f},
            {"I16", qs::DType::I16, QByteArray::fromHex("fdff0700"), -3.0f, 7.0f},
            {"I8", qs::DType::I8, QByteArray::fromHex("fd07"), -3.0f, 7.0f},
            {"U64", qs::DType::U64, QByteArray::fromHex("fd000000000000000700000000000000"), 253.0f, 7.0f},
            {"U32", qs::DType::U32, QByteArray::fromHex("fd00000007000000"), 253.0f, 7.0f},
            {"U16", qs::DType::U16, QByteArray::fromHex("ffff0700"), 65535.0f, 7.0f},
            {"U8", qs::DType::U8, QByteArray::fromHex("fd07"), 253.0f, 7.0f},
            {"BOOL", qs::DType::Bool, QByteArray::fromHex("0001"), 0.0f, 1.0f},
        };
        QByteArray header = "{\"__metadata__\":{\"k\":\"v\",\"emoji\":\"\xc3\xa9\"}";
        QByteArray data;
        for (const auto& c : cases) {
            header += "," + entry(c.name, c.name, "[2]", data.size(), data.size() + c.bytes.size());
            data += c.bytes;
        }
        header += ",\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[" +
                  QByteArray::number(data.size()) + "," + QByteArray::number(data.size()) + "]}";
        header += ",\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[" +
                  QByteArray::number(data.size()) + "," + QByteArray::number(data.size() + 4) +
                  "]}}    "; // padded with spaces, as writers do
        data += f32(42.0f, 0).left(4);
        QTemporaryDir dir;
        const QString path = dir.filePath("all.safetensors");
        writeFile(path, stFile(header, data));
        const auto model = qs::loadSafetensors(path.toStdString(), nullptr);
        QCOMPARE(model->tensors().size(), cases.size() + 2);
        QCOMPARE(model->metadata().at("k").toString(), std::string("v"));
        QCOMPARE(model->metadata().at("emoji").toString(), std::string("\xc3\xa9"));
        for (const auto& c : cases) {
            const auto* t = model->find(c.name);
            QVERIFY2(t, c.name);
            QCOMPARE(t->dtype, c.type);
            QCOMPARE(t->bytes, quint64(c.bytes.size()));
            float out[2];
            model->decode(*t, 0, 2, out);
            QCOMPARE(out[0], c.first);
            QCOMPARE(out[1], c.second);
        }
        QCOMPARE(model->find("empty")->elements(), quint64(0));
        const auto* scalar = model->find("scalar");
        QCOMPARE(scalar->elements(), quint64(1));
        float v = 0;
        model->decode(*scalar, 0, 1, &v);
        QCOMPARE(v, 42.0f);
    }

    void tensorNameLimit()
    {
        // Issue 14: a name above kMaxTensorNameBytes is refused at the key's offset.
        QTemporaryDir dir;
        const std::string longName(qs::kMaxTensorNameBytes + 1, 'w');
        const QByteArray header = "{" + entry(longName.c_str(), "F16", "[2]", 0, 4) + "}";
        writeFile(dir.filePath("model.safetensors"), stFile(header, QByteArray(4, 0)));
        try {
            qs::loadSafetensors(dir.filePath("model.safetensors").toStdString(), nullptr);
            QFAIL("a 1025-byte tensor name was accepted");
        } catch (const qs::FormatError& e) {
            QCOMPARE(e.code(), qs::ErrorCode::BadValue);
            QCOMPARE(e.field(), std::string("tensor name"));
            QCOMPARE(e.offset(), std::optional<uint64_t>(8 + 1)); // after the length prefix and '{'
        }
        const std::string atLimit(qs::kMaxTensorNameBytes, 'w');
        writeFile(dir.filePath("model.safetensors"),
                  stFile("{" + entry(atLimit.c_str(), "F16", "[2]", 0, 4) + "}", QByteArray(4, 0)));
        QCOMPARE(qs::loadSafetensors(dir.filePath("model.safetensors").toStdString(), nullptr)->tensors().size(),
                 size_t(1));
    }

    void configInferredWithoutConfigJson()
    {
        QTemporaryDir dir;
        QByteArray header = "{" + entry("model.embed_tokens.weight", "F16", "[10,4]", 0, 80);
        quint64 off = 80;
        for (int b = 0; b < 3; ++b) {
            const QByteArray name = "model.layers." + QByteArray::number(b) + ".self_attn.q_proj.weight";
            header += "," + entry(name.constData(), "F16", "[4,4]", off, off + 32);
            off += 32;
        }
        header += "}";
        writeFile(dir.filePath("model.safetensors"), stFile(header, QByteArray(int(off), 0)));
        const auto model = qs::loadSafetensors(dir.path().toStdString(), nullptr);
        QCOMPARE(model->config().layers, 3u);
        QCOMPARE(model->config().vocabSize, 10u);
        QCOMPARE(model->config().hiddenSize, 4u);
        QVERIFY(model->config().tiedEmbeddings); // no lm_head
        QCOMPARE(model->config().heads, 0u);
        QVERIFY(model->config().architecture.empty());

        // A broken config.json does not stop the weights from opening; the reason is kept.
        writeFile(dir.filePath("config.json"), "{\"num_hidden_layers\": \"x\"}");
        const auto withBad = qs::loadSafetensors(dir.path().toStdString(), nullptr);
        QVERIFY(withBad->metadata().at("config_error").toString().find("num_hidden_layers") !=
                std::string::npos);
        QCOMPARE(withBad->config().layers, 3u);
    }

    void emptyHeader()
    {
        QTemporaryDir dir;
        writeFile(dir.filePath("e.safetensors"), stFile("{}"));
        const auto model = qs::loadSafetensors(dir.filePath("e.safetensors").toStdString(), nullptr);
        QCOMPARE(model->tensors().size(), size_t(0));
    }

    void hostileHeader_data()
    {
        QTest::addColumn<QByteArray>("file");
        QTest::addColumn<int>("code");
        QTest::addColumn<QString>("field");
        QTest::addColumn<qint64>("offset"); // -1: any offset inside the header

        auto row = [](const char* tag, const QByteArray& file, ErrorCode code, const char* field,
                      qint64 offset) { QTest::newRow(tag) << file << int(code) << QString(field) << offset; };
        // Offset of `needle` in the file built from `header` (header starts at byte 8).
        auto at = [](const QByteArray& header, const char* needle, int nth = 0) {
            qint64 pos = -1;
            for (int i = 0; i <= nth; ++i)
                pos = header.indexOf(needle, pos + 1);
            return 8 + pos;
        };
        const QByteArray good = entry("a", "F32", "[2]", 0, 8);

        row("shorter than 8 bytes", "abc", ErrorCode::Truncated, "header length", 0);
        row("header length 0", le64(0) + "{}", ErrorCode::BadValue, "header length", 0);
        row("header length past end", le64(1000) + "{}", ErrorCode::Truncated, "header length", 0);
        row("header length 2^64-1", le64(~0ull) + "{}", ErrorCode::Truncated, "header length", 0);
        {
            const QByteArray h = "{\"a\xff\":" + QByteArray("{}") + "}";
            row("not utf-8", stFile(h), ErrorCode::BadValue, "header", at(h, "\xff"));
            const QByteArray overlong = "{\"a\xc0\xaf\":{}}";
            row("overlong utf-8", stFile(overlong), ErrorCode::BadValue, "header", at(overlong, "\xc0"));
            const QByteArray surrogate = "{\"a\xed\xa0\x80\":{}}";
            row("utf-8 surrogate", stFile(surrogate), ErrorCode::BadValue, "header", at(surrogate, "\xed"));
        }
        row("not json", stFile("{\"a\": }"), ErrorCode::BadValue, "header", -1);
        row("truncated json", stFile("{\"a\":{\"dtype\":\"F32\""), ErrorCode::BadValue, "header", -1);
        row("json array", stFile("  [1, 2]"), ErrorCode::BadValue, "header", 10);
        row("json string", stFile("\"x\""), ErrorCode::BadValue, "header", 8);
        row("nul padding", stFile(QByteArray("{}\0\0", 4)), ErrorCode::BadValue, "header", -1);
        {
            const QByteArray h = "{\"t\": 5}";
            row("entry not object", stFile(h), ErrorCode::BadValue, "t", at(h, "5"));
        }
        {
            const QByteArray h = "{" + good + ",\"b\":{\"shape\":[1],\"data_offsets\":[8,12]}}";
            row("missing dtype", stFile(h, QByteArray(12, 0)), ErrorCode::BadValue, "b", at(h, "{\"shape"));
        }
        {
            const QByteArray h = "{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}";
            row("dtype not string", stFile(h, QByteArray(4, 0)), ErrorCode::BadValue, "a", at(h, "7"));
        }
        {
            const QByteArray h = "{" + entry("w", "F33", "[1]", 0, 4) + "}";
            row("unknown dtype", stFile(h, QByteArray(4, 0)), ErrorCode::BadValue, "w", at(h, "\"F33"));
            const QByteArray lower = "{" + entry("w", "f32", "[1]", 0, 4) + "}";
            row("dtype is case sensitive", stFile(lower, QByteArray(4, 0)), ErrorCode::BadValue, "w",
                at(lower, "\"f32"));
            const QByteArray ggml = "{" + entry("w", "Q4_K", "[1]", 0, 4) + "}";
            row("ggml dtype", stFile(ggml, QByteArray(4, 0)), ErrorCode::BadValue, "w", at(ggml, "\"Q4_K"));
        }
        for (const char* dt : {"F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"}) {
            const QByteArray h = "{" + good + "," + entry("scales", dt, "[1]", 8, 9) + "}";
            row(qPrintable(QString("unsupported ") + dt), stFile(h, QByteArray(9, 0)), ErrorCode::Unsupported,
                "scales", at(h, (QByteArray("\"") + dt).constData()));
        }
        {
            const QByteArray h = "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}";
            row("missing shape", stFile(h, QByteArray(4, 0)), ErrorCode::BadValue, "a", at(h, "{\"dtype"));
            const QByteArray notArray = "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}";
            row("shape not array", stFile(notArray, QByteArray(4, 0)), ErrorCode::BadValue, "a",
                at(notArray, "4,"));
            const QByteArray negative = "{" + entry("a", "F32", "[-1]", 0, 4) + "}";
            row("negative dim", stFile(negative, QByteArray(4, 0)), ErrorCode::BadValue, "a",
                at(negative, "[-1]"));
            const QByteArray fraction = "{" + entry("a", "F32", "[1.5]", 0, 4) + "}";
            row("fractional dim", stFile(fraction, QByteArray(4, 0)), ErrorCode::BadValue, "a",
                at(fraction, "[1.5]"));
            const QByteArray str = "{" + entry("a", "F32", "[\"1\"]", 0, 4) + "}";
            row("string dim", stFile(str, QByteArray(4, 0)), ErrorCode::BadValue, "a", at(str, "[\"1\"]"));
            const QByteArray huge = "{" + entry("a", "F32", "[18446744073709551616]", 0, 4) + "}";
            row("dim beyond 2^64", stFile(huge, QByteArray(4, 0)), ErrorCode::BadValue, "a",
                at(huge, "[1844"));
        }
        {
            const QByteArray h = "{" + entry("big", "U8", "[4294967296,4294967296,2]", 0, 4) + "}";
            row("shape product overflow", stFile(h, QByteArray(4, 0)), ErrorCode::Overflow, "big",
                at(h, "[4294967296"));
            const QByteArray bytes = "{" + entry("big", "F32", "[4611686018427387904,2]", 0, 4) + "}";
            row("byte size overflow", stFile(bytes, QByteArray(4, 0)), ErrorCode::Overflow, "big",
                at(bytes, "[4611"));
        }
        {
            const QByteArray h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}";
            row("missing data_offsets", stFile(h, QByteArray(4, 0)), ErrorCode::BadValue, "a",
                at(h, "{\"dtype"));
            const QByteArray three = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}";
            row("three offsets", stFile(three, QByteArray(4, 0)), ErrorCode::BadValue, "a",
                at(three, "[0,4,8]"));
            const QByteArray reversed = "{" + entry("a", "F32", "[0]", 4, 0) + "}";
            row("begin after end", stFile(reversed, QByteArray(4, 0)), ErrorCode::BadValue, "a",
                at(reversed, "[4,0]"));
            const QByteArray obj = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"b\":0}}}";
            row("offsets object", stFile(obj, QByteArray(4, 0)), ErrorCode::BadValue, "a", at(obj, "{\"b\""));
        }
        {
            const QByteArray h = "{" + entry("a", "F32", "[3]", 0, 8) + "}";
            row("size does not match shape", stFile(h, QByteArray(8, 0)), ErrorCode::BadValue, "a",
                at(h, "[0,8]"));
        }
        {
            const QByteArray h = "{" + entry("a", "F32", "[4]", 0, 16) + "}";
            row("runs past the end", stFile(h, QByteArray(12, 0)), ErrorCode::Truncated, "a",
                at(h, "[0,16]"));
            const QByteArray far =
                "{" + entry("a", "U8", "[4]", 9223372036854775800ull, 9223372036854775804ull) + "}";
            row("offsets near 2^63", stFile(far, QByteArray(4, 0)), ErrorCode::Truncated, "a",
                at(far, "[9223"));
            const QByteArray beyond =
                "{" + entry("a", "U8", "[4]", 18446744073709551611ull, 18446744073709551615ull) + "}";
            row("offsets beyond 2^63", stFile(beyond, QByteArray(4, 0)), ErrorCode::BadValue, "a",
                at(beyond, "[1844"));
        }
        {
            const QByteArray h =
                "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}";
            row("overlap", stFile(h, QByteArray(12, 0)), ErrorCode::BadValue, "b", at(h, "[4,12]"));
            const QByteArray same =
                "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 0, 8) + "}";
            row("aliased tensors", stFile(same, QByteArray(8, 0)), ErrorCode::BadValue, "b",
                at(same, "[0,8]", 1));
        }
        {
            const QByteArray h =
                "{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("b", "F32", "[1]", 8, 12) + "}";
            row("hole", stFile(h, QByteArray(12, 0)), ErrorCode::BadValue, "b", at(h, "[8,12]"));
            const QByteArray first = "{" + entry("a", "F32", "[1]", 4, 8) + "}";
            row("hole at start", stFile(first, QByteArray(8, 0)), ErrorCode::BadValue, "a",
                at(first, "[4,8]"));
        }
        {
            const QByteArray h = "{" + entry("a", "F32", "[1]", 0, 4) + "}";
            row("trailing bytes", stFile(h, QByteArray(7, 0)), ErrorCode::BadValue, "data", 8 + h.size() + 4);
            row("data without tensors", stFile("{}", "xyz"), ErrorCode::BadValue, "data", 10);
        }
        {
            const QByteArray h =
                "{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("a", "F32", "[1]", 4, 8) + "}";
            row("duplicate name", stFile(h, QByteArray(8, 0)), ErrorCode::BadValue, "a", at(h, "\"a\"", 1));
            const QByteArray escaped =
                "{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("\\u0061", "F32", "[1]", 4, 8) + "}";
            row("duplicate name via escape", stFile(escaped, QByteArray(8, 0)), ErrorCode::BadValue, "a",
                at(escaped, "\"\\u0061"));
            const QByteArray key =
                "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}";
            row("duplicate key in entry", stFile(key, QByteArray(4, 0)), ErrorCode::BadValue, "a",
                at(key, "\"dtype", 1));
        }
        {
            const QByteArray h = "{\"__metadata__\":[\"x\"]}";
            row("metadata not object", stFile(h), ErrorCode::BadValue, "__metadata__", at(h, "[\"x"));
            const QByteArray num = "{\"__metadata__\":{\"n\":5}}";
            row("metadata value not string", stFile(num), ErrorCode::BadValue, "__metadata__.n",
                at(num, "5"));
        }
        {
            QByteArray deep = "{\"a\":" + QByteArray(5000, '[') + QByteArray(5000, ']') + "}";
            row("deep nesting", stFile(deep), ErrorCode::BadValue, "header", -1);
        }
    }

    void hostileHeader()
    {
        QFETCH(QByteArray, file);
        QFETCH(int, code);
        QFETCH(QString, field);
        QFETCH(qint64, offset);
        QTemporaryDir dir;
        const QString path = dir.filePath("bad.safetensors");
        writeFile(path, file);
        const auto f = loadFailure(path.toStdString());
        QVERIFY2(f.thrown, "accepted a hostile file");
        QVERIFY2(f.formatError, f.message.c_str());
        QCOMPARE(errorCodeName(f.code), errorCodeName(ErrorCode(code)));
        QCOMPARE(QString::fromStdString(f.field), field);
        QVERIFY(f.offset.has_value());
        if (offset >= 0) {
            QCOMPARE(qint64(*f.offset), offset);
        } else {
            QVERIFY(*f.offset >= 8);
            QVERIFY(*f.offset <= quint64(file.size()));
        }
        QCOMPARE(f.file, path.toStdString());
        QVERIFY(f.message.find(path.toStdString()) == 0);
    }

    void headerOver100MB()
    {
        // A sparse file: large enough for the declared header, so only the 100 MB limit rejects it.
        QTemporaryDir dir;
        const QString path = dir.filePath("huge.safetensors");
        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(le64(100'000'001) + "{");
        QVERIFY(f.resize(100'000'001 + 8 + 16));
        f.close();
        const auto e = loadFailure(path.toStdString());
        QCOMPARE(e.code, ErrorCode::BadValue);
        QCOMPARE(e.field, std::string("header length"));
        QCOMPARE(e.offset, std::optional<uint64_t>(0));
    }

    void notARegularFile()
    {
        QTemporaryDir dir;
        const auto e = loadFailure((dir.path() + "/missing.safetensors").toStdString());
        QVERIFY(e.thrown);
        QCOMPARE(e.code, ErrorCode::Io);
        const auto empty = loadFailure(dir.path().toStdString());
        QCOMPARE(empty.code, ErrorCode::Io); // folder without weights
    }

    // ---- sharded checkpoints

    void shardedHostile_data()
    {
        QTest::addColumn<QByteArray>("index");
        QTest::addColumn<int>("code");
        QTest::addColumn<QString>("file"); // file named by the error: "index", "s1", "s2"
        QTest::addColumn<QString>("field");
        QTest::addColumn<QByteArray>("needle"); // the error offset is where this occurs (in the named file)

        auto index = [](const QByteArray& map) {
            return "{\"metadata\":{\"total_size\":16},\"weight_map\":{" + map + "}}";
        };
        auto row = [](const char* tag, const QByteArray& idx, ErrorCode code, const char* file,
                      const char* field, const char* needle) {
            QTest::newRow(tag) << idx << int(code) << QString(file) << QString(field) << QByteArray(needle);
        };
        // s1.safetensors holds a, b; s2.safetensors holds c, d.
        const QByteArray ok = "\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\",\"c\":\"s2.safetensors\"";
        row("parent dir", index(ok + ",\"d\":\"../s2.safetensors\""), ErrorCode::BadValue, "index", "d",
            "\"../s2");
        row("parent dir inside", index(ok + ",\"d\":\"sub/../../x/s2.safetensors\""), ErrorCode::BadValue,
            "index", "d", "\"sub/..");
        row("absolute", index(ok + ",\"d\":\"/etc/passwd\""), ErrorCode::BadValue, "index", "d", "\"/etc");
        row("symlink out", index(ok + ",\"d\":\"link.safetensors\""), ErrorCode::BadValue, "index", "d",
            "\"link");
        row("missing shard", index(ok + ",\"d\":\"s3.safetensors\""), ErrorCode::Io, "index", "d", "\"s3");
        row("empty shard name", index(ok + ",\"d\":\"\""), ErrorCode::BadValue, "index", "d", "\"\"}");
        row("shard not string", index(ok + ",\"d\":2"), ErrorCode::BadValue, "index", "d", "2}");
        row("listed but absent", index(ok + ",\"d\":\"s2.safetensors\",\"e\":\"s2.safetensors\""),
            ErrorCode::BadValue, "index", "e", "\"s2.safetensors\"}");
        row("in another shard",
            index("\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\",\"c\":\"s1.safetensors\","
                  "\"d\":\"s2.safetensors\""),
            ErrorCode::BadValue, "s2", "c", "[0,8]");
        row("not listed", index("\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\",\"c\":\"s2.safetensors\""),
            ErrorCode::BadValue, "s2", "d", "[8,16]");
        row("listed twice", index(ok + ",\"d\":\"s2.safetensors\",\"d\":\"s2.safetensors\""),
            ErrorCode::BadValue, "index", "d", "\"d\":\"s2.safetensors\"}");
        row("no weight_map", "{\"metadata\":{}}", ErrorCode::BadValue, "index", "weight_map", "{\"metadata");
        row("weight_map array", "{\"weight_map\":[]}", ErrorCode::BadValue, "index", "weight_map", "[]");
        row("index not json", "{\"weight_map\":", ErrorCode::BadValue, "index", "index", "");
        row("index not utf-8", "{\"weight_map\":{\"\xfe\":1}}", ErrorCode::BadValue, "index", "index",
            "\xfe");
    }

    void shardedHostile()
    {
        QFETCH(QByteArray, index);
        QFETCH(int, code);
        QFETCH(QString, file);
        QFETCH(QString, field);
        QFETCH(QByteArray, needle);
        QTemporaryDir outside;
        QTemporaryDir root;
        QVERIFY(QDir(root.path()).mkdir("m"));
        const QString dir = root.filePath("m");
        const QByteArray h1 =
            "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 8, 16) + "}";
        const QByteArray h2 =
            "{" + entry("c", "F32", "[2]", 0, 8) + "," + entry("d", "F32", "[2]", 8, 16) + "}";
        writeFile(dir + "/s1.safetensors", stFile(h1, QByteArray(16, 1)));
        writeFile(dir + "/s2.safetensors", stFile(h2, QByteArray(16, 2)));
        writeFile(root.filePath("s2.safetensors"), stFile(h2, QByteArray(16, 2))); // reachable via ../
        writeFile(outside.filePath("secret.safetensors"), stFile(h2, QByteArray(16, 2)));
        QVERIFY(QFile::link(outside.filePath("secret.safetensors"), dir + "/link.safetensors"));
        const QString indexPath = dir + "/model.safetensors.index.json";
        writeFile(indexPath, index);

        const auto f = loadFailure(dir.toStdString());
        QVERIFY2(f.thrown, "accepted a hostile checkpoint");
        QVERIFY2(f.formatError, f.message.c_str());
        QCOMPARE(errorCodeName(f.code), errorCodeName(ErrorCode(code)));
        QCOMPARE(QString::fromStdString(f.field), field);
        QByteArray text;
        qint64 base = 0;
        if (file == "index") {
            QCOMPARE(f.file, indexPath.toStdString());
            text = index;
        } else {
            QCOMPARE(f.file, (dir + "/" + file + ".safetensors").toStdString());
            text = file == "s1" ? h1 : h2;
            base = 8;
        }
        QVERIFY(f.offset.has_value());
        QCOMPARE(qint64(*f.offset), base + text.lastIndexOf(needle));
        // The same checkpoint opened through its index file fails the same way.
        QCOMPARE(loadFailure(indexPath.toStdString()).message, f.message);
    }

    void sameTensorInTwoShards()
    {
        QTemporaryDir dir;
        const QByteArray h1 = "{" + entry("a", "F32", "[2]", 0, 8) + "}";
        const QByteArray h2 =
            "{" + entry("b", "F32", "[1]", 0, 4) + "," + entry("a", "F32", "[1]", 4, 8) + "}";
        writeFile(dir.filePath("model-00001-of-00002.safetensors"), stFile(h1, QByteArray(8, 0)));
        writeFile(dir.filePath("model-00002-of-00002.safetensors"), stFile(h2, QByteArray(8, 0)));
        // Without an index (shards found by name) and with one.
        auto f = loadFailure(dir.filePath("model-00001-of-00002.safetensors").toStdString());
        QCOMPARE(f.code, ErrorCode::BadValue);
        QCOMPARE(f.field, std::string("a"));
        QCOMPARE(f.file, dir.filePath("model-00002-of-00002.safetensors").toStdString());
        QCOMPARE(qint64(*f.offset), 8 + h2.indexOf("[4,8]"));
        writeFile(dir.filePath("model.safetensors.index.json"),
                  "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002."
                  "safetensors\"}}");
        f = loadFailure(dir.path().toStdString());
        QCOMPARE(f.code, ErrorCode::BadValue);
        QCOMPARE(f.field, std::string("a"));
        QVERIFY(f.message.find("also stored in model-00001-of-00002.safetensors") != std::string::npos);
    }

    void shardFoundByNameWithoutIndex()
    {
        QTemporaryDir dir;
        const QByteArray h1 = "{" + entry("a", "F32", "[2]", 0, 8) + "}";
        const QByteArray h2 = "{" + entry("b", "F32", "[1]", 0, 4) + "}";
        writeFile(dir.filePath("w-001-of-003.safetensors"), stFile(h1, QByteArray(8, 0)));
        writeFile(dir.filePath("w-003-of-003.safetensors"), stFile(h2, QByteArray(4, 0)));
        auto f = loadFailure(dir.filePath("w-003-of-003.safetensors").toStdString());
        QCOMPARE(f.code, ErrorCode::Io);
        QCOMPARE(f.field, std::string("w-002-of-003.safetensors"));
        const QByteArray h3 = "{" + entry("c", "U8", "[1]", 0, 1) + "}";
        writeFile(dir.filePath("w-002-of-003.safetensors"), stFile(h3, QByteArray(1, 9)));
        const auto model =
            qs::loadSafetensors(dir.filePath("w-003-of-003.safetensors").toStdString(), nullptr);
        QCOMPARE(model->files().size(), size_t(3));
        QCOMPARE(model->tensors().size(), size_t(3));
        QCOMPARE(model->tensors()[2].name, std::string("b"));
        const auto folder = qs::loadSafetensors(dir.path().toStdString(), nullptr);
        QCOMPARE(folder->tensors().size(), size_t(3));
    }
};

QTEST_APPLESS_MAIN(TestSafetensors)
#include "tst_safetensors.moc"
