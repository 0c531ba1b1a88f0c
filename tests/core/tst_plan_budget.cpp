// Fit to budget: the multiple-choice knapsack solver against brute force (exact optimum) on many small
// random instances, a hand-computed case, infeasibility, the node limit's proven bound, and the trade-off
// curve.
#include "core/jobs/jobs.h"
#include "core/plan/budget.h"
#include "core/plan/modellayout.h"
#include "core/quant/format.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QTest>
#include <cmath>
#include <random>

namespace {

qs::BudgetProblem randomProblem(std::mt19937& rng, size_t items, size_t optionsPerItem)
{
    qs::BudgetProblem p;
    std::uniform_int_distribution<int> bytes(1, 60);
    std::uniform_real_distribution<double> err(0.0, 10.0);
    for (size_t i = 0; i < items; ++i) {
        p.tensors.push_back("t" + std::to_string(i));
        std::vector<qs::BudgetOption> opts;
        for (size_t o = 0; o < optionsPerItem; ++o)
            opts.push_back({"f" + std::to_string(o), static_cast<uint64_t>(bytes(rng)), err(rng)});
        p.options.push_back(std::move(opts));
    }
    p.fixedBytes = 7;
    return p;
}

} // namespace

class TestPlanBudget : public QObject {
    Q_OBJECT
private slots:
    void handComputed()
    {
        // Two tensors, three formats each (bytes, error):
        //   a: (10, 9) (20, 4) (40, 1)      b: (10, 8) (20, 2) (40, 0)
        // Budget 50 (+5 fixed = 55): best is a=20, b=20 -> error 6 (a=10,b=40 gives 9; a=40,b=10 gives 9).
        qs::BudgetProblem p;
        p.tensors = {"a", "b"};
        p.options = {{{"Q2", 10, 9}, {"Q4", 20, 4}, {"Q8", 40, 1}},
                     {{"Q2", 10, 8}, {"Q4", 20, 2}, {"Q8", 40, 0}}};
        p.fixedBytes = 5;
        auto s = qs::solveBudget(p, 55);
        QVERIFY(s.feasible);
        QVERIFY(s.optimal);
        QCOMPARE(s.error, 6.0);
        QCOMPARE(s.bytes, uint64_t(45));
        QCOMPARE(s.choice, (std::vector<size_t>{1, 1}));
        QCOMPARE(s.gap, 0.0);
        // Budget 65: a=40 (1) + b=20 (2) = 3 beats a=20 + b=40 = 4.
        s = qs::solveBudget(p, 65);
        QCOMPARE(s.error, 3.0);
        QCOMPARE(s.choice, (std::vector<size_t>{2, 1}));
        // Budget 24 < 5 + 10 + 10: infeasible, reports the smallest total.
        s = qs::solveBudget(p, 24);
        QVERIFY(!s.feasible);
        QCOMPARE(s.bytes, uint64_t(25));
        // The LP bound at budget 55: start (10, 10), error 17, 30 bytes left; upgrades by error removed per
        // byte: b 10->20 (0.6), a 10->20 (0.5), a 20->40 (0.15), b 20->40 (0.1). b and a take 20 bytes
        // (error 6), then half of a's 20-byte step (3 x 10/20): bound 4.5.
        qs::SolveOptions one;
        one.maxNodes = 1;
        one.maxDpCells = 0;
        s = qs::solveBudget(p, 55, nullptr, one);
        QVERIFY(!s.optimal);
        QCOMPARE(s.lowerBound, 4.5);
        QCOMPARE(s.gap, s.error - 4.5);
        // Reduced-cost fixing at the LP multiplier 0.15 (a's 20 -> 40 step: 3 error for 20 bytes): the
        // Lagrangian terms min(e + 0.15 b) are a: 7 (Q4), b: 5 (Q4), bound 12 - 0.15 x 50 = 4.5; the incumbent
        // a=20, b=20 has error 6, so Q2 options (reduced costs 3.5 and 4.5: 4.5 + 3.5 >= 6) are dropped, Q8
        // (0 and 1) stay. The dynamic programme over the open items (units of gcd 20 bytes, 10 bytes of slack
        // -> 0 units: both stay at Q4) proves error 6 optimal after one node.
        one.maxDpCells = 1000;
        s = qs::solveBudget(p, 55, nullptr, one);
        QVERIFY(s.optimal);
        QCOMPARE(s.error, 6.0);
        QCOMPARE(s.gap, 0.0);
    }

