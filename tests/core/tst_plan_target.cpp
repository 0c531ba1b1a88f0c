// Plans made for a target: llama.cpp's fallback table (src/llama-quant.cpp, tensor_type_fallback), the
// format each tensor is stored in, presets per target that the target's export accepts, constraint checks
// that depend on the target, and the size prediction checked against a real quantize of the sample.
#include "core/model/model.h"
#include "core/plan/budget.h"
#include "core/plan/export.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"
#include "core/plan/planio.h"
#include "core/plan/target.h"
#include "core/quant/format.h"
#include "core/quant/quantize.h"
#include "core/util/error.h"

#include <QTemporaryDir>
#include <QTest>
#include <set>

namespace {

const char* kSample = QS_SAMPLE_DIR "/stories260K/stories260K.gguf";

// Llama-3-8B: 32 layers, GQA 4, untied head.
const char* kLlama3_8B = R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":4096,
 "intermediate_size":14336,"num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,
 "vocab_size":128256,"max_position_embeddings":8192,"tie_word_embeddings":false,"torch_dtype":"bfloat16"})";

const char* kSmall = R"({"model_type":"llama","hidden_size":256,"intermediate_size":512,"num_hidden_layers":2,
 "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":512,"tie_word_embeddings":false,
 "torch_dtype":"bfloat16"})";

qs::ExportTarget allTargets[] = {qs::ExportTarget::LlamaCpp, qs::ExportTarget::GptqModel,
                                 qs::ExportTarget::LlmCompressor, qs::ExportTarget::CompressedTensors,
                                 qs::ExportTarget::PlanJson};

} // namespace

class TestPlanTarget : public QObject {
    Q_OBJECT
private slots:
    void fallbackTableIsData()
    {
        size_t n = 0;
        const auto* table = qs::llamaCppFallbackTable(&n);
        QCOMPARE(n, size_t(15));
        std::map<std::string, std::string> m;
        for (size_t i = 0; i < n; ++i)
            m[table[i].from] = table[i].to;
        QCOMPARE(m.at("Q2_K"), std::string("Q4_0"));
        QCOMPARE(m.at("Q3_K"), std::string("Q4_0"));
        QCOMPARE(m.at("IQ3_S"), std::string("IQ4_NL"));
        QCOMPARE(m.at("IQ4_XS"), std::string("IQ4_NL"));
        QCOMPARE(m.at("Q4_K"), std::string("Q5_0"));
        QCOMPARE(m.at("Q5_K"), std::string("Q5_1"));
        QCOMPARE(m.at("Q6_K"), std::string("Q8_0"));
        for (const char* none : {"Q8_0", "Q4_0", "Q5_0", "Q4_1", "Q5_1", "IQ4_NL", "MXFP4"})
            QVERIFY2(!m.count(none), none);
    }

    void storableFormats()
    {
        const auto l = qs::openLayout(kSample);
        const qs::TensorInfo& down = *l.find("blk.0.ffn_down.weight"); // 64 x 172
        const qs::TensorInfo& q = *l.find("blk.0.attn_q.weight");      // 64 x 64
        QCOMPARE(down.columns(), uint64_t(172));
        using T = qs::ExportTarget;
        // Q8_0 on 172-wide rows: llama.cpp defines no fallback; F16 is what it can be given instead.
        auto s = qs::storableFormat("Q8_0", down, T::LlamaCpp);
        QCOMPARE(s.format, std::string("F16"));
        QVERIFY(s.reason.find("no fallback") != std::string::npos);
        // Q4_K on 64-wide rows: Q5_0; on 172-wide rows Q5_0 does not divide either: F16.
        QCOMPARE(qs::storableFormat("Q4_K", q, T::LlamaCpp).format, std::string("Q5_0"));
        QCOMPARE(qs::storableFormat("Q4_K", down, T::LlamaCpp).format, std::string("F16"));
        QCOMPARE(qs::storableFormat("Q3_K", q, T::PlanJson).format, std::string("Q4_0"));
        QCOMPARE(qs::storableFormat("Q8_0", q, T::LlamaCpp).format, std::string("Q8_0"));
        QVERIFY(!qs::storableFormat("Q8_0", q, T::LlamaCpp).changed());
        QCOMPARE(qs::storableFormat("MXFP4", q, T::LlamaCpp).format, std::string("MXFP4"));
        // Targets that cannot express a format refuse it, with the reason.
        s = qs::storableFormat("INT4-g128-asym", q, T::LlamaCpp);
        QVERIFY(s.refused());
        QVERIFY(s.reason.find("llama.cpp has no INT4-g128-asym") != std::string::npos);
        QVERIFY(qs::storableFormat("Q4_K", q, T::GptqModel).refused());
        QVERIFY(qs::storableFormat("FP8-E5M2", q, T::CompressedTensors).refused());
        QCOMPARE(qs::storableFormat("FP8-E4M3-ch", q, T::CompressedTensors).format, std::string("FP8-E4M3-ch"));
        // Hugging Face targets: GPTQ packing takes a partial last group (172 = 128 + 44), so INT4-g128 stays;
        // the embedding stays in BF16 (only Linear layers are quantized).
        QCOMPARE(qs::storableFormat("INT4-g128-asym", down, T::GptqModel).format, std::string("INT4-g128-asym"));
        QCOMPARE(qs::storableFormat("INT4-g128-asym", *l.find("token_embd.weight"), T::CompressedTensors).format,
                 std::string("BF16"));
        QVERIFY(qs::storableFormat("Q9_9", q, T::PlanJson).refused());
    }

