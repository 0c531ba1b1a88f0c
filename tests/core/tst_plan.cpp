// Plans: value API, presets (llama.cpp mixes checked tensor by tensor and against llama.cpp's published
// sizes), rules, constraints with their fixes, exact planned bytes, versioned save/load and autosave.
#include "core/plan/memory.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"
#include "core/plan/planio.h"

#include <QFile>
#include <QTemporaryDir>
#include <QTest>
#include <thread>

namespace {

const char* kLlama3_8B = R"({"model_type":"llama","hidden_size":4096,"intermediate_size":14336,
 "num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,"vocab_size":128256,
 "max_position_embeddings":8192,"torch_dtype":"bfloat16"})";
const char* kLlama2_7B = R"({"model_type":"llama","hidden_size":4096,"intermediate_size":11008,
 "num_hidden_layers":32,"num_attention_heads":32,"vocab_size":32000,"torch_dtype":"float16"})";
const char* kTinyTied =
    R"({"model_type":"gemma","hidden_size":256,"intermediate_size":512,"num_hidden_layers":2,
 "num_attention_heads":2,"num_key_value_heads":1,"head_dim":128,"vocab_size":1000,"torch_dtype":"float32"})";

std::string layerName(int i, const char* part)
{
    return "model.layers." + std::to_string(i) + "." + part;
}

double gib(uint64_t b)
{
    return static_cast<double>(b) / (1ull << 30);
}

} // namespace

class TestPlan : public QObject {
    Q_OBJECT
private slots:
    void valueApi()
    {
        qs::Plan p;
        QCOMPARE(p.tiers(), (std::vector<std::string>{"BF16", "Q8_0", "Q6_K", "Q4_K", "INT4-g128-asym",
                                                      "Q3_K", "Q2_K"}));
        QVERIFY(p.assign("a", "q4_k"));
        QCOMPARE(*p.formatOf("a"), std::string("Q4_K")); // canonical spelling
        QVERIFY(!p.assign("a", "Q4_K"));                 // no-op edits report no change
        QCOMPARE(p.assignMany({"a", "b", "c"}, "Q8_0"), size_t(3));
        QCOMPARE(p.assignMany({"a", "b"}, "Q8_0"), size_t(0));
        qs::Plan copy = p;
        QVERIFY(copy == p);
        QVERIFY(copy.unassign("b"));
        QVERIFY(!(copy == p));
        QVERIFY(!copy.formatOf("b"));
        QVERIFY(!p.addTier("q8_0"));
        QVERIFY(p.addTier("Q5_K", 3));
        QCOMPARE(p.tierIndex("q5_k"), 3);
        QVERIFY(p.moveTier(3, 0));
        QCOMPARE(p.tiers().front(), std::string("Q5_K"));
        QVERIFY(p.removeTier("Q5_K"));
        QCOMPARE(p.tierIndex("Q5_K"), -1);
    }