    void matchesBruteForce()
    {
        std::mt19937 rng(12345);
        int checked = 0;
        for (int trial = 0; trial < 300; ++trial) {
            const size_t items = 2 + trial % 6;      // 2..7 tensors
            const size_t opts = 2 + (trial / 6) % 4; // 2..5 formats
            const auto p = randomProblem(rng, items, opts);
            uint64_t minB = p.fixedBytes, maxB = p.fixedBytes;
            for (const auto& o : p.options) {
                uint64_t lo = UINT64_MAX, hi = 0;
                for (const auto& x : o)
                    lo = std::min(lo, x.bytes), hi = std::max(hi, x.bytes);
                minB += lo;
                maxB += hi;
            }
            const uint64_t budget = minB + (maxB - minB) * (trial % 10) / 10 + trial % 3;
            const auto exact = qs::bruteForceBudget(p, budget);
            const auto s = qs::solveBudget(p, budget);
            QCOMPARE(s.feasible, exact.feasible);
            if (!exact.feasible)
                continue;
            QVERIFY(s.optimal);
            QVERIFY(s.bytes <= budget);
            QVERIFY2(
                std::abs(s.error - exact.error) <= 1e-9 * std::max(1.0, exact.error),
                qPrintable(QStringLiteral("trial %1: %2 vs %3").arg(trial).arg(s.error).arg(exact.error)));
            // The chosen formats really give the reported totals.
            double e = 0;
            uint64_t b = p.fixedBytes;
            for (size_t i = 0; i < items; ++i) {
                e += p.options[i][s.choice[i]].error;
                b += p.options[i][s.choice[i]].bytes;
            }
            QCOMPARE(b, s.bytes);
            QVERIFY(std::abs(e - s.error) < 1e-9);
            // Any early stop still brackets the optimum.
            qs::SolveOptions few;
            few.maxNodes = 3;
            const auto rough = qs::solveBudget(p, budget, nullptr, few);
            QVERIFY(rough.feasible);
            QVERIFY(rough.lowerBound <= exact.error + 1e-9);
            QVERIFY(rough.error >= exact.error - 1e-9);
            // Stopped after one node, the dynamic programme over the open items finishes exactly.
            few.maxNodes = 1;
            const auto dp = qs::solveBudget(p, budget, nullptr, few);
            QVERIFY(dp.optimal);
            QVERIFY(dp.bytes <= budget);
            QVERIFY2(std::abs(dp.error - exact.error) <= 1e-9 * std::max(1.0, exact.error),
                     qPrintable(QStringLiteral("trial %1 (dp): %2 vs %3").arg(trial).arg(dp.error).arg(exact.error)));
            // Without it, the node limit leaves a bracket.
            few.maxDpCells = 0;
            const auto bracket = qs::solveBudget(p, budget, nullptr, few);
            QVERIFY(bracket.lowerBound <= exact.error + 1e-9);
            QVERIFY(bracket.error >= exact.error - 1e-9);
            ++checked;
        }
        QVERIFY(checked > 200);
    }

