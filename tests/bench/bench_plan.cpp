// Plan-side timings the GUI depends on: the footprint of a plan (recomputed on every edit), a preset, the
// constraint check, and the fit-to-budget solver with its proven gap, on config-derived layouts of real
// model sizes. Prints one line per measurement.
#include "core/plan/budget.h"
#include "core/plan/memory.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"

#include <chrono>
#include <cstdio>
#include <functional>

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

} // namespace

int main()
{
    run("Llama-3-8B", R"({"model_type":"llama","hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,
        "num_attention_heads":32,"num_key_value_heads":8,"vocab_size":128256,"max_position_embeddings":8192})");
    run("Llama-3-70B", R"({"model_type":"llama","hidden_size":8192,"intermediate_size":28672,"num_hidden_layers":80,
        "num_attention_heads":64,"num_key_value_heads":8,"vocab_size":128256,"max_position_embeddings":8192})");
    run("Mixtral-8x7B", R"({"model_type":"mixtral","hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,
        "num_attention_heads":32,"num_key_value_heads":8,"vocab_size":32000,"num_local_experts":8,
        "num_experts_per_tok":2,"max_position_embeddings":32768})");
    return 0;
}
