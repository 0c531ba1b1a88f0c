// Plan-side timings the GUI depends on: the footprint of a plan (recomputed on every edit), a preset, the
// constraint check, and the fit-to-budget solver with its proven gap, on config-derived layouts of real
// model sizes. Prints one line per measurement.
#include "core/plan/budget.h"
#include "core/plan/memory.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"

#include <chrono>
#include <cstdio>
#include <cmath>
#include <functional>
#include <random>
#include <string>

namespace {

double millis(const std::function<void()>& f, int repeats)
{
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < repeats; ++i)
        f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / repeats;
}

void run(const char* name, const char* json)
{
    const auto l = qs::layoutFromConfigJson(json);
    const qs::Plan plan = qs::makePreset("llama.cpp-Q4_K_M", l);
    qs::FootprintRequest req;
    req.context = 8192;
    qs::GpuSpec gpu;
    gpu.memoryBytes = 80ull << 30;
    gpu.bandwidthGBps = 3350;
    qs::GpuFit fit;
    const double footprint = millis(
        [&] { fit = qs::fitOnGpu(l, qs::summarizeWeights(l, qs::planBytesFn(plan)), req, gpu); }, 20);
    const double preset = millis([&] { (void)qs::makePreset("llama.cpp-Q4_K_M", l); }, 5);
    const double check = millis([&] { (void)qs::checkPlan(plan, l); }, 5);
    const auto problem = qs::makeBudgetProblem(qs::Plan{}, l, {});
    const uint64_t budget = qs::summarizeWeights(l, qs::planBytesFn(plan)).bytes;
    qs::BudgetSolution sol;
    const double solve = millis([&] { sol = qs::solveBudget(problem, budget); }, 1);
    std::printf("%-14s %5zu tensors  footprint+fit %7.3f ms  preset %7.3f ms  check %7.3f ms  "
                "budget solve %8.1f ms (%llu nodes, gap %.4f%%%s)\n",
                name, l.tensors.size(), footprint, preset, check, solve, static_cast<unsigned long long>(sol.nodes),
                sol.error > 0 ? 100.0 * sol.gap / sol.error : 0.0, sol.optimal ? ", optimal" : "");
}

// A 70B-shaped synthetic problem: 80 layers x 7 tensors (q, k, v, o, gate, up, down of Llama-3-70B), six
// k-quant-like tiers, errors = a per-kind scale x a per-layer profile x log-normal noise x 4^(-bits), so
// no two items are identical (the hard case for branch and bound). Budget: 4.85 bits per weight.
qs::BudgetProblem synthetic70B(unsigned seed)
{
    struct Kind {
        const char* name;
        uint64_t rows, cols;
        double scale;
    };
    const Kind kinds[] = {{"attn_q", 8192, 8192, 1.0},    {"attn_k", 1024, 8192, 2.0},
                          {"attn_v", 1024, 8192, 4.0},    {"attn_output", 8192, 8192, 1.5},
                          {"ffn_gate", 28672, 8192, 1.0}, {"ffn_up", 28672, 8192, 1.0},
                          {"ffn_down", 8192, 28672, 2.5}};
    const std::pair<const char*, double> tiers[] = {{"Q2_K", 2.625}, {"Q3_K", 3.4375}, {"Q4_K", 4.5},
                                                    {"Q5_K", 5.5},   {"Q6_K", 6.5625}, {"Q8_0", 8.5}};
    std::mt19937 rng(seed);
    std::lognormal_distribution<double> noise(0.0, 0.3);
    qs::BudgetProblem p;
    for (int layer = 0; layer < 80; ++layer) {
        const double profile = 1.0 + 0.8 * std::exp(-layer / 4.0) + 0.5 * std::exp((layer - 79) / 3.0);
        for (const auto& k : kinds) {
            p.tensors.push_back("blk." + std::to_string(layer) + "." + k.name);
            const double n = double(k.rows) * double(k.cols);
            const double item = k.scale * profile * noise(rng);
            std::vector<qs::BudgetOption> opts;
            for (const auto& [name, bits] : tiers)
                opts.push_back({name, uint64_t(n * bits / 8), n * item * std::pow(4.0, -bits)});
            p.options.push_back(std::move(opts));
        }
    }
    return p;
}

void runSynthetic()
{
    for (unsigned seed : {1u, 2u, 3u}) {
        const auto p = synthetic70B(seed);
        uint64_t elements = 0;
        for (const auto& o : p.options)
            elements += o.front().bytes * 8 * 1000 / 2625; // Q2_K is 2.625 bits per weight
        const uint64_t budget = uint64_t(double(elements) * 4.85 / 8);
        qs::BudgetSolution sol;
        const double solve = millis([&] { sol = qs::solveBudget(p, budget); }, 1);
        std::printf("synthetic-70B seed %u: %zu items x 6 tiers, budget 4.85 bpw: solve %8.1f ms (%llu nodes, "
                    "gap %.6f%%%s)\n",
                    seed, p.options.size(), solve, static_cast<unsigned long long>(sol.nodes),
                    sol.error > 0 ? 100.0 * sol.gap / sol.error : 0.0, sol.optimal ? ", optimal" : "");
    }
}

} // namespace

int main()
{
    runSynthetic();
    run("Llama-3-8B", R"({"model_type":"llama","hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,
        "num_attention_heads":32,"num_key_value_heads":8,"vocab_size":128256,"max_position_embeddings":8192})");
    run("Llama-3-70B", R"({"model_type":"llama","hidden_size":8192,"intermediate_size":28672,"num_hidden_layers":80,
        "num_attention_heads":64,"num_key_value_heads":8,"vocab_size":128256,"max_position_embeddings":8192})");
    run("Mixtral-8x7B", R"({"model_type":"mixtral","hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,
        "num_attention_heads":32,"num_key_value_heads":8,"vocab_size":32000,"num_local_experts":8,
        "num_experts_per_tok":2,"max_position_embeddings":32768})");
    return 0;
}
