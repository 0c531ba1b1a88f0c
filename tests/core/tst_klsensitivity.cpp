// Measured ΔKL sensitivity (core/infer/klsensitivity.h) on code-3m, a real trained model:
// - a unit's ΔKL equals an independent computation: two full forward passes (Transformer::forward with a KV
//   cache, the original and one with a plan fake-quantizing only that unit), llama-perplexity's scored
//   positions, log-softmax and KL in float64 — for a tensor of a middle layer, the embedding, the head and
//   a whole attention group;
// - the cache (keyed by the token windows), the memory bound, the refusals, the JSON read back by the
//   budget fit;
// - the experiment of issue 11's "Done when": on separate token windows for fitting and for measuring,
//   (a) a budget fit from measured ΔKL has a lower measured KL than the weight-error fit at the same size,
//   (b) at the size of llama.cpp's Q4_K_M mix the ΔKL-guided mix over llama.cpp's tiers has a lower measured
//   mean KL than the Q4_K_M mix. All numbers are printed (docs/sensitivity.md quotes them).
#include "core/infer/evaluate.h"
#include "core/kl_reference.h"
#include "core/infer/forward.h"
#include "core/infer/klsensitivity.h"
#include "core/model/model.h"
#include "core/plan/budget.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"
#include "core/plan/sensitivityfile.h"
#include "core/quant/format.h"
#include "core/quant/sensitivity.h"
#include "core/util/error.h"
#include "core/util/fileio.h"
#include "core/util/job.h"

#include <QJsonDocument>
#include <QTemporaryDir>
#include <QTest>
#include <algorithm>
#include <cmath>
#include <cstdio>

namespace {

const std::string kCode3m = QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf";
const std::string kCodeText = QS_TEST_DATA "/eval/python-textwrap.txt";

// Mean KL(original || plan) over the scored positions of windows first .. first+chunks-1, by two full forward
// passes (kl_reference.h).
double referenceKl(const std::shared_ptr<const qs::Model>& model, const std::vector<int32_t>& tokens,
                   uint32_t ctx, uint32_t first, uint32_t chunks, int32_t bos, const qs::Plan& plan)
{
    return reference(model, tokens, ctx, chunks, bos, &plan, first).kldMean;
}

const qs::KlSensitivityCell* cellOf(const qs::KlSensitivityResult& r, const std::string& unit,
                                    const std::string& format)
{
    for (const auto& c : r.cells)
        if (c.unit == unit && c.format == format)
            return &c;
    return nullptr;
}

} // namespace

class TestKlSensitivity : public QObject {
    Q_OBJECT

    std::shared_ptr<const qs::Model> m_model;
    std::string m_text;
    std::vector<int32_t> m_tokens;

    qs::KlSensitivityParams params(uint32_t ctx, uint32_t first, uint32_t chunks,
                                   std::vector<std::string> formats) const
    {
        qs::KlSensitivityParams p;
        p.model = m_model;
        p.tokens = m_tokens;
        p.options.ctx = ctx;
        p.options.firstChunk = first;
        p.options.maxChunks = chunks;
        p.options.formats = std::move(formats);
        return p;
    }

private slots:
    void initTestCase()
    {
        m_model = qs::openModel(kCode3m);
        m_text = qs::readRegularFile(kCodeText, 1 << 20, "text");
        m_tokens = qs::evaluationTokens(*m_model, m_text);
        QVERIFY(m_tokens.size() > 1000);
        QCOMPARE(m_tokens.front(), 0); // BOS
    }

    void unitsByGranularity()
    {
        const auto tensors = qs::klUnits(*m_model, qs::KlGranularity::Tensor);
        QCOMPARE(tensors.size(), size_t(1 + 4 * 7 + 1)); // embedding, 4 blocks x 7 matrices, head
        QCOMPARE(tensors.front().first, std::string("token_embd.weight"));
        QCOMPARE(tensors.back().first, std::string("output.weight"));
        QCOMPARE(tensors[1].first, std::string("blk.0.attn_q.weight"));
        const auto groups = qs::klUnits(*m_model, qs::KlGranularity::Group);
        QCOMPARE(groups.size(), size_t(1 + 4 * 2 + 1));
        QCOMPARE(groups[1].first, std::string("blk.0.attn"));
        QCOMPARE(groups[1].second, (std::vector<std::string>{"blk.0.attn_q.weight", "blk.0.attn_k.weight",
                                                             "blk.0.attn_v.weight", "blk.0.attn_output.weight"}));
        QCOMPARE(groups[2].second.size(), size_t(3));
    }