    // The prediction counts the format actually stored, and our GGUF writer (byte-identical to
    // llama-quantize for the same types) writes exactly that.
    void sampleAllQ8_0IsStorableAndPredicted()
    {
        auto model = qs::openModel(kSample);
        const auto l = qs::layoutFromModel(*model);
        std::vector<std::string> notes;
        const qs::Plan plan = qs::makePreset("all-Q8_0", l, qs::ExportTarget::LlamaCpp, &notes);
        QCOMPARE(*plan.formatOf("blk.0.ffn_down.weight"), std::string("F16"));
        QCOMPARE(*plan.formatOf("blk.0.ffn_up.weight"), std::string("Q8_0")); // 172 x 64: 64-wide rows
        QCOMPARE(notes.size(), size_t(5)); // one ffn_down per layer
        QVERIFY(qs::checkPlan(plan, l, qs::checkOptionsFor(qs::ExportTarget::LlamaCpp)).empty());
        // By hand: Q8_0 is 34 bytes per 32 values. Embedding and head 512 x 64 -> 34,816 each; per layer
        // q, o 64 x 64 -> 4,352; k, v 32 x 64 -> 2,176; gate, up 172 x 64 -> 11,696; down 64 x 172 in F16
        // -> 22,016; two F32 norms 512. Five layers of 58,976 and the F32 output norm (256).
        const uint64_t expected = 2 * 34816 + 5 * (2 * 4352 + 2 * 2176 + 2 * 11696 + 22016 + 512) + 256;
        QCOMPARE(expected, uint64_t(364768));
        QCOMPARE(qs::summarizeWeights(l, qs::planBytesFn(plan)).bytes, expected);

        QTemporaryDir dir;
        qs::QuantizeParams p;
        p.model = model;
        p.plan = plan;
        p.output = (dir.path() + QStringLiteral("/all-q8_0.gguf")).toStdString();
        QVERIFY(qs::validateQuantize(p).empty());
        qs::QuantizeJob job(p);
        QCOMPARE(job.run(), qs::JobStatus::Succeeded);
        QCOMPARE(job.result().predictedWeightBytes, expected);
        QCOMPARE(job.result().weightBytesWritten, expected);
        auto out = qs::openModel(job.result().files[0]);
        for (const auto& [t, f] : plan.assignments())
            QCOMPARE(std::string(qs::dtypeName(out->find(t)->dtype)), f);
    }