    // Cancel has one meaning: a solve cancelled in the middle of its search throws CancelledError and the
    // job ends Cancelled; only the node limit ends a solve as "not optimal".
    void cancelIsNotANodeLimit()
    {
        // A 70B-like shape (80 layers x 7 kinds of tensor, six tiers) with log-normal spread in the errors:
        // the hard case for branch and bound (as tests/bench/bench_plan's synthetic-70B).
        std::mt19937 rng(11);
        std::lognormal_distribution<double> noise(0.0, 0.3);
        qs::BudgetProblem p;
        uint64_t all = 0;
        const double sizes[] = {64e6, 8e6, 8e6, 64e6, 224e6, 224e6, 224e6};
        for (int layer = 0; layer < 80; ++layer)
            for (double size : sizes) {
                p.tensors.push_back("t" + std::to_string(p.tensors.size()));
                const double scale = noise(rng);
                std::vector<qs::BudgetOption> opts;
                for (double bits : {2.625, 3.4375, 4.5, 5.5, 6.5625, 8.5})
                    opts.push_back({"f" + std::to_string(bits), uint64_t(size * bits / 8),
                                    size * scale * std::pow(4.0, -bits)});
                all += uint64_t(size * 4.85 / 8);
                p.options.push_back(std::move(opts));
            }
        const uint64_t budget = all + 777777;
        // The search reports (and polls the cancel) every 1024 nodes and once per item of the dynamic
        // programme that finishes a search stopped by the node limit.
        qs::SolveOptions stop;
        stop.maxNodes = 3000;
        int counted = 0;
        qs::JobControl counting([&](double, const std::string&) { ++counted; });
        const auto full = qs::solveBudget(p, budget, &counting, stop);
        QVERIFY(full.optimal);
        QVERIFY2(counted > 1, qPrintable(QStringLiteral("%1 reports, %2 nodes").arg(counted).arg(full.nodes)));

        qs::JobControl* self = nullptr;
        int reports = 0;
        qs::JobControl control([&](double, const std::string&) {
            if (++reports == 1)
                self->cancel(); // at the first progress report, deep in the search
        });
        self = &control;
        QVERIFY_THROWS_EXCEPTION(qs::CancelledError, qs::solveBudget(p, budget, &control, stop));
        QCOMPARE(reports, 1);

        qs::BudgetJob job({p, budget, {}});
        job.cancel();
        QCOMPARE(job.run(), qs::JobStatus::Cancelled);

        qs::SolveOptions few;
        few.maxNodes = 500;
        few.maxDpCells = 0;
        qs::BudgetJob limited({p, budget, few});
        QCOMPARE(limited.run(), qs::JobStatus::Succeeded);
        QVERIFY(limited.result().solution.feasible);
        QVERIFY(!limited.result().solution.optimal);
    }

