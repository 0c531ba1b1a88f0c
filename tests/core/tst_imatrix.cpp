// llama.cpp importance files (GGUF and legacy .dat, built here byte by byte), name mapping and coverage.
#include "core/gguf_builder.h"
#include "core/model/model.h"
#include "core/quant/imatrix.h"
#include "core/util/error.h"

#include <QFile>
#include <QTemporaryDir>
#include <QTest>
#include <cstring>

using qstest::GgufBuilder;

namespace {

template <typename T> void put(std::string& s, T v)
{
    s += GgufBuilder::le(v);
}

struct LegacyEntry {
    std::string name;
    int32_t ncall;
    std::vector<float> values;
};

std::string legacyFile(const std::vector<LegacyEntry>& entries,
                       std::optional<std::pair<int32_t, std::string>> trailer)
{
    std::string s;
    put<int32_t>(s, static_cast<int32_t>(entries.size()));
    for (const auto& e : entries) {
        put<int32_t>(s, static_cast<int32_t>(e.name.size()));
        s += e.name;
        put<int32_t>(s, e.ncall);
        put<int32_t>(s, static_cast<int32_t>(e.values.size()));
        for (float v : e.values)
            put<float>(s, v);
    }
    if (trailer) {
        put<int32_t>(s, trailer->first);
        put<int32_t>(s, static_cast<int32_t>(trailer->second.size()));
        s += trailer->second;
    }
    return s;
}

std::span<const std::byte> bytes(const std::string& s)
{
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string f32Data(const std::vector<float>& v)
{
    std::string s(v.size() * 4, '\0');
    std::memcpy(s.data(), v.data(), s.size());
    return s;
}

QString writeFile(const QTemporaryDir& dir, const QString& name, const std::string& data)
{
    const QString path = dir.filePath(name);
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly))
        qFatal("cannot write %s", qPrintable(path));
    f.write(data.data(), static_cast<qint64>(data.size()));
    return path;
}

GgufBuilder imatrixGguf()
{
    GgufBuilder b;
    b.kv("general.type", GgufBuilder::vStr("imatrix"));
    b.kv("imatrix.datasets", GgufBuilder::vStrings({"wiki.train.raw", "code.txt"}));
    b.kv("imatrix.chunk_count", GgufBuilder::vU32(42));
    b.kv("imatrix.chunk_size", GgufBuilder::vU32(512));
    auto add = [&](const std::string& name, std::vector<uint64_t> ne, const std::vector<float>& v) {
        b.tensors.push_back({name, std::move(ne), 0, f32Data(v), std::nullopt, std::nullopt});
    };
    add("blk.0.attn_q.weight.in_sum2", {4}, {10, 20, 30, 0});
    add("blk.0.attn_q.weight.counts", {1}, {10});
    // Two stacked experts of 3 columns; the second never saw a token.
    add("blk.0.ffn_down_exps.weight.in_sum2", {3, 2}, {2, 4, 6, 5, 5, 5});
    add("blk.0.ffn_down_exps.weight.counts", {1, 2}, {2, 0});
    return b;
}

} // namespace

