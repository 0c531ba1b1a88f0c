// Exports checked against each tool's real matching rules, re-implemented here from their sources:
// llama-quantize (pattern=type lines, patterns lower-cased, std::regex_search over GGUF names, last match
// wins), GPTQModel/vLLM get_dynamic_override ("-:" skips a module, "+:"/plain keys override, re.match),
// compressed-tensors / llm-compressor targets ("re:" prefix, re.match against module names, ignore list).
// Every planned tensor must come out in exactly its planned format; plans a tool cannot express are refused.
#include "core/plan/export.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"
#include "core/plan/planio.h"
#include "core/quant/format.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>
#include <regex>
#include <sstream>

namespace {

const char* kLlama = R"({"model_type":"llama","hidden_size":256,"intermediate_size":512,"num_hidden_layers":4,
 "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":1024,"torch_dtype":"bfloat16"})";

std::string lower(std::string s)
{
    for (auto& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// llama-quantize: the file is whitespace-separated pattern=type tokens; a tensor takes the type of the last
// matching pattern. Returns tensor -> type for the given GGUF names.
std::map<std::string, std::string> applyLlamaCpp(const std::string& file,
                                                 const std::vector<std::string>& names, int* maxMatches)
{
    std::vector<std::pair<std::regex, std::string>> rules;
    std::istringstream in(file);
    std::string token;
    while (in >> token) {
        const size_t eq = token.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == token.size())
            throw std::runtime_error("malformed tensor type " + token);
        rules.emplace_back(std::regex(lower(token.substr(0, eq))), token.substr(eq + 1));
    }
    std::map<std::string, std::string> out;
    *maxMatches = 0;
    for (const auto& n : names) {
        int matches = 0;
        for (const auto& [re, type] : rules)
            if (std::regex_search(n, re)) {
                out[n] = type;
                ++matches;
            }
        *maxMatches = std::max(*maxMatches, matches);
    }
    return out;
}

struct Effective {
    bool quantized = false;
    int bits = 0, group = 0;
    bool sym = true;
    bool isFloat = false;
    bool operator==(const Effective&) const = default;
};

Effective expected(const std::string& format)
{
    auto f = qs::findFormat(format);
    const auto& t = f->traits();
    if (t.kind == qs::FormatKind::Float)
        return {};
    return {true, t.bits, t.groupSize, t.symmetric, t.kind == qs::FormatKind::Fp8};
}

// vLLM's get_dynamic_override over GPTQModel's quantize_config.json.
Effective applyGptq(const QJsonObject& cfg, const std::string& module)
{
    const QJsonObject dyn = cfg.value(QStringLiteral("dynamic")).toObject();
    Effective e{true, cfg.value(QStringLiteral("bits")).toInt(),
                cfg.value(QStringLiteral("group_size")).toInt(), cfg.value(QStringLiteral("sym")).toBool(),
                false};
    if (module == "lm_head" && !cfg.value(QStringLiteral("lm_head")).toBool())
        return {};
    // QJsonObject iterates keys sorted, not in file order: the exporter must not depend on order, so the
    // test checks that at most one key matches.
    int hits = 0;
    Effective result = e;
    for (auto it = dyn.begin(); it != dyn.end(); ++it) {
        std::string key = it.key().toStdString();
        const bool negative = key.rfind("-:", 0) == 0;
        if (negative || key.rfind("+:", 0) == 0)
            key = key.substr(2);
        if (!std::regex_search(module, std::regex(key), std::regex_constants::match_continuous))
            continue;
        ++hits;
        if (negative) {
            result = {};
        } else {
            const QJsonObject o = it.value().toObject();
            result.bits = o.value(QStringLiteral("bits")).toInt(e.bits);
            result.group = o.value(QStringLiteral("group_size")).toInt(e.group);
            result.sym = o.value(QStringLiteral("sym")).toBool(e.sym);
        }
    }
    if (hits > 1)
        throw std::runtime_error("several dynamic keys match " + module);
    return result;
}

bool ctMatches(const QString& target, const std::string& module)
{
    if (target.startsWith(QLatin1String("re:")))
        return std::regex_search(module, std::regex(target.mid(3).toStdString()),
                                 std::regex_constants::match_continuous);
    return target.toStdString() == module;
}

Effective applyCompressedTensors(const QJsonObject& qc, const std::string& module)
{
    for (const auto& ig : qc.value(QStringLiteral("ignore")).toArray())
        if (ctMatches(ig.toString(), module))
            return {};
    const QJsonObject groups = qc.value(QStringLiteral("config_groups")).toObject();
    int hits = 0;
    Effective e;
    for (auto it = groups.begin(); it != groups.end(); ++it) {
        const QJsonObject g = it.value().toObject();
        for (const auto& t : g.value(QStringLiteral("targets")).toArray()) {
            if (!ctMatches(t.toString(), module))
                continue;
            ++hits;
            const QJsonObject w = g.value(QStringLiteral("weights")).toObject();
            const QString strategy = w.value(QStringLiteral("strategy")).toString();
            e = {true, w.value(QStringLiteral("num_bits")).toInt(),
                 strategy == QLatin1String("group")     ? w.value(QStringLiteral("group_size")).toInt()
                 : strategy == QLatin1String("channel") ? -1
                                                        : 0,
                 w.value(QStringLiteral("symmetric")).toBool(),
                 w.value(QStringLiteral("type")).toString() == QLatin1String("float")};
        }
    }
    if (hits > 1)
        throw std::runtime_error("several groups match " + module);
    return e;
}

qs::Plan mixedIntPlan(const qs::ModelLayout& l)
{
    qs::Plan p;
    qs::applyRules(p, l,
                   qs::parseRules("role:embedding=BF16\n"
                                  "role:output_head=INT8-ch-sym\n"
                                  "^model\\.layers\\.0\\.=BF16\n"
                                  "mlp\\.down_proj=INT8-ch-sym\n"
                                  "^model\\.layers\\.2\\.self_attn\\.[qkv]_proj=INT4-g32-sym\n"),
                   "INT4-g128-asym");
    return p;
}

} // namespace