    // Targets whose export needs a quantized tensor (GPTQModel, llm-compressor, compressed-tensors): float
    // options are the largest and most precise, so a generous budget would pick all-float; the solver then
    // quantizes the one item that costs least. Checked against brute force restricted to plans with a
    // quantized item; proven optimal whenever all-float fits.
    void needsQuantizedMatchesBruteForce()
    {
        std::mt19937 rng(2026);
        std::uniform_real_distribution<double> err(0.0, 3.0);
        std::uniform_int_distribution<int> width(2, 40);
        int moved = 0;
        for (int trial = 0; trial < 300; ++trial) {
            qs::BudgetProblem p;
            p.needsQuantized = true;
            p.fixedBytes = 5;
            const size_t items = 2 + trial % 5;
            uint64_t minB = p.fixedBytes, maxB = p.fixedBytes;
            for (size_t i = 0; i < items; ++i) {
                p.tensors.push_back("t" + std::to_string(i));
                const uint64_t w = uint64_t(width(rng));
                // BF16 (error 0 or a little for F16-like rounding), then 8, 6, 4, 3 bits.
                std::vector<qs::BudgetOption> opts = {{"BF16", 16 * w, trial % 2 ? 0.0 : 0.01 * err(rng), false}};
                double e = 0.05 * err(rng);
                for (uint64_t bits : {8, 6, 4, 3}) {
                    e += err(rng);
                    opts.push_back({"Q" + std::to_string(bits), bits * w, e, true});
                }
                minB += 3 * w;
                maxB += 16 * w;
                p.options.push_back(std::move(opts));
            }
            const uint64_t budget = trial % 4 == 0 ? maxB + 10 : minB + (maxB - minB) * uint64_t(trial % 11) / 10;
            const auto exact = qs::bruteForceBudget(p, budget);
            const auto s = qs::solveBudget(p, budget);
            QCOMPARE(s.feasible, exact.feasible);
            if (!exact.feasible)
                continue;
            QVERIFY(s.bytes <= budget);
            bool quantized = false;
            for (size_t i = 0; i < items; ++i)
                quantized = quantized || p.options[i][s.choice[i]].quantized;
            QVERIFY2(quantized, qPrintable(QStringLiteral("trial %1: all float").arg(trial)));
            QVERIFY(s.error >= exact.error - 1e-9);
            QVERIFY(s.lowerBound <= exact.error + 1e-9);
            if (s.optimal)
                QVERIFY2(std::abs(s.error - exact.error) <= 1e-9 * std::max(1.0, exact.error),
                         qPrintable(QStringLiteral("trial %1: %2 vs %3").arg(trial).arg(s.error).arg(exact.error)));
            if (budget >= maxB) { // all-float fits: exactly one item quantized, proven optimal
                QVERIFY(s.optimal);
                ++moved;
            }
        }
        QVERIFY(moved >= 75); // every fourth trial, and those at the top of the range
        // Without the flag the same generous budget keeps everything in float.
        qs::BudgetProblem free;
        free.options = {{{"BF16", 32, 0, false}, {"Q4", 8, 1, true}}, {{"BF16", 32, 0, false}, {"Q4", 8, 2, true}}};
        free.tensors = {"a", "b"};
        QCOMPARE(qs::solveBudget(free, 1000).error, 0.0);
        free.needsQuantized = true;
        const auto one = qs::solveBudget(free, 1000);
        QCOMPARE(one.error, 1.0); // a goes to Q4: the smaller step
        QCOMPARE(one.choice, (std::vector<size_t>{1, 0}));
        QCOMPARE(one.bytes, uint64_t(40));
        QVERIFY(one.optimal);
        // Float-only tiers: nothing to quantize, the plan stays float (the export then says why).
        free.options = {{{"BF16", 32, 0, false}}, {{"F16", 32, 0.1, false}}};
        QCOMPARE(qs::solveBudget(free, 1000).error, 0.1);
    }

    void tradeoffCurve()
    {
        std::mt19937 rng(7);
        const auto p = randomProblem(rng, 6, 4);
        const auto curve = qs::tradeoffCurve(p);
        QVERIFY(curve.size() >= 2);
        for (size_t i = 1; i < curve.size(); ++i) {
            QVERIFY(curve[i].bytes > curve[i - 1].bytes);
            QVERIFY(curve[i].error < curve[i - 1].error);
        }
        // Every point is attainable and optimal for its own size: brute force at that budget agrees.
        for (const auto& pt : curve) {
            const auto exact = qs::bruteForceBudget(p, pt.bytes);
            QVERIFY(exact.feasible);
            QVERIFY(std::abs(exact.error - pt.error) < 1e-9 * std::max(1.0, pt.error));
        }
    }