class TestImatrix : public QObject {
    Q_OBJECT
private slots:
    void legacy()
    {
        const std::string data =
            legacyFile({{"blk.0.ffn_down.weight", 4, {4, 8, 0}}, {"output.weight", 0, {1.5f, 2}}},
                       std::pair<int32_t, std::string>{10, "wiki.txt"});
        const auto m = qs::ImportanceMatrix::parseLegacy(bytes(data), "x.dat");
        QCOMPARE(m.format(), qs::ImportanceFileFormat::LegacyDat);
        QCOMPARE(m.entries().size(), size_t(2));
        const auto& e = m.entries()[0];
        QCOMPARE(e.name, std::string("blk.0.ffn_down.weight"));
        QCOMPARE(e.columns, uint64_t(3));
        QCOMPARE(e.values, (std::vector<float>{1, 2, 0}));              // divided by ncall = 4
        QCOMPARE(m.entries()[1].values, (std::vector<float>{1.5f, 2})); // ncall 0: unchanged
        QCOMPARE(m.chunkCount(), uint64_t(10));
        QCOMPARE(m.datasets(), (std::vector<std::string>{"wiki.txt"}));
        // Without the trailer (older files).
        const auto old =
            qs::ImportanceMatrix::parseLegacy(bytes(legacyFile({{"a.weight", 2, {2}}}, std::nullopt)), "x");
        QCOMPARE(old.entries()[0].values, std::vector<float>{1});
        QVERIFY(old.datasets().empty());
        // Through the file loader (no GGUF magic -> legacy).
        QTemporaryDir dir;
        const auto loaded = qs::ImportanceMatrix::load(writeFile(dir, "imatrix.dat", data).toStdString());
        QCOMPARE(loaded.entries().size(), size_t(2));
        QCOMPARE(loaded.importanceFor("blk.0.ffn_down.weight", 3).size(), size_t(3));
        QCOMPARE(loaded.importanceFor("model.layers.0.mlp.down_proj.weight", 3)[1], 2.0f);
        QVERIFY(loaded.importanceFor("model.layers.0.mlp.down_proj.weight", 4).empty()); // wrong length
        QCOMPARE(loaded.importanceFor("lm_head.weight", 2)[0], 1.5f);
        QVERIFY(loaded.importanceFor("model.layers.1.mlp.down_proj.weight", 3).empty());
    }

    void legacyHostile()
    {
        const std::string good = legacyFile({{"blk.0.ffn_down.weight", 4, {4, 8, 0}}, {"b.weight", 1, {1}}},
                                            std::pair<int32_t, std::string>{3, "data"});
        // Every truncation is rejected with a typed error (a cut exactly after the entries is a valid old
        // file).
        const size_t entriesEnd = good.size() - 4 - 4 - 4;
        for (size_t n = 0; n < good.size(); ++n) {
            if (n == entriesEnd)
                continue;
            try {
                qs::ImportanceMatrix::parseLegacy(bytes(good.substr(0, n)), "cut.dat");
                QFAIL(qPrintable(QStringLiteral("prefix of %1 bytes accepted").arg(n)));
            } catch (const qs::FormatError& e) {
                QCOMPARE(e.file(), std::string("cut.dat"));
            }
        }
        auto expectError = [](std::string data, const char* field) {
            try {
                qs::ImportanceMatrix::parseLegacy(bytes(data), "bad.dat");
                QFAIL("accepted");
            } catch (const qs::FormatError& e) {
                QVERIFY2(e.field().find(field) != std::string::npos, e.what());
            }
        };
        std::string s = good;
        int32_t huge = 0x7FFFFFFF;
        std::memcpy(s.data(), &huge, 4);
        expectError(s, "n_entries");
        s = good;
        int32_t negative = -5;
        std::memcpy(s.data() + 4, &negative, 4);
        expectError(s, "name length");
        s = good;
        std::memcpy(s.data() + 4 + 4 + 21 + 4, &huge, 4); // nval of the first entry
        expectError(s, "nval");
        expectError(good + "x", "end of file");
        expectError(legacyFile({{"a.weight", 1, {1}}, {"a.weight", 1, {2}}}, std::nullopt), "name");
        expectError(legacyFile({{"a.weight", 1, {std::nanf("")}}}, std::nullopt), "values");
        expectError(legacyFile({{"a.weight", 1, {-1.0f}}}, std::nullopt), "values");
        // A negative call count is refused where it is (it used to be stored as a negative count).
        try {
            qs::ImportanceMatrix::parseLegacy(bytes(legacyFile({{"a.weight", -3, {1}}}, std::nullopt)), "n.dat");
            QFAIL("negative ncall accepted");
        } catch (const qs::FormatError& e) {
            QCOMPARE(e.field(), std::string("a.weight ncall"));
            QCOMPARE(e.offset(), std::optional<uint64_t>(4 + 4 + 8));
            QVERIFY2(std::string(e.what()).find("negative") != std::string::npos, e.what());
        }
        expectError(std::string(), "n_entries");
    }

