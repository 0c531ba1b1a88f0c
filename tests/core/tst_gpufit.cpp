// Fit to a GPU, jointly with the KV-cache type: the weight budget each KV type leaves (the cache bytes
// computed by hand), the best plan for it (hand-enumerated), the rule that picks the KV type, the quality
// mode (the smallest plan reaching an error, from the trade-off curve), the smallest changes when nothing
// fits, and a certified gap on a 70B-shaped problem.
#include "core/plan/budget.h"
#include "core/plan/gpufit.h"
#include "core/plan/memory.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"

#include <QTest>

namespace {

// 2 layers, 2 kv heads of 32: one token of one layer holds a K and a V row of 64 values:
// f16 2 x 128 = 256 B, q8_0 2 x (2 blocks x 34) = 136 B, q4_0 2 x (2 x 18) = 72 B.
const char* kTiny = R"({"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
 "num_attention_heads":2,"num_key_value_heads":2,"vocab_size":256,"max_position_embeddings":65536,
 "tie_word_embeddings":false})";

constexpr uint64_t KiB = 1024;

// Two items of three formats (bytes in KiB, error): a: (100, 9) (200, 4) (400, 1); b: (100, 8) (200, 2)
// (400, 0). Names that are not the model's tensors: every byte is on the GPU.
qs::BudgetProblem handProblem()
{
    qs::BudgetProblem p;
    p.tensors = {"a", "b"};
    p.options = {{{"Q2", 100 * KiB, 9}, {"Q4", 200 * KiB, 4}, {"Q8", 400 * KiB, 1}},
                 {{"Q2", 100 * KiB, 8}, {"Q4", 200 * KiB, 2}, {"Q8", 400 * KiB, 0}}};
    return p;
}

qs::JointFitRequest tinyRequest()
{
    qs::JointFitRequest r;
    r.footprint.context = 1024;
    r.footprint.runtime.runtime = qs::Runtime::LlamaCpp;
    // Without flash attention the compute buffer does not depend on the cache type (no F16 views), so the
    // weight budgets differ by the cache bytes alone; a fixed overhead given explicitly.
    r.footprint.runtime.flashAttention = false;
    r.footprint.runtime.fixedOverheadBytes = 1000;
    return r;
}

uint64_t restBytes(const qs::ModelLayout& l, const qs::JointFitRequest& r, qs::KvCacheType kv, uint64_t ctx)
{
    qs::FootprintRequest f = r.footprint;
    f.kvType = kv;
    f.context = ctx;
    return qs::estimateFootprint(l, qs::WeightSummary{}, f).totalBytes();
}

qs::GpuSpec gpuOf(uint64_t bytes)
{
    qs::GpuSpec g;
    g.id = "test";
    g.name = "Test GPU";
    g.memoryBytes = bytes;
    g.bandwidthGBps = 100;
    return g;
}

} // namespace

class TestGpuFit : public QObject {
    Q_OBJECT
private slots:
    void candidates()
    {
        using K = qs::KvCacheType;
        QCOMPARE(qs::kvCandidates(qs::Runtime::LlamaCpp), (std::vector<K>{K::F16, K::Q8_0, K::Q4_0}));
        QCOMPARE(qs::kvCandidates(qs::Runtime::Vllm), (std::vector<K>{K::BF16, K::FP8}));
        QCOMPARE(qs::kvCandidates(qs::Runtime::Transformers), (std::vector<K>{K::BF16}));
    }

