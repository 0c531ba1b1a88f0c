// Sensitivity matrix cost in CPU seconds per million weights, for one Llama-3.2-1B-shaped transformer block
// (hidden 2048, intermediate 8192, 8 KV heads of 64: q/o 2048x2048, k/v 512x2048, gate/up 8192x2048,
// down 2048x8192; 62.9M BF16 weights in a temporary safetensors file), per default format and for the whole
// default matrix, in exact mode and in the default sampled mode (docs/sensitivity.md).
// Usage: bench_sensitivity [--quick] [--threads N] [--exact-only] [--sampled-only] [--no-formats]
#include "core/model/model.h"
#include "core/quant/format.h"
#include "core/quant/ggml.h"
#include "core/quant/sensitivity.h"

#include "bench_weights.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double processCpuSeconds()
{
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

uint64_t writeBlock(const std::filesystem::path& path, bool quick)
{
    std::vector<BenchTensor> tensors = {
        {"model.layers.0.self_attn.q_proj.weight", 2048, 2048},
        {"model.layers.0.self_attn.k_proj.weight", 512, 2048},
        {"model.layers.0.self_attn.v_proj.weight", 512, 2048},
        {"model.layers.0.self_attn.o_proj.weight", 2048, 2048},
        {"model.layers.0.mlp.gate_proj.weight", 8192, 2048},
        {"model.layers.0.mlp.up_proj.weight", 8192, 2048},
        {"model.layers.0.mlp.down_proj.weight", 2048, 8192},
    };
    if (quick)
        tensors = {tensors[0], tensors[4], tensors[6]};
    std::mt19937 rng(7);
    return writeBf16Safetensors(path, tensors,
                                [&](size_t i) { return benchWeights(tensors[i].rows * tensors[i].cols, rng); });
}

// Runs the matrix and prints wall time and CPU seconds per million weights.
double run(const qs::Model& model, qs::SensitivityOptions options, uint64_t weights, const char* label)
{
    const auto t0 = Clock::now();
    const double c0 = processCpuSeconds();
    const auto results = qs::computeSensitivity(model, options);
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu = processCpuSeconds() - c0;
    int failed = 0;
    for (const auto& r : results)
        failed += !r.ok();
    const double perM = cpu / (static_cast<double>(weights) / 1e6);
    std::printf("  %-22s %7.2f s wall %7.2f s CPU  %.4f CPU-s per M weights%s\n", label, wall, cpu, perM,
                failed ? "  (some cells failed)" : "");
    std::fflush(stdout);
    return perM;
}

} // namespace

int main(int argc, char** argv)
{
    bool quick = false, exact = true, sampled = true, perFormat = true;
    unsigned threads = 0;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--quick"))
            quick = true;
        else if (!std::strcmp(argv[i], "--exact-only"))
            sampled = false;
        else if (!std::strcmp(argv[i], "--sampled-only"))
            exact = false;
        else if (!std::strcmp(argv[i], "--no-formats"))
            perFormat = false;
        else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = static_cast<unsigned>(std::atoi(argv[++i]));
    }
    const auto dir = std::filesystem::temp_directory_path() / ("qs-bench-sens-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto file = dir / "block.safetensors";
    const uint64_t weights = writeBlock(file, quick);
    std::printf("one Llama-3.2-1B-shaped block, BF16, %.1fM weights; %u threads; CPU seconds of the whole "
                "process\n",
                static_cast<double>(weights) / 1e6,
                threads ? threads : std::max(1u, std::thread::hardware_concurrency()));
    {
        auto model = qs::openModel(file);
        qs::SensitivityOptions options;
        options.threads = threads;
        for (const bool isExact : {true, false}) {
            if ((isExact && !exact) || (!isExact && !sampled))
                continue;
            options.exact = isExact;
            std::printf("%s mode:\n", isExact ? "exact" : "sampled");
            run(*model, options, weights, "default matrix");
            if (!perFormat)
                continue;
            for (const auto& name : qs::defaultSensitivityFormats()) {
                qs::SensitivityOptions one = options;
                one.formats = {name};
                run(*model, one, weights, name.c_str());
            }
        }
    }
    std::filesystem::remove_all(dir);
    return 0;
}