    void gguf()
    {
        QTemporaryDir dir;
        GgufBuilder b = imatrixGguf();
        const QString path = writeFile(dir, "imatrix.gguf", b.build());
        const auto m = qs::ImportanceMatrix::load(path.toStdString());
        QCOMPARE(m.format(), qs::ImportanceFileFormat::Gguf);
        QCOMPARE(m.entries().size(), size_t(2));
        QCOMPARE(m.chunkCount(), uint64_t(42));
        QCOMPARE(m.datasets(), (std::vector<std::string>{"wiki.train.raw", "code.txt"}));
        const auto* q = m.find("blk.0.attn_q.weight");
        QVERIFY(q);
        QCOMPARE(q->values, (std::vector<float>{1, 2, 3, 0})); // in_sum2 / 10
        QCOMPARE(q->counts, std::vector<float>{10});
        const auto* experts = m.find("blk.0.ffn_down_exps.weight");
        QVERIFY(experts);
        QCOMPARE(experts->matrices, uint64_t(2));
        QCOMPARE(experts->columns, uint64_t(3));
        QCOMPARE(experts->values, (std::vector<float>{1, 2, 3, 1, 1, 1})); // count 0 -> 1
        // HF per-expert names reach the stacked entry.
        uint64_t index = 9;
        QCOMPARE(m.find("model.layers.0.block_sparse_moe.experts.1.w2.weight", &index), experts);
        QCOMPARE(index, uint64_t(1));
        QCOMPARE(m.importanceFor("model.layers.0.block_sparse_moe.experts.0.w2.weight", 3)[2], 3.0f);
        QVERIFY(m.importanceFor("model.layers.0.block_sparse_moe.experts.2.w2.weight", 3).empty());
        QCOMPARE(m.importanceFor("model.layers.0.self_attn.q_proj.weight", 4)[1], 2.0f);
    }

    void ggufHostile()
    {
        QTemporaryDir dir;
        GgufBuilder b = imatrixGguf();
        b.tensors.erase(b.tensors.begin() + 1); // attn_q counts missing
        try {
            qs::ImportanceMatrix::load(writeFile(dir, "a.gguf", b.build()).toStdString());
            QFAIL("accepted a sum without counts");
        } catch (const qs::FormatError& e) {
            QVERIFY2(e.field().find("blk.0.attn_q.weight") != std::string::npos, e.what());
        }
        GgufBuilder c = imatrixGguf();
        c.tensors[3].data = f32Data({2}); // one count for two matrices
        c.tensors[3].ne = {1};
        QVERIFY_THROWS_EXCEPTION(
            qs::FormatError, qs::ImportanceMatrix::load(writeFile(dir, "b.gguf", c.build()).toStdString()));
        GgufBuilder d; // a GGUF model without any imatrix tensor
        d.kv("general.architecture", GgufBuilder::vStr("llama"));
        d.tensors.push_back({"blk.0.attn_q.weight", {4, 4}, 0, f32Data(std::vector<float>(16, 1)), {}, {}});
        QVERIFY_THROWS_EXCEPTION(
            qs::FormatError, qs::ImportanceMatrix::load(writeFile(dir, "c.gguf", d.build()).toStdString()));
    }