    void chooseKvForContext()
    {
        const auto l = qs::layoutFromConfigJson(kTiny);
        const auto req0 = tinyRequest();
        // The GPU holds the f16 cache, the runtime and 450 KiB of weights.
        const auto gpu = gpuOf(restBytes(l, req0, qs::KvCacheType::F16, 1024) + 450 * KiB);
        const qs::Plan plan;
        auto fit = qs::jointFit(handProblem(), plan, l, gpu, req0);
        QCOMPARE(fit.alternatives.size(), size_t(3));
        // Per token and layer: f16 256 B, q8_0 136 B, q4_0 72 B; 2 layers x 1024 tokens x 2 (K and V) freed:
        // q8_0 1024 x 2 x 2 x (128 - 68) = 245,760 B = 240 KiB more for the weights, q4_0 1024 x 2 x 2 x 92 = 368 KiB.
        QCOMPARE(fit.alternatives[0].weightBudgetBytes, 450 * KiB);
        QCOMPARE(fit.alternatives[1].weightBudgetBytes, 690 * KiB);
        QCOMPARE(fit.alternatives[2].weightBudgetBytes, 818 * KiB);
        // Best plans, enumerated by hand: 450 KiB: a200 + b200 (error 6; a400 + b100 is 500 KiB);
        // 690 KiB: a400 + b200 (error 3, a200 + b400 gives 4); 818 KiB: a400 + b400 (800 KiB, error 1).
        QCOMPARE(fit.alternatives[0].solution.error, 6.0);
        QCOMPARE(fit.alternatives[1].solution.error, 3.0);
        QCOMPARE(fit.alternatives[2].solution.error, 1.0);
        QCOMPARE(fit.alternatives[1].solution.choice, (std::vector<size_t>{2, 1}));
        for (const auto& a : fit.alternatives) {
            QVERIFY(a.fits);
            QVERIFY(a.solution.optimal);
            QVERIFY(a.totalBytes <= gpu.memoryBytes);
            QVERIFY(a.maxContext >= 1024);
        }
        // 10 %: q8_0 halves f16's error (6 -> 3), q4_0 thirds it again (3 -> 1): q4_0.
        QCOMPARE(fit.chosen, std::optional<size_t>(2));
        QVERIFY(fit.suggestions.empty());
        // 60 %: q8_0 (3 > 0.4 x 6 = 2.4) is not enough, q4_0 (1 <= 2.4) is.
        auto req = req0;
        req.kvSwitchGain = 0.6;
        QCOMPARE(qs::jointFit(handProblem(), plan, l, gpu, req).chosen, std::optional<size_t>(2));
        // 90 %: neither (1 > 0.1 x 6): the finest type stays.
        req.kvSwitchGain = 0.9;
        fit = qs::jointFit(handProblem(), plan, l, gpu, req);
        QCOMPARE(fit.chosen, std::optional<size_t>(0));
        QVERIFY(QString::fromStdString(fit.reason).contains(QLatin1String("finest")));
        // A fixed type: one alternative.
        req.kvTypes = {qs::KvCacheType::Q8_0};
        fit = qs::jointFit(handProblem(), plan, l, gpu, req);
        QCOMPARE(fit.alternatives.size(), size_t(1));
        QCOMPARE(fit.alternatives[0].solution.error, 3.0);
        QCOMPARE(fit.chosen, std::optional<size_t>(0));
        // When f16 does not fit at all (its 150 KiB < the smallest plan's 200 KiB), the finest type that
        // fits is where the choice starts.
        const auto small = gpuOf(restBytes(l, req0, qs::KvCacheType::F16, 1024) + 150 * KiB);
        fit = qs::jointFit(handProblem(), plan, l, small, req0);
        QVERIFY(!fit.alternatives[0].fits);
        // q8_0: 390 KiB -> a200 + b100 = 12 or a100 + b200 = 11 (a200 + b200 is 400 KiB): 11.
        QCOMPARE(fit.alternatives[1].solution.error, 11.0);
        // q4_0: 518 KiB -> a200 + b200 = 6 (a400 + b100 = 500 KiB gives 9): 6 <= 0.9 x 11.
        QCOMPARE(fit.alternatives[2].solution.error, 6.0);
        QCOMPARE(fit.chosen, std::optional<size_t>(2));
    }