    // Q3_K_M on the sample: Q3_K on 64-wide rows becomes Q4_0 (the March 2026 rule), ffn_down F16.
    void sampleQ3_K_MPredicted()
    {
        auto model = qs::openModel(kSample);
        const auto l = qs::layoutFromModel(*model);
        const qs::Plan plan = qs::makePreset("llama.cpp-Q3_K_M", l, qs::ExportTarget::LlamaCpp);
        QCOMPARE(*plan.formatOf("blk.0.attn_q.weight"), std::string("Q4_0"));
        QCOMPARE(*plan.formatOf("blk.1.ffn_down.weight"), std::string("F16"));
        QCOMPARE(*plan.formatOf("blk.0.attn_v.weight"), std::string("Q5_1")); // Q5_K (first two layers)
        QCOMPARE(*plan.formatOf("blk.2.attn_output.weight"), std::string("Q5_0")); // Q4_K
        QTemporaryDir dir;
        qs::QuantizeParams p;
        p.model = model;
        p.plan = plan;
        p.output = (dir.path() + QStringLiteral("/q3km.gguf")).toStdString();
        qs::QuantizeJob job(p);
        QCOMPARE(job.run(), qs::JobStatus::Succeeded);
        QCOMPARE(job.result().weightBytesWritten, job.result().predictedWeightBytes);
        QCOMPARE(job.result().weightBytesWritten, qs::summarizeWeights(l, qs::planBytesFn(plan)).bytes);
        // The llama.cpp export of it is accepted and holds no flag that skips the fallback step.
        const auto r = qs::exportPlan(plan, qs::ExportTarget::LlamaCpp);
        QVERIFY(r.text.find("=q4_0\n") != std::string::npos);
        QVERIFY(r.text.find("output\\.weight$=q8_0\n") != std::string::npos);
    }

    // For every target, a preset either refuses with the reason or yields a plan the target's export
    // accepts.
    void presetsPerTargetExport()
    {
        const auto l = qs::layoutFromConfigJson(kSmall);
        const std::vector<std::string> presets = {"llama.cpp-Q4_K_M", "llama.cpp-Q3_K_M", "all-Q8_0",
                                                  "all-Q4_0",         "all-MXFP4",        "all-INT4-g128-asym",
                                                  "all-INT8-ch-sym",  "all-FP8-E4M3-ch",  "keep-embeddings-8bit:INT4-g128-asym"};
        int accepted = 0, refused = 0;
        for (auto target : allTargets) {
            for (const auto& name : presets) {
                qs::Plan plan;
                try {
                    plan = qs::makePreset(name, l, target);
                } catch (const qs::Error& e) {
                    ++refused;
                    QCOMPARE(e.code(), qs::ErrorCode::BadValue);
                    QVERIFY(std::string(e.what()).find("cannot be expressed") != std::string::npos);
                    continue;
                }
                ++accepted;
                // llama.cpp's own mixes are plans for llama.cpp even when asked for "any".
                const bool mix = name.starts_with("llama.cpp-");
                QCOMPARE(plan.target(), mix && target == qs::ExportTarget::PlanJson ? qs::ExportTarget::LlamaCpp
                                                                                   : target);
                try {
                    qs::exportPlan(plan, target);
                } catch (const qs::ExportError& e) {
                    QFAIL((name + " for " + qs::exportTargetName(target) + ": " + e.what()).c_str());
                }
                const auto issues = qs::checkPlan(plan, l, qs::checkOptionsFor(target));
                for (const auto& i : issues)
                    QVERIFY2(i.kind != qs::PlanIssueKind::NotExpressible &&
                                 i.kind != qs::PlanIssueKind::UnsupportedShape,
                             i.message.c_str());
            }
        }
        QVERIFY(accepted > 15);
        QVERIFY(refused > 10);
        // GPTQModel: the llama.cpp mix is refused, naming a tensor and why.
        try {
            qs::makePreset("llama.cpp-Q4_K_M", l, qs::ExportTarget::GptqModel);
            QFAIL("a ggml mix for GPTQModel");
        } catch (const qs::Error& e) {
            QVERIFY(std::string(e.what()).find("GPTQModel stores integer GPTQ weights only") != std::string::npos);
        }
        // The tiers a target's plan starts with are all expressible for it.
        for (auto target : allTargets) {
            const qs::Plan plan = qs::makePreset("all-BF16", l, target);
            for (const auto& tier : plan.tiers())
                QVERIFY2(!qs::targetFormatProblem(target, *qs::findFormat(tier), qs::TensorRole::MlpUp),
                         tier.c_str());
        }
    }