    void nameMapping()
    {
        QCOMPARE(*qs::ggufToHfName("blk.12.ffn_down.weight"),
                 std::string("model.layers.12.mlp.down_proj.weight"));
        QCOMPARE(*qs::ggufToHfName("blk.0.attn_output.weight"),
                 std::string("model.layers.0.self_attn.o_proj.weight"));
        QCOMPARE(*qs::ggufToHfName("blk.3.attn_q.bias"), std::string("model.layers.3.self_attn.q_proj.bias"));
        QCOMPARE(*qs::ggufToHfName("token_embd.weight"), std::string("model.embed_tokens.weight"));
        QCOMPARE(*qs::ggufToHfName("output.weight"), std::string("lm_head.weight"));
        QCOMPARE(*qs::ggufToHfName("output_norm.weight"), std::string("model.norm.weight"));
        QCOMPARE(*qs::ggufToHfName("blk.1.ffn_norm.weight"),
                 std::string("model.layers.1.post_attention_layernorm.weight"));
        QCOMPARE(*qs::hfToGgufName("model.layers.31.mlp.gate_proj.weight"),
                 std::string("blk.31.ffn_gate.weight"));
        QCOMPARE(*qs::hfToGgufName("model.layers.2.self_attn.v_proj.weight"),
                 std::string("blk.2.attn_v.weight"));
        QCOMPARE(*qs::hfToGgufName("lm_head.weight"), std::string("output.weight"));
        uint64_t expert = 0;
        QCOMPARE(*qs::hfToGgufName("model.layers.4.mlp.experts.17.up_proj.weight", &expert),
                 std::string("blk.4.ffn_up_exps.weight"));
        QCOMPARE(expert, uint64_t(17));
        QCOMPARE(*qs::hfToGgufName("model.layers.4.block_sparse_moe.experts.3.w1.weight", &expert),
                 std::string("blk.4.ffn_gate_exps.weight"));
        QCOMPARE(expert, uint64_t(3));
        // Round trips over every block name.
        for (const char* leaf : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                 "ffn_down", "attn_norm", "ffn_norm", "ffn_gate_inp"}) {
            const std::string g = std::string("blk.7.") + leaf + ".weight";
            QCOMPARE(*qs::hfToGgufName(*qs::ggufToHfName(g)), g);
        }
        QVERIFY(!qs::ggufToHfName("blk.x.attn_q.weight"));
        QVERIFY(!qs::ggufToHfName("blk.0.attn_q"));
        QVERIFY(!qs::ggufToHfName("blk.0.unknown.weight"));
        QVERIFY(!qs::hfToGgufName("model.layers.0.mlp.experts.x.up_proj.weight"));
        QVERIFY(!qs::hfToGgufName("encoder.conv1.weight"));
    }

    void coverage()
    {
        QTemporaryDir dir;
        const std::string data = legacyFile({{"blk.0.attn_q.weight", 1, {1, 1, 1, 1}},
                                             {"blk.0.ffn_down.weight", 1, {1, 1}},
                                             {"blk.9.attn_k.weight", 1, {1}}},
                                            std::nullopt);
        const auto imatrix = qs::ImportanceMatrix::parseLegacy(bytes(data), "x");
        qs::Model model(qs::ModelFormat::Safetensors, "/nonexistent");
        auto add = [&](const std::string& name, std::vector<uint64_t> shape) {
            qs::TensorInfo t;
            t.name = name;
            t.shape = std::move(shape);
            model.addTensor(t);
        };
        add("model.layers.0.self_attn.q_proj.weight", {4, 4});
        add("model.layers.0.self_attn.k_proj.weight", {4, 4});
        add("model.layers.0.mlp.down_proj.weight", {4, 3}); // entry has 2 values
        add("model.layers.0.input_layernorm.weight", {4});
        model.finalize();
        const auto c = qs::matchImportance(imatrix, model);
        QCOMPARE(c.matched.size(), size_t(1));
        QCOMPARE(c.matched[0].tensor, std::string("model.layers.0.self_attn.q_proj.weight"));
        QCOMPARE(c.matched[0].entry, std::string("blk.0.attn_q.weight"));
        QCOMPARE(c.missing, std::vector<std::string>{"model.layers.0.self_attn.k_proj.weight"});
        QCOMPARE(c.mismatched, std::vector<std::string>{"model.layers.0.mlp.down_proj.weight"});
        QCOMPARE(c.unused, std::vector<std::string>{"blk.9.attn_k.weight"});
    }
};

QTEST_APPLESS_MAIN(TestImatrix)
#include "tst_imatrix.moc"
