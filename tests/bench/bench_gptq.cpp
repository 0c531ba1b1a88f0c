// How fast GPTQ quantizes one 4096 x 4096 linear layer to 4 bits, group 128, asymmetric (the speed
// goal: <= 3.2 s on 2 threads, 20x the original implementation's 63.7 s). W is random normal; H comes from
// random correlated activations (x = z B + e: 256 shared factors plus independent noise, 4096 samples)
// through HessianAccumulator. Prints the time of the Hessian inverse + column sweep alone, the time with the
// two proxy-error products, and the flop count against the machine's FP32 rate.
// FORMAT (default INT4-g128-asym) may be any format GPTQ supports, e.g. Q4_K: GPTQ into ggml blocks.
// Usage: bench_gptq [THREADS=2] [N=4096] [REPEATS=3] [FORMAT=INT4-g128-asym]
#include "core/quant/gptq.h"
#include "core/util/threadpool.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <ctime>
#include <vector>

using namespace qs;

namespace {

double seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b)
{
    return std::chrono::duration<double>(b - a).count();
}

// CPU time of the whole process (every thread), to tell a busy machine from a slow program.
double cpuSeconds()
{
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

std::vector<float> normal(size_t n, uint32_t seed, float scale)
{
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v)
        x = d(rng);
    return v;
}

} // namespace

int main(int argc, char** argv)
{
    const unsigned threads = argc > 1 ? unsigned(std::atoi(argv[1])) : 2;
    const int n = argc > 2 ? std::atoi(argv[2]) : 4096;
    const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
    const std::string format = argc > 4 ? argv[4] : "INT4-g128-asym";
    const auto config = gptqConfigForFormat(format);
    if (!config) {
        std::fprintf(stderr, "GPTQ does not support the format %s\n", format.c_str());
        return 1;
    }
    setDefaultThreads(threads);
    const int samples = n, factors = 256, batch = 256;

    // Activations in batches: x = z B + 0.3 e.
    const auto mix = normal(size_t(factors) * n, 1, 1.0f / 16.0f);
    auto t0 = std::chrono::steady_clock::now();
    HessianAccumulator acc(n);
    std::vector<float> x(size_t(batch) * n);
    for (int s = 0; s < samples; s += batch) {
        const auto z = normal(size_t(batch) * factors, 100 + s, 1.0f);
        const auto e = normal(size_t(batch) * n, 200 + s, 0.3f);
        for (int r = 0; r < batch; ++r) {
            float* xr = &x[size_t(r) * n];
            for (int j = 0; j < n; ++j)
                xr[j] = e[size_t(r) * n + j];
            for (int k = 0; k < factors; ++k) {
                const float zk = z[size_t(r) * factors + k];
                const float* b = &mix[size_t(k) * n];
                for (int j = 0; j < n; ++j)
                    xr[j] += zk * b[j];
            }
        }
        acc.add(x.data(), batch);
    }
    const auto h = acc.hessian();
    auto t1 = std::chrono::steady_clock::now();
    const auto w = normal(size_t(n) * n, 7, 0.02f);
    std::printf("GPTQ %d x %d, %s, %u threads, kernels: %s\n", n, n, format.c_str(), threads, gptqKernelName());
    std::printf("Hessian from %d activations (%d-wide batches): %.2f s (rank updates on one thread)\n",
                samples, batch, seconds(t0, t1));

    GptqConfig c = *config;
    c.threads = threads;
    std::vector<double> sweep, measured, sweepCpu;
    GptqResult r;
    for (int k = 0; k < repeats; ++k) {
        c.measureError = false;
        const double cpu0 = cpuSeconds();
        auto a = std::chrono::steady_clock::now();
        r = gptqQuantize(w.data(), n, n, h.data(), c);
        auto b = std::chrono::steady_clock::now();
        sweep.push_back(seconds(a, b));
        sweepCpu.push_back(cpuSeconds() - cpu0);
        c.measureError = true;
        a = std::chrono::steady_clock::now();
        r = gptqQuantize(w.data(), n, n, h.data(), c);
        b = std::chrono::steady_clock::now();
        measured.push_back(seconds(a, b));
    }
    std::sort(sweep.begin(), sweep.end());
    std::sort(measured.begin(), measured.end());
    std::sort(sweepCpu.begin(), sweepCpu.end());
    // Flop: Cholesky n^3/3 + triangular inverse n^3/3 + lazy block updates ~ rows * n^2 (2 * rows * 128 per
    // column pair, half the pairs); the two proxy errors add 2 * 2 * rows * n^2.
    const double nd = n, flop = 2.0 * nd * nd * nd / 3.0 + nd * nd * nd, flopError = 4.0 * nd * nd * nd;
    std::printf("quantize (Hessian inverse + column sweep): best %.3f s, median %.3f s  (%.2e flop, %.1f GFLOP/s)\n",
                sweep.front(), sweep[sweep.size() / 2], flop, flop / sweep.front() / 1e9);
    std::printf("  CPU time of the quantize runs (all threads): best %.3f s%s\n", sweepCpu.front(),
                sweep.front() > 1.5 * sweepCpu.front() / threads ? " (wall >> CPU / threads: the machine is busy)"
                                                                : "");
    std::printf("quantize + proxy errors (GPTQ and RTN):    best %.3f s, median %.3f s  (%.2e flop)\n",
                measured.front(), measured[measured.size() / 2], flop + flopError);
    std::printf("goal <= 3.2 s (the original: 63.7 s) -> %s; speed-up over the original %.1fx\n",
                sweep.front() <= 3.2 ? "met" : "NOT met", 63.7 / sweep.front());
    std::printf("proxy error GPTQ %.6g, RTN %.6g (ratio %.3f), loss %.6g\n", r.proxyError, r.proxyErrorRtn,
                r.proxyError / r.proxyErrorRtn, r.loss);
    return 0;
}