class TestExport : public QObject {
    Q_OBJECT
private slots:
    void names()
    {
        QCOMPARE(*qs::ggufTensorName("model.layers.7.self_attn.o_proj.weight"),
                 std::string("blk.7.attn_output.weight"));
        QCOMPARE(*qs::ggufTensorName("model.layers.7.mlp.down_proj.weight"),
                 std::string("blk.7.ffn_down.weight"));
        QCOMPARE(*qs::ggufTensorName("model.embed_tokens.weight"), std::string("token_embd.weight"));
        QCOMPARE(*qs::ggufTensorName("lm_head.weight"), std::string("output.weight"));
        QCOMPARE(*qs::ggufTensorName("model.layers.1.block_sparse_moe.experts.3.w2.weight"),
                 std::string("blk.1.ffn_down_exps.weight"));
        QCOMPARE(*qs::ggufTensorName("blk.2.attn_v.weight"), std::string("blk.2.attn_v.weight"));
        QCOMPARE(*qs::hfModuleName("blk.2.attn_v.weight"), std::string("model.layers.2.self_attn.v_proj"));
        QCOMPARE(*qs::hfModuleName("output.weight"), std::string("lm_head"));
        QCOMPARE(*qs::hfModuleName("model.layers.2.mlp.up_proj.weight"),
                 std::string("model.layers.2.mlp.up_proj"));
        QVERIFY(!qs::hfModuleName("blk.1.ffn_down_exps.weight"));
        QCOMPARE(*qs::ggufTensorName("transformer.h.0.attn.c_attn.weight"),
                 std::string("blk.0.attn_qkv.weight"));
        QVERIFY(!qs::ggufTensorName("vision_tower.patch_embed.proj.weight"));
        QCOMPARE(*qs::exportTargetFromName("llama.cpp"), qs::ExportTarget::LlamaCpp);
        QCOMPARE(*qs::exportTargetFromName("compressed-tensors"), qs::ExportTarget::CompressedTensors);
        QVERIFY(!qs::exportTargetFromName("onnx"));
    }

