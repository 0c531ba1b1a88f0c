// Quantizer throughput (GB/s of F32 input, one thread) on a 4096 x 4096 F32 weight, and the whole sensitivity
// matrix for one Llama-2-7B-shaped transformer block (4 x 4096x4096 + 3 x 11008x4096 BF16 weights in a
// safetensors file), extrapolated to the 32 blocks of the model.
// Usage: bench_quant [--quick] [--no-matrix] [--threads N]
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
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b)
{
    return std::chrono::duration<double>(b - a).count();
}

std::vector<float> gaussianWeights(uint64_t n, unsigned seed)
{
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 0.02f);
    std::vector<float> v(n);
    for (auto& x : v)
        x = d(rng);
    // A few outliers, as real weights have.
    for (uint64_t i = 0; i < n; i += 65537)
        v[i] *= 12.0f;
    return v;
}

double threadCpuSeconds()
{
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double processCpuSeconds()
{
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Best of `repeat` runs, in CPU time of this thread: the machine is shared, so wall time would measure the
// other processes as much as the quantizer.
template <typename F> double timeIt(int repeat, F&& f)
{
    double best = 1e30;
    for (int i = 0; i < repeat; ++i) {
        const double t0 = threadCpuSeconds();
        f();
        best = std::min(best, threadCpuSeconds() - t0);
    }
    return best;
}

void writeSafetensorsBlock(const std::filesystem::path& path)
{
    const std::vector<BenchTensor> tensors = {
        {"model.layers.0.self_attn.q_proj.weight", 4096, 4096},
        {"model.layers.0.self_attn.k_proj.weight", 4096, 4096},
        {"model.layers.0.self_attn.v_proj.weight", 4096, 4096},
        {"model.layers.0.self_attn.o_proj.weight", 4096, 4096},
        {"model.layers.0.mlp.gate_proj.weight", 11008, 4096},
        {"model.layers.0.mlp.up_proj.weight", 11008, 4096},
        {"model.layers.0.mlp.down_proj.weight", 4096, 11008},
    };
    writeBf16Safetensors(path, tensors, [&](size_t i) {
        return gaussianWeights(tensors[i].rows * tensors[i].cols, static_cast<unsigned>(i + 1));
    });
}

} // namespace

int main(int argc, char** argv)
{
    bool quick = false, matrix = true;
    unsigned threads = 0;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--quick"))
            quick = true;
        else if (!std::strcmp(argv[i], "--no-matrix"))
            matrix = false;
        else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = static_cast<unsigned>(std::atoi(argv[++i]));
    }
    const uint64_t rows = quick ? 512 : 4096, cols = 4096;
    const auto w = gaussianWeights(rows * cols, 42);
    std::vector<float> out(w.size()), importance(cols);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(0.1f, 4.0f);
    for (auto& x : importance)
        x = u(rng) * u(rng);
    const double gb = static_cast<double>(w.size()) * 4 / 1e9;
    const int repeat = quick ? 1 : 2;

    std::printf("quantizer throughput, %llu x %llu F32 gaussian weights, one thread (GB/s of F32 input per "
                "CPU second)\n",
                static_cast<unsigned long long>(rows), static_cast<unsigned long long>(cols));
    std::printf("%-16s %8s %12s %12s %12s\n", "format", "bpw", "round trip", "quantize", "quant+imx");
    for (const auto& name : qs::allFormatNames()) {
        const auto f = qs::findFormat(name);
        const auto& t = f->traits();
        // The integer family is one kernel: time a representative subset.
        if (t.kind == qs::FormatKind::Integer && name != "INT8-ch-sym" && name != "INT4-g128-asym" &&
            name != "INT4-g128-sym" && name != "INT3-g64-asym" && name != "INT2-g32-asym" &&
            name != "INT4-tensor-sym")
            continue;
        if (!f->available()) {
            std::printf("%-16s (codec not available)\n", name.c_str());
            continue;
        }
        const double rt = timeIt(repeat, [&] { f->roundTrip(w.data(), rows, cols, out.data()); });
        std::string quant = "-", quantImx = "-";
        if (t.storage && (t.kind == qs::FormatKind::Ggml || t.kind == qs::FormatKind::Mx)) {
            std::vector<unsigned char> buf(*f->storedBytes(rows, cols));
            const double q =
                timeIt(repeat, [&] { qs::ggml::quantize(*t.storage, w.data(), rows, cols, buf.data()); });
            const double qi = timeIt(repeat, [&] {
                qs::ggml::quantize(*t.storage, w.data(), rows, cols, buf.data(), importance.data());
            });
            char a[32], b[32];
            std::snprintf(a, sizeof a, "%.3f", gb / q);
            std::snprintf(b, sizeof b, "%.3f", gb / qi);
            quant = a;
            quantImx = b;
        }
        std::printf("%-16s %8.4f %12.3f %12s %12s\n", name.c_str(), *qs::formatBitsPerWeight(*f, rows, cols),
                    gb / rt, quant.c_str(), quantImx.c_str());
        std::fflush(stdout);
    }

    if (!matrix)
        return 0;
    const auto dir =
        std::filesystem::temp_directory_path() / ("qs-bench-quant-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto file = dir / "block.safetensors";
    std::printf("\nwriting one Llama-2-7B block (BF16, 202M weights) to %s ...\n", file.c_str());
    writeSafetensorsBlock(file);
    {
        auto model = qs::openModel(file);
        qs::SensitivityOptions options;
        options.threads = threads;
        const unsigned used = threads ? threads : std::max(1u, std::thread::hardware_concurrency());
        const auto t0 = Clock::now();
        const double c0 = processCpuSeconds();
        const auto results = qs::computeSensitivity(*model, options);
        const double s = seconds(t0, Clock::now());
        const double cpu = processCpuSeconds() - c0;
        int failed = 0;
        for (const auto& r : results)
            failed += !r.ok();
        std::printf(
            "sensitivity matrix, %zu tensors x %zu default formats (%d cells not computed), %u threads:\n",
            results.size() / qs::defaultSensitivityFormats().size(), qs::defaultSensitivityFormats().size(),
            failed, used);
        std::printf(
            "  one block: %.2f s wall, %.2f s CPU   32 blocks (Llama-2-7B without embeddings/head): %.1f s "
            "wall, %.1f s CPU\n",
            s, cpu, 32 * s, 32 * cpu);
        // Per format: the CPU time of its round trips over the block, from a single-format run each.
        if (!quick) {
            for (const auto& name : qs::defaultSensitivityFormats()) {
                qs::SensitivityOptions one = options;
                one.formats = {name};
                const auto a = Clock::now();
                const double c = processCpuSeconds();
                qs::computeSensitivity(*model, one);
                std::printf("    %-16s %7.2f s wall %7.2f s CPU\n", name.c_str(), seconds(a, Clock::now()),
                            processCpuSeconds() - c);
                std::fflush(stdout);
            }
        }
    }
    std::filesystem::remove_all(dir);
    return 0;
}