    // ΔKL from the cached hidden states equals two full forward passes with a one-unit plan.
    void deltaKlEqualsIndependentForward()
    {
        const uint32_t ctx = 64, first = 1, chunks = 2;
        qs::KlSensitivityParams p = params(ctx, first, chunks, {"Q2_K", "Q4_K"});
        const qs::KlSensitivityResult r = qs::measureKlSensitivity(p);
        QCOMPARE(r.ctx, ctx);
        QCOMPARE(r.chunks, chunks);
        QCOMPARE(r.positions, size_t(chunks) * (ctx - 1 - ctx / 2));
        QCOMPARE(r.cells.size(), size_t(30 * 2));
        for (const auto& c : r.cells) {
            QVERIFY2(c.ok(), c.error.c_str());
            QVERIFY(c.deltaKl > 0);
            QVERIFY(c.maxKl >= c.deltaKl);
        }
        for (const auto& [unit, format] : std::vector<std::pair<std::string, std::string>>{
                 {"blk.2.ffn_down.weight", "Q2_K"},
                 {"blk.0.attn_v.weight", "Q4_K"},
                 {"token_embd.weight", "Q2_K"},
                 {"output.weight", "Q2_K"}}) {
            const auto* c = cellOf(r, unit, format);
            QVERIFY(c);
            qs::Plan plan;
            plan.assign(unit, format);
            const double ref = referenceKl(m_model, m_tokens, ctx, first, chunks, 0, plan);
            std::printf("ΔKL %-24s %-5s measured %.6g, two forward passes %.6g\n", unit.c_str(), format.c_str(),
                        c->deltaKl, ref);
            QVERIFY2(std::abs(c->deltaKl - ref) <= 1e-3 * ref + 1e-7, unit.c_str());
            // Exact size: the format's stored bytes of the tensor.
            const qs::TensorInfo& t = *m_model->find(unit);
            QCOMPARE(c->bytes, *qs::findFormat(format)->storedBytes(t.rows(), t.columns()));
        }
        // Two bits cost more than four, for every unit.
        for (const auto& [unit, members] : qs::klUnits(*m_model, qs::KlGranularity::Tensor))
            QVERIFY2(cellOf(r, unit, "Q2_K")->deltaKl > cellOf(r, unit, "Q4_K")->deltaKl, unit.c_str());

        // A layer group: all of its tensors quantized at once.
        p.options.granularity = qs::KlGranularity::Group;
        p.options.formats = {"Q2_K"};
        const qs::KlSensitivityResult g = qs::measureKlSensitivity(p);
        const auto* attn = cellOf(g, "blk.1.attn", "Q2_K");
        QVERIFY(attn);
        qs::Plan plan;
        for (const auto& n : attn->tensors)
            plan.assign(n, "Q2_K");
        const double ref = referenceKl(m_model, m_tokens, ctx, first, chunks, 0, plan);
        std::printf("ΔKL blk.1.attn (q/k/v/o) Q2_K measured %.6g, two forward passes %.6g\n", attn->deltaKl, ref);
        QVERIFY(std::abs(attn->deltaKl - ref) <= 1e-3 * ref + 1e-7);
        uint64_t bytes = 0;
        for (const auto& n : attn->tensors)
            bytes += *qs::findFormat("Q2_K")->storedBytes(m_model->find(n)->rows(), m_model->find(n)->columns());
        QCOMPARE(attn->bytes, bytes);
        // The embedding and the head are units of their own at both granularities.
        QCOMPARE(cellOf(g, "token_embd.weight", "Q2_K")->deltaKl, cellOf(r, "token_embd.weight", "Q2_K")->deltaKl);
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::errorTableFromKl(g));
    }

    void cacheKeyedByWindows()
    {
        QTemporaryDir dir;
        qs::KlSensitivityParams p = params(32, 0, 2, {"Q3_K"});
        p.options.useCache = true;
        p.options.cacheDir = dir.path().toStdString();
        const qs::KlSensitivityResult a = qs::measureKlSensitivity(p);
        QCOMPARE(a.cachedCells, size_t(0));
        QVERIFY(std::filesystem::exists(qs::klSensitivityCacheFile(*m_model, a.windowsHash, p.options.cacheDir)));
        size_t delivered = 0;
        const qs::KlSensitivityResult b =
            qs::measureKlSensitivity(p, [&](const qs::KlSensitivityCell& c) { delivered += c.fromCache; });
        QCOMPARE(b.cachedCells, a.cells.size());
        QCOMPARE(delivered, a.cells.size());
        for (size_t i = 0; i < a.cells.size(); ++i) {
            QVERIFY(b.cells[i].fromCache);
            QCOMPARE(b.cells[i].deltaKl, a.cells[i].deltaKl);
            QCOMPARE(b.cells[i].bytes, a.cells[i].bytes);
        }
        // Other windows: another key, measured again.
        p.options.firstChunk = 2;
        const qs::KlSensitivityResult c = qs::measureKlSensitivity(p);
        QVERIFY(c.windowsHash != a.windowsHash);
        QCOMPARE(c.cachedCells, size_t(0));
        // A cancelled run keeps what it measured and throws.
        p.options.firstChunk = 4;
        qs::JobControl job([](double, const std::string&) {});
        size_t seen = 0;
        QVERIFY_THROWS_EXCEPTION(qs::CancelledError, qs::measureKlSensitivity(p, [&](const qs::KlSensitivityCell&) {
                                     if (++seen == 3)
                                         job.cancel();
                                 }, &job));
        const qs::KlSensitivityResult d = qs::measureKlSensitivity(p);
        QCOMPARE(d.cachedCells, size_t(3));
    }

    void memoryBoundAndRefusals()
    {
        // code-3m: 5 x 256 hidden floats per token plus 31 x 1024 log-probabilities per window of 64.
        const uint64_t perChunk = 5ull * 256 * 64 * 4 + 31ull * 1024 * 4;
        qs::KlSensitivityParams p = params(64, 0, 4, {"Q4_K"});
        p.options.maxMemoryBytes = 2 * perChunk + 10;
        const qs::KlSensitivityResult r = qs::measureKlSensitivity(p);
        QCOMPARE(r.chunks, 2u);
        QCOMPARE(r.memoryBytes, 2 * perChunk);
        QCOMPARE(r.notes.size(), size_t(1));
        p.options.maxMemoryBytes = perChunk - 1;
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::measureKlSensitivity(p));
        // The token bound: whole windows.
        p = params(64, 0, 0, {"Q4_K"});
        p.options.maxTokens = 200;
        QCOMPARE(qs::measureKlSensitivity(p).chunks, 3u);
        p = params(64, 1000, 0, {"Q4_K"}); // nothing left after skipping
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::measureKlSensitivity(p));
        p = params(64, 0, 1, {"no-such-format"});
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::measureKlSensitivity(p));
        p = params(512, 0, 1, {"Q4_K"}); // above code-3m's context of 256
        QVERIFY_THROWS_EXCEPTION(qs::Error, qs::measureKlSensitivity(p));
    }

    // The JSON the CLI prints is read back by the budget fit as ΔKL, the same table as in-process.
    void jsonFeedsTheBudget()
    {
        const qs::KlSensitivityResult r = qs::measureKlSensitivity(params(32, 0, 2, {"Q8_0", "Q3_K"}));
        const qs::ErrorTable direct = qs::errorTableFromKl(r);
        QCOMPARE(direct.size(), size_t(30));
        const std::string json = QJsonDocument(qs::klSensitivityJson(r, *m_model)).toJson().toStdString();
        const qs::SensitivityTable file = qs::sensitivityTableFromJson(json, true, "kl.json");
        QVERIFY(file.measure == qs::ErrorMeasure::DeltaKl);
        const qs::ErrorTable read = qs::errorTableFromJson(json); // the budget fit's reader: the same numbers
        QVERIFY(read == file.errors);
        QCOMPARE(read.size(), direct.size());
        for (const auto& [tensor, row] : direct)
            for (const auto& [format, e] : row)
                QVERIFY(std::abs(read.at(tensor).at(format) - e) <= 1e-12 * e);
        // As weight-error-style cells (the GUI's views): the same table back.
        const qs::ErrorTable viaCells = qs::errorTableFromSensitivity(qs::sensitivityCellsFromKl(r, *m_model));
        for (const auto& [tensor, row] : direct)
            for (const auto& [format, e] : row)
                QVERIFY(std::abs(viaCells.at(tensor).at(format) - e) <= 1e-9 * e);
        // A weight-error file still reads as such.
        const qs::SensitivityTable w = qs::sensitivityTableFromJson(
            R"({"results":[{"tensor":"a","format":"Q4_K","rows":2,"cols":3,"mse":0.5}]})", true, "w.json");
        QVERIFY(w.measure == qs::ErrorMeasure::WeightError);
        QCOMPARE(w.errors.at("a").at("Q4_K"), 3.0);
        QVERIFY_THROWS_EXCEPTION(qs::FormatError,
                                 qs::errorTableFromJson(R"({"measure":"kl","results":[{"tensor":"a","format":"Q4_K"}]})"));
        QVERIFY_THROWS_EXCEPTION(
            qs::FormatError,
            qs::errorTableFromJson(R"({"measure":"kl","granularity":"group","results":[]})"));
    }

    // Issue 11, "Done when": the ΔKL-guided fit against the weight-error fit and llama.cpp's Q4_K_M mix.
    void klGuidedMixBeatsWeightErrorAndQ4KM()
    {
        const uint32_t ctx = 64;
        const uint32_t windows = uint32_t(m_tokens.size() / ctx);
        const uint32_t fitChunks = windows / 4; // windows 0 .. fitChunks-1 fit, the rest measure
        const std::vector<std::string> tiers = qs::defaultTiersFor(qs::ExportTarget::LlamaCpp);

        qs::KlSensitivityParams p = params(ctx, 0, fitChunks, tiers);
        const qs::KlSensitivityResult kl = qs::measureKlSensitivity(p);
        qs::SensitivityOptions so;
        so.formats = tiers;
        const qs::ErrorTable klTable = qs::errorTableFromKl(kl);
        const qs::ErrorTable weightTable = qs::errorTableFromSensitivity(qs::computeSensitivity(*m_model, so));

        const qs::ModelLayout layout = qs::layoutFromModel(*m_model);
        const qs::Plan q4km = qs::makePreset("llama.cpp-Q4_K_M", layout);
        const qs::Plan q3km = qs::makePreset("llama.cpp-Q3_K_M", layout);
        qs::BudgetOptions bo;
        bo.target = qs::ExportTarget::LlamaCpp;
        auto fit = [&](const qs::ErrorTable& table, uint64_t budget, double* predicted) {
            const qs::BudgetProblem problem = qs::makeBudgetProblem(q4km, layout, table, bo);
            const qs::BudgetSolution s = qs::solveBudget(problem, budget);
            if (!s.feasible || s.bytes > budget)
                throw std::runtime_error("no fit");
            *predicted = s.error;
            return qs::applySolution(q4km, problem, s);
        };
        // Measured on the other windows, the original's distributions computed once.
        std::shared_ptr<const qs::EvalBaseline> baseline;
        auto measure = [&](const qs::Plan& plan) {
            qs::EvalParams e;
            e.model = m_model;
            e.tokens.assign(m_tokens.begin() + ptrdiff_t(size_t(fitChunks) * ctx), m_tokens.end());
            e.ctx = ctx;
            e.plan = plan;
            e.baseline = baseline;
            const qs::EvalResult r = qs::evaluate(e);
            baseline = r.baseline;
            return r.kldMean;
        };
        auto bytesOf = [&](const qs::Plan& plan) { return qs::summarizeWeights(layout, qs::planBytesFn(plan)).bytes; };
        std::printf("code-3m, %zu tokens: ΔKL fitted on windows 0-%u, KL measured on windows %u-%u (%u tokens each); "
                    "%zu ΔKL cells in %.1f s\n",
                    m_tokens.size(), fitChunks - 1, fitChunks, windows - 1, ctx, kl.cells.size(), kl.seconds);

        for (const auto& [name, preset] : {std::pair{"Q4_K_M", &q4km}, std::pair{"Q3_K_M", &q3km}}) {
            const uint64_t budget = bytesOf(*preset);
            double predictedKl = 0, predictedW = 0;
            const qs::Plan byKl = fit(klTable, budget, &predictedKl);
            const qs::Plan byWeights = fit(weightTable, budget, &predictedW);
            const double mixKl = measure(*preset), klFit = measure(byKl), weightFit = measure(byWeights);
            const double predictedMix = qs::planError(*preset, layout, klTable).error;
            std::printf("at the size of %s (%llu bytes):\n", name, static_cast<unsigned long long>(budget));
            std::printf("  %-28s %9llu bytes  predicted KL %.5f  measured KL %.5f\n", name,
                        static_cast<unsigned long long>(budget), predictedMix, mixKl);
            std::printf("  %-28s %9llu bytes  predicted KL %.5f  measured KL %.5f\n", "weight-error fit",
                        static_cast<unsigned long long>(bytesOf(byWeights)),
                        qs::planError(byWeights, layout, klTable).error, weightFit);
            std::printf("  %-28s %9llu bytes  predicted KL %.5f  measured KL %.5f\n", "ΔKL fit",
                        static_cast<unsigned long long>(bytesOf(byKl)), predictedKl, klFit);
            std::printf("  ΔKL fit vs %s: %.1f %% lower KL; vs the weight-error fit: %.1f %% lower\n", name,
                        100.0 * (1.0 - klFit / mixKl), 100.0 * (1.0 - klFit / weightFit));
            QVERIFY(bytesOf(byKl) <= budget);
            QVERIFY(bytesOf(byWeights) <= budget);
            // (a) and (b): the real inequalities, on windows the fit never saw.
            QVERIFY(klFit < weightFit);
            QVERIFY(klFit < mixKl);
            if (std::string(name) == "Q4_K_M") // the issue's goal: at least 15 % below llama.cpp's mix
                QVERIFY(klFit < 0.85 * mixKl);
        }
    }
};

QTEST_APPLESS_MAIN(TestKlSensitivity)
#include "tst_klsensitivity.moc"