    // Found by fuzz_plan: a hostile plan naming block 99999999999 made the name compression throw
    // std::out_of_range; and "blk.07" must not become the pattern for block 7.
    void oddBlockNumbersStayLiteral()
    {
        qs::Plan plan;
        plan.assign("blk.99999999999.attn_k.weight", "Q8_0");
        plan.assign("blk.07.attn_k.weight", "Q8_0");
        plan.assign("blk.7.attn_k.weight", "Q4_K");
        const auto r = qs::exportPlan(plan, qs::ExportTarget::LlamaCpp);
        int maxMatches = 0;
        const auto types = applyLlamaCpp(
            r.text, {"blk.99999999999.attn_k.weight", "blk.07.attn_k.weight", "blk.7.attn_k.weight"}, &maxMatches);
        QCOMPARE(maxMatches, 1);
        QCOMPARE(types.at("blk.99999999999.attn_k.weight"), std::string("q8_0"));
        QCOMPARE(types.at("blk.07.attn_k.weight"), std::string("q8_0"));
        QCOMPARE(types.at("blk.7.attn_k.weight"), std::string("q4_K")); // ggml's own spelling
    }

    void llamaCppMix()
    {
        const auto l = qs::layoutFromConfigJson(kLlama);
        const qs::Plan plan = qs::makePreset("llama.cpp-Q4_K_M", l);
        const auto r = qs::exportPlan(plan, qs::ExportTarget::LlamaCpp);
        // Nothing but pattern=type lines: llama-quantize has no comments and splits on whitespace.
        std::istringstream in(r.text);
        std::string line;
        while (std::getline(in, line)) {
            QVERIFY(!line.empty());
            QVERIFY(line.find_first_of(" \t#") == std::string::npos);
            QCOMPARE(std::count(line.begin(), line.end(), '='), std::ptrdiff_t(1));
        }
        std::vector<std::string> gguf;
        for (const auto& [t, f] : plan.assignments())
            gguf.push_back(*qs::ggufTensorName(t));
        int maxMatches = 0;
        const auto types = applyLlamaCpp(r.text, gguf, &maxMatches);
        QCOMPARE(maxMatches, 1); // first-match and last-match readings agree
        for (const auto& [t, f] : plan.assignments()) {
            const std::string g = *qs::ggufTensorName(t);
            QVERIFY2(types.count(g), g.c_str());
            QCOMPARE(lower(types.at(g)), lower(f));
        }
        // ggml's own spelling of the types, and the extra flags for the head and embedding.
        QVERIFY(r.text.find("=q6_K\n") != std::string::npos);
        QVERIFY(r.text.find("=q4_K\n") != std::string::npos);
        QCOMPARE(r.commands.size(), size_t(2));
        // The inline form carries the same lines as --tensor-type arguments.
        QVERIFY(r.commands[1].find("--tensor-type '^blk\\.\\d+\\.attn_q\\.weight$=q4_K'") !=
                std::string::npos);
        QVERIFY(r.commands[0].find("--tensor-type-file") != std::string::npos);
        // No --output-tensor-type / --token-embedding-type: they skip llama.cpp's fallback step; the head
        // and the embedding are lines of the type file like every other tensor.
        for (const auto& c : r.commands) {
            QVERIFY(c.find("--output-tensor-type") == std::string::npos);
            QVERIFY(c.find("--token-embedding-type") == std::string::npos);
        }
        QCOMPARE(types.at("output.weight"), std::string("q6_K"));
        QCOMPARE(types.at("token_embd.weight"), std::string("q4_K"));
        // The notes say what current llama.cpp does: overrides go through the fallback step, and no
        // importance matrix is asked for k-quants.
        bool fallbackNote = false;
        for (const auto& n : r.notes) {
            QVERIFY(n.find("skips an override") == std::string::npos);
            QVERIFY(n.find("imatrix") == std::string::npos);
            fallbackNote |= n.find("no fallback") != std::string::npos ||
                            n.find("fallback step") != std::string::npos;
        }
        QVERIFY(fallbackNote);
    }