    // q/k/v "fused" warnings only where the runtime fuses them: llama.cpp's own Q4_K_M on Llama-3-8B keeps
    // attn_v of 16 layers in Q6_K, which vLLM would reject and llama.cpp runs.
    void fusedWarningsDependOnTarget()
    {
        const auto l = qs::layoutFromConfigJson(kLlama3_8B);
        const qs::Plan plan = qs::makePreset("llama.cpp-Q4_K_M", l, qs::ExportTarget::LlamaCpp);
        QVERIFY(qs::checkPlan(plan, l, qs::checkOptionsFor(qs::ExportTarget::LlamaCpp)).empty());
        const auto vllm = qs::checkPlan(plan, l, {true});
        QCOMPARE(vllm.size(), size_t(16));
        QVERIFY(!qs::targetFusesGroups(qs::ExportTarget::LlamaCpp));
        QVERIFY(qs::targetFusesGroups(qs::ExportTarget::CompressedTensors));
        // The same plan checked for compressed-tensors: every ggml type is reported as not expressible.
        const auto ct = qs::checkPlan(plan, l, qs::checkOptionsFor(qs::ExportTarget::CompressedTensors));
        size_t notExpressible = 0;
        for (const auto& i : ct)
            notExpressible += i.kind == qs::PlanIssueKind::NotExpressible;
        QCOMPARE(notExpressible, plan.assignments().size());
    }

    // Fit to budget for llama.cpp offers the formats tensors are stored in, never INT4, and its solution
    // exports.
    void budgetForLlamaCpp()
    {
        const auto l = qs::openLayout(kSample);
        qs::Plan plan; // default tiers: BF16, Q8_0, Q6_K, Q4_K, INT4-g128-asym, Q3_K, Q2_K
        plan.setIdentity(qs::identityOf(l));
        qs::BudgetOptions o;
        o.target = qs::ExportTarget::LlamaCpp;
        const auto problem = qs::makeBudgetProblem(plan, l, {}, o);
        for (size_t i = 0; i < problem.tensors.size(); ++i) {
            std::set<std::string> formats;
            for (const auto& opt : problem.options[i])
                formats.insert(opt.format);
            if (problem.tensors[i] == "blk.0.attn_q.weight")
                QCOMPARE(formats, (std::set<std::string>{"BF16", "Q8_0", "Q5_0", "Q4_0"}));
            if (problem.tensors[i] == "blk.0.ffn_down.weight")
                QCOMPARE(formats, (std::set<std::string>{"BF16", "F16"}));
            QVERIFY(!formats.count("INT4-g128-asym"));
        }
        const auto sol = qs::solveBudget(problem, 300000);
        QVERIFY(sol.feasible);
        const qs::Plan fitted = qs::applySolution(plan, problem, sol);
        QVERIFY(qs::checkPlan(fitted, l, qs::checkOptionsFor(qs::ExportTarget::LlamaCpp)).empty());
        qs::exportPlan(fitted, qs::ExportTarget::LlamaCpp); // does not throw
        QVERIFY(qs::summarizeWeights(l, qs::planBytesFn(fitted)).bytes <= 300000);
    }