    void longestContextForQuality()
    {
        const auto l = qs::layoutFromConfigJson(kTiny);
        auto req = tinyRequest();
        const auto gpu = gpuOf(restBytes(l, req, qs::KvCacheType::F16, 1024) + 450 * KiB);
        // The trade-off curve of the hand problem: (200, 17) (300, 11) (400, 6) (600, 3) (800, 1) KiB: error 3
        // needs 600 KiB (a400 + b200), error 5 too (the 400 KiB plan has 6), error 6 needs 400 KiB.
        req.maxError = 3.0;
        auto fit = qs::jointFit(handProblem(), qs::Plan{}, l, gpu, req);
        QCOMPARE(fit.weightsForQuality, 600 * KiB);
        req.maxError = 5.0;
        QCOMPARE(qs::jointFit(handProblem(), qs::Plan{}, l, gpu, req).weightsForQuality, 600 * KiB);
        req.maxError = 6.0;
        fit = qs::jointFit(handProblem(), qs::Plan{}, l, gpu, req);
        QCOMPARE(fit.weightsForQuality, 400 * KiB);
        // With 400 KiB of weights, each type's context is the longest whose footprint fits; coarser caches
        // go further. At 1024 tokens f16 leaves exactly 450 KiB, so f16 reaches past 1024.
        uint64_t previous = 0;
        for (const auto& a : fit.alternatives) {
            QVERIFY(a.fits);
            QCOMPARE(a.weightsBytes, 400 * KiB);
            qs::WeightSummary w;
            w.bytes = a.weightsBytes;
            qs::FootprintRequest f = req.footprint;
            f.kvType = a.kvType;
            f.context = a.context;
            QVERIFY(qs::estimateFootprint(l, w, f).totalBytes() <= gpu.memoryBytes);
            f.context = a.context + 1;
            QVERIFY(qs::estimateFootprint(l, w, f).totalBytes() > gpu.memoryBytes);
            QVERIFY(a.context > previous);
            previous = a.context;
        }
        QVERIFY(fit.alternatives[0].context > 1024);
        // Without flash attention the F32 mask and KQ scores (ubatch 512 x context x (1 + 2 heads) x 4 B =
        // 6 KiB per token) dwarf the cache (f16 512 B, q4_0 144 B per token): no coarser type buys 10 % more
        // context, the finest stays.
        QVERIFY(double(fit.alternatives[2].context) < 1.1 * double(fit.alternatives[0].context));
        QCOMPARE(fit.chosen, std::optional<size_t>(0));
        // An error below the most precise plan's (0 + 1 = 1) is out of reach.
        req.maxError = 0.5;
        fit = qs::jointFit(handProblem(), qs::Plan{}, l, gpu, req);
        QVERIFY(!fit.chosen);
        QCOMPARE(fit.weightsForQuality, uint64_t(0));
    }

    void suggestionsWhenNothingFits()
    {
        const auto l = qs::layoutFromConfigJson(kTiny);
        const auto req = tinyRequest();
        // q4_0 leaves 100 KiB < the smallest plan's 200 KiB: nothing fits at 1024 tokens.
        const uint64_t memory = restBytes(l, req, qs::KvCacheType::Q4_0, 1024) + 100 * KiB;
        const auto gpu = gpuOf(memory);
        const auto fit = qs::jointFit(handProblem(), qs::Plan{}, l, gpu, req);
        QVERIFY(!fit.chosen);
        bool context = false, gpus = false;
        for (const auto& s : fit.suggestions) {
            if (s.kind == qs::FitChangeKind::Context) {
                context = true;
                // The longest context for the 200 KiB plan, over the types: q4_0's.
                QCOMPARE(s.kvType, qs::KvCacheType::Q4_0);
                QVERIFY(s.context > 0 && s.context < 1024);
                qs::WeightSummary w;
                w.bytes = 200 * KiB;
                qs::FootprintRequest f = req.footprint;
                f.kvType = s.kvType;
                f.context = s.context;
                QVERIFY(qs::estimateFootprint(l, w, f).totalBytes() <= memory);
                f.context = s.context + 1;
                QVERIFY(qs::estimateFootprint(l, w, f).totalBytes() > memory);
            }
            if (s.kind == qs::FitChangeKind::Gpus) {
                gpus = true;
                // Two GPUs: each holds half the KV heads and a copy of the rest; together they leave
                // 2 x (memory - rest per GPU), enough for 200 KiB.
                QCOMPARE(s.gpus, 2u);
                qs::FootprintRequest f = req.footprint;
                f.kvType = s.kvType;
                f.gpuCount = 2;
                const uint64_t rest2 = qs::estimateFootprint(l, qs::WeightSummary{}, f).totalBytes();
                QVERIFY(2 * (memory - rest2) >= 200 * KiB);
            }
        }
        QVERIFY(context);
        QVERIFY(gpus);
    }