    void llamaCppTakesMxfp4AndIq4()
    {
        const auto l = qs::layoutFromConfigJson(kLlama);
        qs::Plan plan = qs::makePreset("all-Q4_K", l);
        plan.assign("model.layers.1.mlp.up_proj.weight", "MXFP4");
        plan.assign("model.layers.2.mlp.up_proj.weight", "IQ4_NL");
        plan.assign("model.layers.3.mlp.up_proj.weight", "IQ4_XS");
        const auto r = qs::exportPlan(plan, qs::ExportTarget::LlamaCpp);
        QVERIFY(r.text.find("^blk\\.1\\.ffn_up\\.weight$=mxfp4\n") != std::string::npos);
        QVERIFY(r.text.find("=iq4_nl\n") != std::string::npos);
        QVERIFY(r.text.find("=iq4_xs\n") != std::string::npos);
        // IQ4_NL and IQ4_XS need no importance matrix (tensor_requires_imatrix).
        for (const auto& n : r.notes)
            QVERIFY(n.find("--imatrix") == std::string::npos);
    }

    void llamaCppRefusesIntegerFormats()
    {
        const auto l = qs::layoutFromConfigJson(kLlama);
        qs::Plan plan = qs::makePreset("all-Q4_K", l);
        plan.assign("model.layers.1.mlp.up_proj.weight", "INT4-g128-asym");
        plan.assign("model.layers.2.mlp.up_proj.weight", "NF4");
        try {
            qs::exportPlan(plan, qs::ExportTarget::LlamaCpp);
            QFAIL("exported INT4 to llama.cpp");
        } catch (const qs::ExportError& e) {
            QCOMPARE(e.problems().size(), size_t(2));
            QCOMPARE(e.problems()[0].tensor, std::string("model.layers.1.mlp.up_proj.weight"));
            QCOMPARE(e.problems()[0].format, std::string("INT4-g128-asym"));
            QCOMPARE(e.code(), qs::ErrorCode::Unsupported);
            QVERIFY(std::string(e.what()).find("INT4-g128-asym") != std::string::npos);
        }
        // llama.cpp does not fuse q/k/v: a mismatch is fine there.
        plan = qs::makePreset("all-Q4_K", l);
        plan.assign("model.layers.1.self_attn.v_proj.weight", "Q6_K");
        QVERIFY(!qs::exportPlan(plan, qs::ExportTarget::LlamaCpp).text.empty());
    }

    void gptqModel()
    {
        const auto l = qs::layoutFromConfigJson(kLlama);
        const qs::Plan plan = mixedIntPlan(l);
        const auto r = qs::exportPlan(plan, qs::ExportTarget::GptqModel);
        const QJsonObject cfg = QJsonDocument::fromJson(QByteArray::fromStdString(r.text)).object();
        QCOMPARE(cfg.value(QStringLiteral("bits")).toInt(), 4);
        QCOMPARE(cfg.value(QStringLiteral("group_size")).toInt(), 128);
        QCOMPARE(cfg.value(QStringLiteral("sym")).toBool(), false);
        QCOMPARE(cfg.value(QStringLiteral("quant_method")).toString(), QStringLiteral("gptq"));
        QCOMPARE(cfg.value(QStringLiteral("lm_head")).toBool(), true);
        for (const auto& [t, f] : plan.assignments()) {
            if (qs::classifyTensor(t).role == qs::TensorRole::Embedding)
                continue; // GPTQModel never touches embeddings
            const std::string m = *qs::hfModuleName(t);
            QVERIFY2(applyGptq(cfg, m) == expected(f), m.c_str());
        }
    }