    // The issue's "done when": fit to budget for each target yields a plan that the target's export and its
    // quantize accept, at every budget from the smallest possible plan to the largest. The tiers offered are
    // every family (float, ggml blocks, INT per channel/group, FP8, MXFP4); each target keeps what it can
    // express and substitutes what a shape cannot hold.
    void budgetPerTargetExportsAndQuantizes_data()
    {
        QTest::addColumn<int>("target");
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("quantizeTarget");
        const QString gguf = QString::fromUtf8(kSample);
        const QString hf = QStringLiteral(QS_SAMPLE_DIR "/stories260K/hf-f32");
        using E = qs::ExportTarget;
        using Q = qs::QuantizeTarget;
        QTest::newRow("llamacpp") << int(E::LlamaCpp) << gguf << int(Q::Gguf);
        QTest::newRow("compressed-tensors") << int(E::CompressedTensors) << hf << int(Q::CompressedTensors);
        QTest::newRow("llmcompressor") << int(E::LlmCompressor) << hf << int(Q::CompressedTensors);
        QTest::newRow("gptqmodel") << int(E::GptqModel) << hf << int(Q::Gptq);
    }
    void budgetPerTargetExportsAndQuantizes()
    {
        QFETCH(int, target);
        QFETCH(QString, model);
        QFETCH(int, quantizeTarget);
        const auto t = qs::ExportTarget(target);
        const auto m = qs::openModel(model.toStdString());
        const auto l = qs::layoutFromModel(*m);
        qs::Plan plan;
        plan.setIdentity(qs::identityOf(l));
        plan.setTarget(t);
        plan.setTiers({"BF16", "F16", "Q8_0", "Q6_K", "Q5_K", "Q4_K", "Q4_0", "IQ4_NL", "Q3_K", "Q2_K", "MXFP4",
                       "INT8-ch-sym", "FP8-E4M3-ch", "INT4-g32-sym", "INT4-g128-asym", "INT3-g64-asym"});
        QCOMPARE(plan.tiers().size(), size_t(16)); // every name is a known format
        qs::BudgetOptions o;
        o.target = t;
        o.tieFusedGroups = qs::targetFusesGroups(t);
        const auto problem = qs::makeBudgetProblem(plan, l, {}, o);
        QVERIFY(!problem.tensors.empty());
        // The smallest and the largest plan, and budgets between them.
        const uint64_t smallest = qs::solveBudget(problem, 0).bytes;
        uint64_t largest = problem.fixedBytes;
        for (const auto& opts : problem.options) {
            uint64_t most = 0;
            for (const auto& opt : opts)
                most = std::max(most, opt.bytes);
            largest += most;
        }
        QVERIFY(smallest < largest);
        QTemporaryDir dir;
        std::set<std::string> formatsUsed;
        for (int step = 0; step <= 6; ++step) {
            const uint64_t budget = smallest + (largest - smallest) * uint64_t(step) / 6;
            const auto sol = qs::solveBudget(problem, budget);
            QVERIFY(sol.feasible);
            QVERIFY(sol.bytes <= budget);
            const qs::Plan fitted = qs::applySolution(plan, problem, sol);
            for (const auto& [tensor, format] : fitted.assignments())
                formatsUsed.insert(format);
            const std::string where = std::string(qs::exportTargetName(t)) + " at " + std::to_string(budget);
            for (const auto& i : qs::checkPlan(fitted, l, qs::checkOptionsFor(t)))
                QVERIFY2(i.kind != qs::PlanIssueKind::NotExpressible && i.kind != qs::PlanIssueKind::UnsupportedShape,
                         (where + ": " + i.message).c_str());
            try {
                qs::exportPlan(fitted, t);
            } catch (const qs::ExportError& e) {
                QFAIL((where + ": export refused: " + e.what()).c_str());
            }
            qs::QuantizeParams p;
            p.model = m;
            p.plan = fitted;
            p.target = qs::QuantizeTarget(quantizeTarget);
            p.output = (dir.path() + QStringLiteral("/out-%1").arg(step)).toStdString() +
                       (p.target == qs::QuantizeTarget::Gguf ? ".gguf" : "");
            for (const auto& problem : qs::validateQuantize(p))
                QFAIL((where + ": quantize refused: " + problem.toString()).c_str());
            // The prediction the fit used is what quantize will write for the planned tensors.
            QCOMPARE(qs::summarizeWeights(l, qs::planBytesFn(fitted)).bytes, sol.bytes);
        }
        // The budgets reached more than the two ends of the tier list.
        QVERIFY2(formatsUsed.size() >= 3, std::to_string(formatsUsed.size()).c_str());
    }

    void targetSavedWithThePlan()
    {
        QTemporaryDir dir;
        const auto l = qs::layoutFromConfigJson(kSmall);
        const qs::Plan plan = qs::makePreset("all-INT4-g128-asym", l, qs::ExportTarget::GptqModel);
        QCOMPARE(*plan.formatOf("model.embed_tokens.weight"), std::string("BF16"));
        const std::string path = dir.filePath(QStringLiteral("p.json")).toStdString();
        qs::savePlan(plan, path);
        const qs::Plan back = qs::loadPlan(path);
        QCOMPARE(back.target(), qs::ExportTarget::GptqModel);
        QVERIFY(back == plan);
        QCOMPARE(*qs::exportTargetFromName("compressed-tensors"), qs::ExportTarget::CompressedTensors);
        QCOMPARE(*qs::exportTargetFromName("any"), qs::ExportTarget::PlanJson);
    }
};

QTEST_APPLESS_MAIN(TestPlanTarget)
#include "tst_plan_target.moc"