    void fromAModel()
    {
        const char* json =
            R"({"model_type":"llama","hidden_size":256,"intermediate_size":512,"num_hidden_layers":2,
            "num_attention_heads":4,"vocab_size":512,"torch_dtype":"float32"})";
        const auto l = qs::layoutFromConfigJson(json);
        qs::Plan plan;
        const auto p = qs::makeBudgetProblem(plan, l, {});
        QCOMPARE(p.tensors.size(), size_t(2 * 7 + 2));
        QCOMPARE(p.options.front().size(), size_t(7)); // every default tier holds 256-wide rows
        // Norms stay F32 and are fixed bytes.
        QCOMPARE(p.fixedBytes, uint64_t((2 * 2 + 1) * 256 * 4));
        // Budget of all-Q4_K: the solver finds a plan at most that large with error no worse.
        uint64_t q4 = p.fixedBytes;
        double q4err = 0;
        for (size_t i = 0; i < p.options.size(); ++i)
            for (const auto& o : p.options[i])
                if (o.format == "Q4_K")
                    q4 += o.bytes, q4err += o.error;
        const auto s = qs::solveBudget(p, q4);
        QVERIFY(s.feasible);
        QVERIFY(s.bytes <= q4);
        QVERIFY(s.error <= q4err);
        const qs::Plan out = qs::applySolution(plan, p, s);
        QCOMPARE(out.assignments().size(), p.tensors.size());
        // Measured errors replace the proxy; a tensor's missing formats are not offered.
        qs::ErrorTable table;
        table["model.layers.0.mlp.up_proj.weight"] = {{"Q8_0", 1.0}, {"Q4_K", 2.0}};
        const auto p2 = qs::makeBudgetProblem(plan, l, table);
        for (size_t i = 0; i < p2.tensors.size(); ++i)
            if (p2.tensors[i] == "model.layers.0.mlp.up_proj.weight")
                QCOMPARE(p2.options[i].size(), size_t(2));
        // Proxy: 4^-bits per element; Q8_0 is 8.5 bits.
        const auto& up = *l.find("model.layers.0.mlp.up_proj.weight");
        QVERIFY(std::abs(qs::proxyError(up, *qs::findFormat("Q8_0")) - 512.0 * 256 * std::pow(4.0, -8.5)) <
                1e-12);
    }

    void tiedFusedGroups()
    {
        const char* json =
            R"({"model_type":"llama","hidden_size":256,"intermediate_size":512,"num_hidden_layers":2,
            "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":512,"torch_dtype":"float32"})";
        const auto l = qs::layoutFromConfigJson(json);
        qs::Plan plan;
        qs::BudgetOptions tie;
        tie.tieFusedGroups = true;
        const auto p = qs::makeBudgetProblem(plan, l, {}, tie);
        // Items: per block q/k/v, gate/up, o, down; plus embedding and head.
        QCOMPARE(p.tensors.size(), size_t(2 * 4 + 2));
        const auto loose = qs::makeBudgetProblem(plan, l, {});
        QCOMPARE(loose.tensors.size(), size_t(2 * 7 + 2));
        // A group's option is the members' sum.
        for (size_t i = 0; i < p.tensors.size(); ++i) {
            if (p.tensors[i] != "block 1 q/k/v")
                continue;
            QCOMPARE(p.members[i].size(), size_t(3));
            for (const auto& o : p.options[i]) {
                uint64_t bytes = 0;
                for (const auto& n : p.members[i])
                    bytes += *qs::findFormat(o.format)->storedBytes(l.find(n)->rows(), l.find(n)->columns());
                QCOMPARE(o.bytes, bytes);
            }
        }
        // The solution never splits a fused group, and is no better than the untied optimum.
        uint64_t minB = p.fixedBytes, maxB = p.fixedBytes;
        for (const auto& o : p.options) {
            minB += o.front().bytes < o.back().bytes ? o.front().bytes : o.back().bytes;
            maxB += o.front().bytes > o.back().bytes ? o.front().bytes : o.back().bytes;
        }
        const uint64_t budget = (minB + maxB) / 2;
        const auto s = qs::solveBudget(p, budget);
        QVERIFY(s.feasible);
        const qs::Plan out = qs::applySolution(plan, p, s);
        QVERIFY(qs::checkPlan(out, l).empty());
        const auto free = qs::solveBudget(loose, budget);
        QVERIFY(free.error <= s.error + 1e-9);
    }

    void sensitivityTables()
    {
        // The JSON of `quantscope-cli sensitivity --json`: error = mse (or weighted_mse) x rows x cols;
        // failed cells and null (infinite) values are skipped.
        const char* json = R"({"results":[
            {"tensor":"a","format":"Q8_0","rows":4,"cols":8,"mse":0.5},
            {"tensor":"a","format":"Q4_K","rows":4,"cols":8,"mse":2.0,"weighted_mse":3.0},
            {"tensor":"a","format":"Q2_K","rows":4,"cols":8,"error":"unsupported shape"},
            {"tensor":"b","format":"Q8_0","rows":2,"cols":2,"mse":null}]})";
        const auto t = qs::errorTableFromJson(json);
        QCOMPARE(t.at("a").at("Q8_0"), 0.5 * 32);
        QCOMPARE(t.at("a").at("Q4_K"), 3.0 * 32); // weighted preferred
        QCOMPARE(qs::errorTableFromJson(json, false).at("a").at("Q4_K"), 2.0 * 32);
        QVERIFY(!t.at("a").count("Q2_K"));
        QVERIFY(!t.count("b"));
        QVERIFY_THROWS_EXCEPTION(qs::FormatError, qs::errorTableFromJson(R"({"formats":[]})"));
        QVERIFY_THROWS_EXCEPTION(qs::FormatError, qs::errorTableFromJson("{"));

        qs::SensitivityResult r;
        r.tensor = "x";
        r.format = "Q6_K";
        r.rows = 3;
        r.cols = 256;
        r.metrics.mse = 0.25;
        qs::SensitivityResult failed = r;
        failed.format = "Q2_K";
        failed.error = "codec missing";
        const auto t2 = qs::errorTableFromSensitivity({r, failed});
        QCOMPARE(t2.at("x").at("Q6_K"), 0.25 * 768);
        QVERIFY(!t2.at("x").count("Q2_K"));
    }

    void planErrorAndBoard()
    {
        const char* json =
            R"({"model_type":"llama","hidden_size":256,"intermediate_size":512,"num_hidden_layers":1,
            "num_attention_heads":4,"vocab_size":512,"torch_dtype":"float32"})";
        const auto l = qs::layoutFromConfigJson(json);
        qs::Plan plan = qs::makePreset("all-Q4_K", l);
        plan.assign("lm_head.weight", "Q8_0");
        plan.assign("model.layers.0.mlp.up_proj.weight", "Q5_K"); // not a tier
        plan.unassign("model.embed_tokens.weight");
        qs::ErrorTable table;
        table["lm_head.weight"] = {{"Q8_0", 1.5}};
        table["model.layers.0.mlp.down_proj.weight"] = {{"Q8_0", 1.0}}; // lacks Q4_K
        const auto e = qs::planError(plan, l, table);
        QCOMPARE(e.measured, size_t(1));
        QCOMPARE(e.missing, size_t(1));
        QCOMPARE(e.proxied, size_t(6)); // q, k, v, o, gate, up
        double proxy = 1.5;
        for (const char* n : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
            const auto& t = *l.find(std::string("model.layers.0.self_attn.") + n + ".weight");
            proxy += qs::proxyError(t, *qs::findFormat("Q4_K"));
        }
        proxy += qs::proxyError(*l.find("model.layers.0.mlp.gate_proj.weight"), *qs::findFormat("Q4_K"));
        proxy += qs::proxyError(*l.find("model.layers.0.mlp.up_proj.weight"), *qs::findFormat("Q5_K"));
        QVERIFY(std::abs(e.error - proxy) < 1e-12 * proxy);

        const auto board = qs::tierBoard(plan, l);
        QCOMPARE(board.columns.size(), plan.tiers().size());
        QCOMPARE(board.columns[1].size(), size_t(1)); // Q8_0: lm_head
        QCOMPARE(l.tensors[board.columns[1][0]].name, std::string("lm_head.weight"));
        QCOMPARE(board.columns[3].size(), size_t(6)); // Q4_K
        QCOMPARE(board.otherFormats.size(), size_t(1));
        QCOMPARE(board.unassigned.size(), size_t(1));
        QCOMPARE(l.tensors[board.unassigned[0]].name, std::string("model.embed_tokens.weight"));
    }
};

QTEST_APPLESS_MAIN(TestPlanBudget)
#include "tst_plan_budget.moc"