    void gptqModelRefusals()
    {
        const auto l = qs::layoutFromConfigJson(kLlama);
        // ggml types.
        try {
            qs::exportPlan(qs::makePreset("llama.cpp-Q4_K_M", l), qs::ExportTarget::GptqModel);
            QFAIL("exported Q4_K to GPTQModel");
        } catch (const qs::ExportError& e) {
            // All 30 planned tensors, plus q/k/v of blocks 2 and 3 whose attn_v is Q6_K (fused mismatch).
            QCOMPARE(e.problems().size(), size_t(30 + 6));
            QCOMPARE(e.problems()[0].tensor, std::string("lm_head.weight"));
            QCOMPARE(e.problems()[0].format, std::string("Q6_K"));
        }
        // Fused q/k/v with different formats.
        qs::Plan p = mixedIntPlan(l);
        p.assign("model.layers.3.self_attn.v_proj.weight", "INT8-ch-sym");
        try {
            qs::exportPlan(p, qs::ExportTarget::GptqModel);
            QFAIL("exported mismatched q/k/v");
        } catch (const qs::ExportError& e) {
            QCOMPARE(e.problems().size(), size_t(3));
            QVERIFY(e.problems()[0].reason.find("fused") != std::string::npos);
        }
        // Quantized embeddings, per-tensor scales, 5 bits.
        p = mixedIntPlan(l);
        p.assign("model.embed_tokens.weight", "INT8-ch-sym");
        p.assign("model.layers.3.mlp.down_proj.weight", "INT8-tensor-sym");
        p.assign("model.layers.2.mlp.down_proj.weight", "INT5-g128-asym");
        try {
            qs::exportPlan(p, qs::ExportTarget::GptqModel);
            QFAIL("exported an impossible GPTQ plan");
        } catch (const qs::ExportError& e) {
            QCOMPARE(e.problems().size(), size_t(3));
        }
    }

    void compressedTensors()
    {
        const auto l = qs::layoutFromConfigJson(kLlama);
        qs::Plan plan = mixedIntPlan(l);
        const auto asCt = [&](const qs::Plan& p) {
            const auto r = qs::exportPlan(p, qs::ExportTarget::CompressedTensors);
            return QJsonDocument::fromJson(QByteArray::fromStdString(r.text))
                .object()
                .value(QStringLiteral("quantization_config"))
                .toObject();
        };
        QJsonObject qc = asCt(plan);
        QCOMPARE(qc.value(QStringLiteral("quant_method")).toString(), QStringLiteral("compressed-tensors"));
        QCOMPARE(qc.value(QStringLiteral("format")).toString(), QStringLiteral("pack-quantized"));
        for (const auto& [t, f] : plan.assignments()) {
            if (qs::classifyTensor(t).role == qs::TensorRole::Embedding)
                continue;
            const std::string m = *qs::hfModuleName(t);
            QVERIFY2(applyCompressedTensors(qc, m) == expected(f), m.c_str());
        }
        // FP8 joins as a float group: mixed precision.
        for (int b = 1; b < 4; ++b)
            plan.assign("model.layers." + std::to_string(b) + ".self_attn.o_proj.weight", "FP8-E4M3-ch");
        qc = asCt(plan);
        QCOMPARE(qc.value(QStringLiteral("format")).toString(), QStringLiteral("mixed-precision"));
        QCOMPARE(applyCompressedTensors(qc, "model.layers.2.self_attn.o_proj"),
                 (Effective{true, 8, -1, true, true}));
        // ggml formats are refused.
        plan.assign("model.layers.1.mlp.down_proj.weight", "Q6_K");
        QVERIFY_THROWS_EXCEPTION(qs::ExportError, qs::exportPlan(plan, qs::ExportTarget::CompressedTensors));
    }