    void llamaCppQ4KM()
    {
        const auto l = qs::layoutFromConfigJson(kLlama3_8B);
        const qs::Plan p = qs::makePreset("llama.cpp-Q4_K_M", l);
        QCOMPARE(p.preset(), std::string("llama.cpp-Q4_K_M"));
        QCOMPARE(p.assignments().size(), size_t(1 + 32 * 7 + 1)); // norms are not planned
        QCOMPARE(*p.formatOf("lm_head.weight"), std::string("Q6_K"));
        QCOMPARE(*p.formatOf("model.embed_tokens.weight"), std::string("Q4_K"));
        // use_more_bits(i, 32): i < 4, i >= 28, or (i - 4) % 3 == 2.
        const int more[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
        for (int i = 0; i < 32; ++i) {
            const bool m = std::find(std::begin(more), std::end(more), i) != std::end(more);
            QCOMPARE(*p.formatOf(layerName(i, "self_attn.v_proj.weight")), std::string(m ? "Q6_K" : "Q4_K"));
            QCOMPARE(*p.formatOf(layerName(i, "mlp.down_proj.weight")), std::string(m ? "Q6_K" : "Q4_K"));
            QCOMPARE(*p.formatOf(layerName(i, "self_attn.q_proj.weight")), std::string("Q4_K"));
            QCOMPARE(*p.formatOf(layerName(i, "self_attn.o_proj.weight")), std::string("Q4_K"));
            QCOMPARE(*p.formatOf(layerName(i, "mlp.up_proj.weight")), std::string("Q4_K"));
        }
        // llama.cpp's quantize tool lists Q4_K_M of Llama-3-8B as 4.58G (GiB); Q5_K_M 5.33G; Q3_K_M 3.74G
        // (its GGUF keeps the 65 norms in F32: 1 MiB more than our BF16 norms).
        const auto size = [&](const char* preset) {
            return gib(qs::summarizeWeights(l, qs::planBytesFn(qs::makePreset(preset, l))).bytes);
        };
        QVERIFY(std::abs(size("llama.cpp-Q4_K_M") - 4.58) < 0.01);
        QVERIFY(std::abs(size("Q5_K_M") - 5.33) < 0.01);
        QVERIFY(std::abs(size("llama.cpp-Q3_K_M") - 3.74) < 0.01);
    }

    void llamaCppQ3KMAndQ5KM()
    {
        const auto l = qs::layoutFromConfigJson(kLlama3_8B);
        const qs::Plan q3 = qs::makePreset("llama.cpp-Q3_K_M", l);
        QCOMPARE(*q3.formatOf(layerName(0, "self_attn.v_proj.weight")), std::string("Q5_K"));
        QCOMPARE(*q3.formatOf(layerName(1, "self_attn.v_proj.weight")), std::string("Q5_K"));
        QCOMPARE(*q3.formatOf(layerName(2, "self_attn.v_proj.weight")), std::string("Q4_K"));
        QCOMPARE(*q3.formatOf(layerName(1, "mlp.down_proj.weight")), std::string("Q5_K")); // i < 32/16
        QCOMPARE(*q3.formatOf(layerName(2, "mlp.down_proj.weight")), std::string("Q4_K"));
        QCOMPARE(*q3.formatOf(layerName(5, "self_attn.o_proj.weight")), std::string("Q4_K"));
        QCOMPARE(*q3.formatOf(layerName(5, "self_attn.k_proj.weight")), std::string("Q3_K"));
        QCOMPARE(*q3.formatOf(layerName(5, "mlp.gate_proj.weight")), std::string("Q3_K"));
        QCOMPARE(*q3.formatOf("lm_head.weight"), std::string("Q6_K"));
        const qs::Plan q5 = qs::makePreset("llama.cpp-Q5_K_M", l);
        QCOMPARE(*q5.formatOf(layerName(6, "self_attn.v_proj.weight")), std::string("Q6_K"));
        QCOMPARE(*q5.formatOf(layerName(7, "self_attn.v_proj.weight")), std::string("Q5_K"));
        QCOMPARE(*q5.formatOf(layerName(7, "mlp.down_proj.weight")), std::string("Q5_K"));
        QCOMPARE(*q5.formatOf("model.embed_tokens.weight"), std::string("Q5_K"));
    }

    void tiedEmbeddingIsTheHead()
    {
        const auto l = qs::layoutFromConfigJson(kTinyTied);
        const qs::Plan p = qs::makePreset("llama.cpp-Q4_K_M", l);
        QCOMPARE(*p.formatOf("model.embed_tokens.weight"), std::string("Q6_K"));
    }

    void fallbackChain()
    {
        // llama.cpp's tensor_type_fallback (src/llama-quant.cpp).
        QCOMPARE(*qs::llamaCppStoredType("Q4_K", 4096), std::string("Q4_K"));
        QCOMPARE(*qs::llamaCppStoredType("Q4_K", 4544), std::string("Q5_0")); // 4544 = 142 x 32, not x 256
        QCOMPARE(*qs::llamaCppStoredType("Q5_K", 4544), std::string("Q5_1"));
        QCOMPARE(*qs::llamaCppStoredType("Q6_K", 4544), std::string("Q8_0"));
        QCOMPARE(*qs::llamaCppStoredType("Q3_K", 4544), std::string("Q4_0")); // IQ4_NL before March 2026
        QCOMPARE(*qs::llamaCppStoredType("Q2_K", 4544), std::string("Q4_0"));
        QCOMPARE(*qs::llamaCppStoredType("IQ4_XS", 4544), std::string("IQ4_NL"));
        QCOMPARE(*qs::llamaCppStoredType("Q6_K", 100), std::string("F16"));
        QCOMPARE(*qs::llamaCppStoredType("INT4-g128-asym", 100), std::string("INT4-g128-asym"));
        // No entry: llama-quantize stops ("no tensor type fallback is defined").
        for (const char* t : {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "MXFP4"})
            QVERIFY2(!qs::llamaCppStoredType(t, 172), t);
        QCOMPARE(*qs::llamaCppStoredType("Q8_0", 4544), std::string("Q8_0"));
        // A mix on a model with 4544-wide rows uses the fallbacks.
        const char* json =
            R"({"model_type":"llama","hidden_size":4544,"intermediate_size":512,"num_hidden_layers":1,
            "num_attention_heads":71,"vocab_size":256,"torch_dtype":"float32"})";
        const auto l = qs::layoutFromConfigJson(json);
        const qs::Plan p = qs::makePreset("Q4_K_M", l);
        QCOMPARE(*p.formatOf(layerName(0, "self_attn.q_proj.weight")), std::string("Q5_0"));
        QCOMPARE(*p.formatOf(layerName(0, "self_attn.v_proj.weight")), std::string("Q8_0")); // Q6_K -> Q8_0
        QCOMPARE(*p.formatOf("lm_head.weight"), std::string("Q8_0"));
        QCOMPARE(*p.formatOf(layerName(0, "mlp.down_proj.weight")), std::string("Q6_K")); // 512 columns
    }

    void otherPresets()
    {
        const auto l = qs::layoutFromConfigJson(kLlama2_7B);
        qs::Plan p = qs::makePreset("keep-embeddings-8bit", l);
        QCOMPARE(*p.formatOf("model.embed_tokens.weight"), std::string("Q8_0"));
        QCOMPARE(*p.formatOf("lm_head.weight"), std::string("Q8_0"));
        QCOMPARE(*p.formatOf(layerName(3, "mlp.up_proj.weight")), std::string("Q4_K"));
        p = qs::makePreset("keep-embeddings-8bit:INT4-g128-asym", l);
        QCOMPARE(*p.formatOf("lm_head.weight"), std::string("INT8-ch-sym"));
        QCOMPARE(*p.formatOf(layerName(3, "mlp.up_proj.weight")), std::string("INT4-g128-asym"));
        p = qs::makePreset("all-Q8_0", l);
        for (const auto& [t, f] : p.assignments())
            QCOMPARE(f, std::string("Q8_0"));
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::makePreset("Q7_K_M", l));
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::makePreset("all-Q9", l));
    }

    void exactBytesLlama2()
    {
        const auto l = qs::layoutFromConfigJson(kLlama2_7B);
        // BF16 everywhere: 2 bytes per parameter.
        QCOMPARE(qs::summarizeWeights(l, qs::planBytesFn(qs::makePreset("all-BF16", l))).bytes,
                 uint64_t(6738415616) * 2);
        // Q4_K_M by hand: Q4_K = 144 bytes / 256 values, Q6_K = 210 / 256; 16 of 32 layers have use_more_bits
        // attn_v and ffn_down in Q6_K; head Q6_K, embedding Q4_K; norms stay F16.
        const uint64_t sq = 4096ull * 4096, ffn = 4096ull * 11008, emb = 32000ull * 4096;
        const auto q4 = [](uint64_t n) { return n / 256 * 144; };
        const auto q6 = [](uint64_t n) { return n / 256 * 210; };
        const uint64_t perLayerBase = q4(sq) * 3 + q4(ffn) * 2; // q, k, o, gate, up
        const uint64_t expected = 32 * perLayerBase + 16 * (q6(sq) + q6(ffn)) + 16 * (q4(sq) + q4(ffn)) +
                                  q4(emb) + q6(emb) + (65 * 4096) * 2;
        const auto plan = qs::makePreset("llama.cpp-Q4_K_M", l);
        QCOMPARE(qs::summarizeWeights(l, qs::planBytesFn(plan)).bytes, expected);
        QCOMPARE(expected, uint64_t(4079730688)); // 3.80 GiB, as llama.cpp reports for Llama-2-7B Q4_K_M
        // Unassigned tensors keep their stored size.
        qs::Plan empty;
        QCOMPARE(qs::summarizeWeights(l, qs::planBytesFn(empty)).bytes, uint64_t(6738415616) * 2);
    }

    void stories260KSample()
    {
        // The real sample GGUF (F32, dim 64, FFN 172): llama.cpp's Q4_K_M there is almost all fallbacks.
        const auto l = qs::openLayout(QS_SAMPLE_DIR "/stories260K/stories260K.gguf");
        QCOMPARE(l.parameterCount(), uint64_t(292800));
        const qs::Plan p = qs::makePreset("llama.cpp-Q4_K_M", l);
        QCOMPARE(*p.formatOf("token_embd.weight"), std::string("Q5_0")); // Q4_K -> Q5_0 (64 % 256 != 0)
        QCOMPARE(*p.formatOf("output.weight"), std::string("Q8_0")); // head: Q8_0 when 256 does not divide
        QCOMPARE(*p.formatOf("blk.2.attn_v.weight"),
                 std::string("Q8_0")); // use_more_bits(2, 5): Q6_K -> Q8_0
        QCOMPARE(*p.formatOf("blk.1.attn_v.weight"), std::string("Q5_0"));
        QCOMPARE(*p.formatOf("blk.0.ffn_down.weight"), std::string("F16")); // 172 % 32 != 0
        // By hand: Q5_0 22 bytes / 32 values, Q8_0 34 / 32, F16 2 per value, norms stay F32.
        const uint64_t q50 = 22, q80 = 34;
        const uint64_t embed = 512 * 64 / 32 * q50, head = 512 * 64 / 32 * q80;
        const uint64_t layer = 64 * 64 / 32 * q50 * 2 /* q, o */ + 32 * 64 / 32 * q50 /* k */ +
                               2 * (172 * 64 / 32 * q50) /* gate, up */ + 64 * 172 * 2 /* down */ +
                               2 * 64 * 4;
        const uint64_t v = 3 * (32 * 64 / 32 * q50) + 2 * (32 * 64 / 32 * q80); // layers 2 and 4 in Q8_0
        const uint64_t expected = embed + head + 5 * layer + v + 64 * 4;
        QCOMPARE(expected, uint64_t(289696));
        QCOMPARE(qs::summarizeWeights(l, qs::planBytesFn(p)).bytes, expected);
        // And its KV cache from the GGUF metadata: 5 layers x 4 kv heads x 8 x 2 x 2 bytes per token.
        QCOMPARE(qs::kvCacheBytes(l.config, 512, 1, qs::KvCacheType::F16), uint64_t(512 * 640));
    }

    void rules()
    {
        const auto l = qs::layoutFromConfigJson(kLlama2_7B);
        const auto rules = qs::parseRules("# comment\n"
                                          "role:attn_v=Q8_0\n"
                                          "layers\\.(0|1)\\.=Q6_K\n"
                                          "mlp=Q3_K\n");
        QCOMPARE(rules.size(), size_t(3));
        QCOMPARE(rules[0].match, qs::PlanRule::Match::Role);
        qs::Plan p;
        qs::applyRules(p, l, rules, "Q4_K");
        QCOMPARE(*p.formatOf(layerName(0, "self_attn.v_proj.weight")),
                 std::string("Q8_0")); // first match wins
        QCOMPARE(*p.formatOf(layerName(0, "mlp.down_proj.weight")), std::string("Q6_K"));
        QCOMPARE(*p.formatOf(layerName(5, "mlp.down_proj.weight")), std::string("Q3_K"));
        QCOMPARE(*p.formatOf(layerName(5, "self_attn.q_proj.weight")), std::string("Q4_K"));
        QVERIFY(!p.formatOf(layerName(5, "input_layernorm.weight")));
        const auto json = qs::parseRules(
            R"({"rules":[{"regex":"lm_head","format":"Q8_0"},{"role":"embedding","format":"BF16"}]})");
        QCOMPARE(json.size(), size_t(2));
        QCOMPARE(json[1].pattern, std::string("embedding"));
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::applyRules(p, l, qs::parseRules("([=Q4_K"), ""));
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::applyRules(p, l, qs::parseRules("role:spleen=Q4_K"), ""));
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::applyRules(p, l, qs::parseRules("x=Q9_Z"), ""));
        QVERIFY_THROWS_EXCEPTION(qs::FormatError, qs::parseRules("no equals sign"));
    }

    void fusedConstraint()
    {
        const auto l = qs::layoutFromConfigJson(kLlama2_7B);
        qs::Plan p = qs::makePreset("all-Q4_K", l);
        QVERIFY(qs::checkPlan(p, l).empty());
        QCOMPARE(qs::fusedGroups(l).size(), size_t(64)); // q/k/v and gate/up of 32 blocks
        p.assign(layerName(3, "self_attn.v_proj.weight"), "Q6_K");
        auto issues = qs::checkPlan(p, l);
        QCOMPARE(issues.size(), size_t(1));
        QCOMPARE(issues[0].kind, qs::PlanIssueKind::FusedMismatch);
        QCOMPARE(issues[0].tensors.size(), size_t(3));
        QCOMPARE(issues[0].fixes.size(), size_t(2));
        const qs::Plan raised = qs::applyFix(p, issues[0].fixes[0]);
        QCOMPARE(*raised.formatOf(layerName(3, "self_attn.q_proj.weight")), std::string("Q6_K"));
        QVERIFY(qs::checkPlan(raised, l).empty());
        const qs::Plan lowered = qs::applyFix(p, issues[0].fixes[1]);
        QCOMPARE(*lowered.formatOf(layerName(3, "self_attn.v_proj.weight")), std::string("Q4_K"));
        QVERIFY(qs::checkPlan(lowered, l).empty());
        // llama.cpp does not fuse: the check can be switched off.
        QVERIFY(qs::checkPlan(p, l, {false}).empty());
    }

    void shapeConstraint()
    {
        const char* json =
            R"({"model_type":"llama","hidden_size":4544,"intermediate_size":512,"num_hidden_layers":1,
            "num_attention_heads":71,"vocab_size":256,"torch_dtype":"float32"})";
        const auto l = qs::layoutFromConfigJson(json);
        qs::Plan p = qs::makePreset("all-Q8_0", l);
        const std::string q = layerName(0, "self_attn.q_proj.weight");
        p.assign(q, "Q4_K");
        p.assign("model.layers.0.input_layernorm.weight", "Q8_0");
        const auto issues = qs::checkPlan(p, l, {false});
        QCOMPARE(issues.size(), size_t(2));
        const qs::PlanIssue* shape = nullptr;
        const qs::PlanIssue* norm = nullptr;
        for (const auto& i : issues)
            (i.kind == qs::PlanIssueKind::UnsupportedShape ? shape : norm) = &i;
        QVERIFY(shape && norm);
        QCOMPARE(norm->kind, qs::PlanIssueKind::NotPlannable);
        QCOMPARE(shape->fixes.front().assignments.at(q), std::string("Q5_0"));
        QVERIFY(shape->fixes.front().label.find("fallback") != std::string::npos);
        qs::Plan fixed = qs::applyFix(qs::applyFix(p, shape->fixes.front()), norm->fixes.front());
        QVERIFY(qs::checkPlan(fixed, l, {false}).empty());
        // The unusable assignment counts the format it is stored in (llama.cpp's Q5_0), not the stored F32.
        QCOMPARE(qs::plannedBytes(p, *l.find(q)), uint64_t(4544) * 4544 / 32 * 22);
        QCOMPARE(qs::plannedBytes(fixed, *l.find(q)), uint64_t(4544) * 4544 / 32 * 22);
    }

    void saveLoadRoundTrip()
    {
        QTemporaryDir dir;
        const auto l = qs::layoutFromConfigJson(kLlama2_7B);
        qs::Plan p = qs::makePreset("keep-embeddings-8bit", l);
        p.addTier("Q5_K", 3);
        p.addTier("INT4-g128-asym");
        QVERIFY(p.setTierMethod("int4-g128-asym", qs::QuantMethod::Gptq));
        QVERIFY(p.setTierMethod("Q5_K", qs::QuantMethod::Awq));
        const std::string path = dir.filePath(QStringLiteral("p.json")).toStdString();
        qs::savePlan(p, path);
        const qs::Plan back = qs::loadPlan(path);
        QVERIFY(back == p);
        QCOMPARE(int(back.tierMethod("INT4-g128-asym")), int(qs::QuantMethod::Gptq));
        QCOMPARE(int(back.tierMethod("Q5_K")), int(qs::QuantMethod::Awq));
        QCOMPARE(int(back.tierMethod("Q4_K")), int(qs::QuantMethod::Rtn));
        QCOMPARE(back.identity().tensorCount, uint64_t(l.tensors.size()));
        QCOMPARE(back.identity().parameterCount, uint64_t(6738415616));
        QVERIFY(qs::planMatchesModel(back, l));
        std::string why;
        QVERIFY(!qs::planMatchesModel(back, qs::layoutFromConfigJson(kLlama3_8B), &why));
        QVERIFY(!why.empty());
        // Saving over an existing file replaces it whole and leaves no temporary behind.
        qs::savePlan(qs::makePreset("all-Q8_0", l), path);
        QCOMPARE(qs::loadPlan(path).preset(), std::string("all-Q8_0"));
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files).size(), 1);
    }

    void tierMethods()
    {
        const auto l = qs::layoutFromConfigJson(kLlama2_7B);
        qs::Plan p = qs::makePreset("all-INT4-g128-asym", l);
        p.addTier("INT4-g128-asym");
        const std::string q = "model.layers.0.self_attn.q_proj.weight";
        QCOMPARE(int(p.methodOf(q)), int(qs::QuantMethod::Rtn));
        QVERIFY(p.setTierMethod("INT4-g128-asym", qs::QuantMethod::Gptq));
        QVERIFY(!p.setTierMethod("INT4-g128-asym", qs::QuantMethod::Gptq)); // no change, no undo step
        QCOMPARE(int(p.methodOf(q)), int(qs::QuantMethod::Gptq));
        QCOMPARE(int(p.methodOf("no.such.tensor")), int(qs::QuantMethod::Rtn));
        // What a method cannot do is refused with the reason.
        QVERIFY_THROWS_EXCEPTION(qs::Error, p.setTierMethod("BF16", qs::QuantMethod::Gptq));
        QVERIFY_THROWS_EXCEPTION(qs::Error, p.setTierMethod("BF16", qs::QuantMethod::Awq));
        QVERIFY_THROWS_EXCEPTION(qs::Error, p.setTierMethod("Q5_1", qs::QuantMethod::Awq)); // not a tier
        QVERIFY(p.setTierMethod("Q4_K", qs::QuantMethod::Awq));
        QVERIFY(qs::quantMethodProblem(qs::QuantMethod::Gptq, "BF16").find("not an integer") !=
                std::string::npos);
        // GPTQ rounds into the ggml block grids it knows, not into the others.
        QVERIFY(qs::quantMethodProblem(qs::QuantMethod::Gptq, "Q4_K").empty());
        QVERIFY(qs::quantMethodProblem(qs::QuantMethod::Gptq, "Q8_0").empty());
        QVERIFY(!qs::quantMethodProblem(qs::QuantMethod::Gptq, "MXFP4").empty());
        QVERIFY(!qs::quantMethodProblem(qs::QuantMethod::Gptq, "INT4-tensor-sym").empty());
        // Removing a tier, or replacing the tier list, forgets its method.
        QVERIFY(p.removeTier("INT4-g128-asym"));
        QCOMPARE(int(p.methodOf(q)), int(qs::QuantMethod::Rtn));
        QVERIFY(p.addTier("INT4-g128-asym"));
        QCOMPARE(int(p.tierMethod("INT4-g128-asym")), int(qs::QuantMethod::Rtn));
        p.setTiers({"q4_k"});
        QCOMPARE(int(p.tierMethod("Q4_K")), int(qs::QuantMethod::Awq));
        QCOMPARE(p.tierMethods().begin()->first, std::string("q4_k"));
        p.setTiers({"Q8_0"});
        QVERIFY(p.tierMethods().empty());
        QCOMPARE(*qs::quantMethodFromName("GPTQ"), qs::QuantMethod::Gptq);
        QVERIFY(!qs::quantMethodFromName("gptq2"));
    }

    void loadRejects_data()
    {
        QTest::addColumn<QString>("json");
        QTest::addColumn<int>("kind");
        const int notJson = int(qs::PlanErrorKind::NotJson), notPlan = int(qs::PlanErrorKind::NotAPlan),
                  version = int(qs::PlanErrorKind::UnsupportedVersion),
                  field = int(qs::PlanErrorKind::BadField);
        QTest::newRow("truncated") << QStringLiteral("{\"format\":\"quantscope-plan\",\"vers") << notJson;
        QTest::newRow("array") << "[1]" << notPlan;
        QTest::newRow("other format") << R"({"format":"something","version":1})" << notPlan;
        QTest::newRow("no version") << R"({"format":"quantscope-plan","tiers":[],"assignments":{}})"
                                    << version;
        QTest::newRow("future") << R"({"format":"quantscope-plan","version":2,"tiers":[],"assignments":{}})"
                                << version;
        QTest::newRow("zero") << R"({"format":"quantscope-plan","version":0,"tiers":[],"assignments":{}})"
                              << version;
        QTest::newRow("tiers")
            << R"({"format":"quantscope-plan","version":1,"tiers":"Q4_K","assignments":{}})" << field;
        QTest::newRow("assignment")
            << R"({"format":"quantscope-plan","version":1,"tiers":[],"assignments":{"a":3}})" << field;
        QTest::newRow("rule")
            << R"({"format":"quantscope-plan","version":1,"tiers":[],"rules":[{"format":"Q4_K"}],
                                    "assignments":{}})"
            << field;
        QTest::newRow("method of no tier")
            << R"({"format":"quantscope-plan","version":1,"tiers":["Q4_K"],"tier_methods":{"Q8_0":"awq"},
                                    "assignments":{}})"
            << field;
        QTest::newRow("unknown method")
            << R"({"format":"quantscope-plan","version":1,"tiers":["Q4_K"],"tier_methods":{"Q4_K":"spqr"},
                                    "assignments":{}})"
            << field;
        QTest::newRow("gptq on a format it cannot take")
            << R"({"format":"quantscope-plan","version":1,"tiers":["MXFP4"],"tier_methods":{"MXFP4":"gptq"},
                                    "assignments":{}})"
            << field;
        QTest::newRow("count")
            << R"({"format":"quantscope-plan","version":1,"model":{"tensor_count":-1},"tiers":[],
                                     "assignments":{}})"
            << field;
        // Fuzz finding (fuzz_plan, UBSan): a file size beyond uint64_t was converted unchecked.
        QTest::newRow("file size too large")
            << R"({"format":"quantscope-plan","version":1,"model":{"file_sizes":[2.2e65]},"tiers":[],
                                     "assignments":{}})"
            << field;
        QTest::newRow("fractional file size")
            << R"({"format":"quantscope-plan","version":1,"model":{"file_sizes":[1.5]},"tiers":[],
                                     "assignments":{}})"
            << field;
        QTest::newRow("fractional count")
            << R"({"format":"quantscope-plan","version":1,"model":{"parameter_count":7.25},"tiers":[],
                                     "assignments":{}})"
            << field;
        // JSON allows no raw control characters in strings; QJsonDocument would accept them.
        QTest::newRow("raw NUL in a key")
            << QString::fromLatin1("{\"format\":\"quantscope-plan\",\"version\":1,\"tiers\":[],"
                                   "\"assignments\":{\"a\0b\":\"Q4_K\"}}",
                                   80)
            << notJson;
        QTest::newRow("raw newline in a value")
            << QStringLiteral("{\"format\":\"quantscope-plan\",\"version\":1,\"tiers\":[],\"preset\":\"a\nb\","
                              "\"assignments\":{}}")
            << notJson;
    }

    // Lists longer than any real plan needs are refused by count, before they are converted (a 40 MB plan
    // with 5 million tiers used to take 577 MB).
    void loadLimits()
    {
        auto expect = [](const std::string& json, const std::string& field, const char* what) {
            try {
                qs::planFromJson(json, "p.json");
                QFAIL("accepted");
            } catch (const qs::PlanFileError& e) {
                QCOMPARE(e.kind(), qs::PlanErrorKind::BadField);
                QCOMPARE(e.field(), field);
                QVERIFY2(e.detail().find(what) != std::string::npos, e.what());
            }
        };
        const std::string head = R"({"format":"quantscope-plan","version":1,)";
        std::string tiers = "[";
        for (int i = 0; i < 257; ++i)
            tiers += (i ? ",\"T" : "\"T") + std::to_string(i) + "\"";
        tiers += "]";
        expect(head + "\"tiers\":" + tiers + ",\"assignments\":{}}", "tiers", "257 tiers exceed the limit of 256");
        std::string rules = "[";
        for (int i = 0; i < 65537; ++i)
            rules += i ? ",{}" : "{}";
        rules += "]";
        expect(head + "\"tiers\":[],\"rules\":" + rules + ",\"assignments\":{}}", "rules",
               "65537 rules exceed the limit of 65536");
        std::string sizes = "[";
        for (int i = 0; i < 65537; ++i)
            sizes += i ? ",1" : "1";
        sizes += "]";
        expect(head + "\"model\":{\"file_sizes\":" + sizes + "},\"tiers\":[],\"assignments\":{}}",
               "model.file_sizes", "65537 file sizes");
        // 256 tiers are accepted.
        std::string ok = "[";
        for (int i = 0; i < 256; ++i)
            ok += (i ? ",\"T" : "\"T") + std::to_string(i) + "\"";
        ok += "]";
        QCOMPARE(qs::planFromJson(head + "\"tiers\":" + ok + ",\"assignments\":{}}").tiers().size(), size_t(256));
    }

    void loadRejects()
    {
        QFETCH(QString, json);
        QFETCH(int, kind);
        try {
            qs::planFromJson(json.toStdString(), "p.json");
            QFAIL("accepted a bad plan");
        } catch (const qs::PlanFileError& e) {
            QCOMPARE(int(e.kind()), kind);
            QCOMPARE(e.file(), std::string("p.json"));
        }
    }

    void missingFile()
    {
        try {
            qs::loadPlan("/nonexistent/plan.json");
            QFAIL("loaded a missing file");
        } catch (const qs::PlanFileError& e) {
            QCOMPARE(e.kind(), qs::PlanErrorKind::Io);
        }
    }

    void autosave()
    {
        QTemporaryDir data;
        qputenv("XDG_DATA_HOME", data.path().toUtf8());
        const std::string key = "/models/llama/config.json";
        QVERIFY(qs::autosaveDirectory().string().rfind(data.path().toStdString(), 0) == 0);
        QVERIFY(!qs::newerAutosave(key));
        const auto l = qs::layoutFromConfigJson(kLlama2_7B);
        const qs::Plan p = qs::makePreset("all-Q6_K", l);
        const auto path = qs::writeAutosave(p, key);
        QCOMPARE(path, qs::autosavePath(key));
        QVERIFY(qs::autosavePath("other") != path);
        // Never saved: the autosave is offered.
        QCOMPARE(*qs::newerAutosave(key), path);
        QVERIFY(qs::loadPlan(*qs::newerAutosave(key)) == p);
        // A saved plan newer than the autosave: nothing to restore; older: restore offered.
        const std::string saved = data.filePath(QStringLiteral("saved.json")).toStdString();
        qs::savePlan(p, saved);
        const auto t = std::filesystem::last_write_time(path);
        std::filesystem::last_write_time(saved, t + std::chrono::seconds(10));
        QVERIFY(!qs::newerAutosave(key, saved));
        std::filesystem::last_write_time(saved, t - std::chrono::seconds(10));
        QCOMPARE(*qs::newerAutosave(key, saved), path);
        qs::discardAutosave(key);
        QVERIFY(!qs::newerAutosave(key, saved));
    }
};

QTEST_APPLESS_MAIN(TestPlan)
#include "tst_plan.moc"