    void formatSuggestionOnAModel()
    {
        // A real (config-derived) model: its own budget problem with the llama.cpp tiers, a GPU that does
        // not hold the smallest plan; the suggested uniform format's plan fits, and no more precise
        // format's plan of the same target does.
        const auto l = qs::layoutFromConfigJson(kTiny);
        qs::Plan plan;
        plan.setTarget(qs::ExportTarget::LlamaCpp);
        plan.setTiers({"Q8_0", "F16"});
        const auto problem = qs::makeBudgetProblem(plan, l, {}, {.tieFusedGroups = false, .target = qs::ExportTarget::LlamaCpp});
        auto req = tinyRequest();
        const uint64_t q8 = qs::summarizeWeights(l, qs::planBytesFn(qs::makePreset("all-Q8_0", l, qs::ExportTarget::LlamaCpp))).bytes;
        const uint64_t q4 = qs::summarizeWeights(l, qs::planBytesFn(qs::makePreset("all-Q4_0", l, qs::ExportTarget::LlamaCpp))).bytes;
        QVERIFY(q4 < q8);
        // Memory for the q4_0 cache and a Q4_0 plan (minus its host-resident embedding), not a Q8_0 one.
        qs::FootprintRequest f = req.footprint;
        f.kvType = qs::KvCacheType::Q4_0;
        const uint64_t q4Total = qs::estimateFootprint(l, qs::summarizeWeights(l, qs::planBytesFn(qs::makePreset("all-Q4_0", l, qs::ExportTarget::LlamaCpp))), f).totalBytes();
        const auto gpu = gpuOf(q4Total);
        const auto fit = qs::jointFit(problem, plan, l, gpu, req);
        QVERIFY(!fit.chosen);
        const qs::FitChange* format = nullptr;
        for (const auto& s : fit.suggestions)
            if (s.kind == qs::FitChangeKind::Format)
                format = &s;
        QVERIFY(format);
        // Every candidate format's plan that fits is at most the suggested one's size.
        const auto suggested = qs::makePreset("all-" + format->format, l, qs::ExportTarget::LlamaCpp);
        const uint64_t bytes = qs::summarizeWeights(l, qs::planBytesFn(suggested)).bytes;
        QVERIFY(bytes >= q4);
        QVERIFY(bytes < q8);
    }

    void gpuResidentBytes()
    {
        // Under llama.cpp an untied model's token embedding is in host memory: its item costs no GPU bytes;
        // under vLLM it does.
        const auto l = qs::layoutFromConfigJson(kTiny);
        qs::Plan plan;
        const auto problem = qs::makeBudgetProblem(plan, l, {});
        const auto llama = qs::gpuResidentProblem(problem, l, qs::Runtime::LlamaCpp);
        const auto vllm = qs::gpuResidentProblem(problem, l, qs::Runtime::Vllm);
        bool seen = false;
        for (size_t i = 0; i < problem.tensors.size(); ++i) {
            const bool embedding = problem.tensors[i] == "model.embed_tokens.weight";
            seen = seen || embedding;
            for (size_t o = 0; o < problem.options[i].size(); ++o) {
                QCOMPARE(vllm.options[i][o].bytes, problem.options[i][o].bytes);
                QCOMPARE(llama.options[i][o].bytes, embedding ? uint64_t(0) : problem.options[i][o].bytes);
            }
        }
        QVERIFY(seen);
    }
};

QTEST_GUILESS_MAIN(TestGpuFit)
#include "tst_gpufit.moc"