    void llmCompressorRecipe()
    {
        const auto l = qs::layoutFromConfigJson(kLlama);
        const qs::Plan plan = mixedIntPlan(l);
        const std::string y = qs::exportPlan(plan, qs::ExportTarget::LlmCompressor).text;
        // Structure of llm-compressor's recipe: a stage, a QuantizationModifier with ignore and
        // config_groups.
        QVERIFY(y.rfind("quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n      ignore: [", 0) ==
                0);
        // Parse the groups back (targets, num_bits, type, symmetric, strategy, group_size) and apply them
        // like compressed-tensors does.
        QJsonObject groups;
        QJsonArray ignore;
        std::istringstream in(y);
        std::string line, current;
        QJsonObject group, weights;
        auto listOf = [](const std::string& l) {
            QJsonArray a;
            std::regex item("'((?:[^']|'')*)'");
            for (std::sregex_iterator it(l.begin(), l.end(), item), end; it != end; ++it)
                a.append(QString::fromStdString(std::regex_replace((*it)[1].str(), std::regex("''"), "'")));
            return a;
        };
        auto flush = [&] {
            if (!current.empty()) {
                group[QStringLiteral("weights")] = weights;
                groups[QString::fromStdString(current)] = group;
            }
            group = {};
            weights = {};
        };
        while (std::getline(in, line)) {
            std::smatch m;
            if (std::regex_search(line, m, std::regex("^      ignore: (.*)$")))
                ignore = listOf(m[1]);
            else if (std::regex_search(line, m, std::regex("^        (group_\\d+):$"))) {
                flush();
                current = m[1];
            } else if (std::regex_search(line, m, std::regex("^          targets: (.*)$")))
                group[QStringLiteral("targets")] = listOf(m[1]);
            else if (std::regex_search(line, m, std::regex("^            (\\w+): (\\w+)$"))) {
                const QString v = QString::fromStdString(m[2]);
                bool isInt = false;
                const int n = v.toInt(&isInt);
                weights[QString::fromStdString(m[1])] = isInt                         ? QJsonValue(n)
                                                        : v == QLatin1String("true")  ? QJsonValue(true)
                                                        : v == QLatin1String("false") ? QJsonValue(false)
                                                                                      : QJsonValue(v);
            }
        }
        flush();
        QCOMPARE(groups.size(), 3); // INT4 g128 asym, INT4 g32 sym, INT8 channel sym
        QJsonObject qc{{QStringLiteral("config_groups"), groups}, {QStringLiteral("ignore"), ignore}};
        for (const auto& [t, f] : plan.assignments()) {
            if (qs::classifyTensor(t).role == qs::TensorRole::Embedding)
                continue;
            const std::string m = *qs::hfModuleName(t);
            QVERIFY2(applyCompressedTensors(qc, m) == expected(f), m.c_str());
        }
        QVERIFY_THROWS_EXCEPTION(
            qs::ExportError, qs::exportPlan(qs::makePreset("all-Q8_0", l), qs::ExportTarget::LlmCompressor));
    }

    void ggufNamedPlanToHf()
    {
        // A plan made on a GGUF file uses GGUF names; vLLM-style targets get the HF module names.
        qs::Plan p;
        p.assign("blk.0.attn_q.weight", "INT4-g128-asym");
        p.assign("blk.0.attn_k.weight", "INT4-g128-asym");
        p.assign("blk.0.attn_v.weight", "INT4-g128-asym");
        p.assign("output.weight", "BF16");
        const auto cfg = QJsonDocument::fromJson(
                             QByteArray::fromStdString(qs::exportPlan(p, qs::ExportTarget::GptqModel).text))
                             .object();
        QCOMPARE(applyGptq(cfg, "model.layers.0.self_attn.k_proj"), (Effective{true, 4, 128, false, false}));
        QCOMPARE(cfg.value(QStringLiteral("lm_head")).toBool(), false);
    }

    void jsonAndAtomicWrite()
    {
        const auto l = qs::layoutFromConfigJson(kLlama);
        const qs::Plan plan = qs::makePreset("llama.cpp-Q5_K_M", l);
        const auto r = qs::exportPlan(plan, qs::ExportTarget::PlanJson);
        QVERIFY(qs::planFromJson(r.text) == plan);
        QTemporaryDir dir;
        const std::string path = dir.filePath(QStringLiteral("out.txt")).toStdString();
        qs::writeExport(r, path);
        QCOMPARE(qs::loadPlan(path), plan);
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::writeExport(r, "/nonexistent-dir/x.txt"));
    }
};

QTEST_APPLESS_MAIN(TestExport)
#include "tst_export.moc"
