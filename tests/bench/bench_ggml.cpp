// Throughput of the ggml quantizers and decoders, single-threaded, on a 7B-shaped weight (4096 x 4096
// F32 by default; `bench_ggml ROWS COLS` to change). Figures are GB/s of F32 values (input of the
// quantizer, output of the decoder). Weights are Gaussian (std 0.02) with 0.1% outliers 10x larger; the
// importance vector is a positive heavy-tailed per-column profile, as an imatrix is.
#include "core/model/dtype.h"
#include "core/quant/ggml.h"
#include "bench_weights.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <vector>

namespace {

// CPU time of this thread, so that other processes on a shared machine do not skew the figures.
double threadSeconds()
{
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Runs fn until at least minSeconds of CPU time have passed (at least once); returns seconds per run.
template <typename Fn> double timeIt(Fn&& fn, double minSeconds = 1.0)
{
    int runs = 0;
    const double start = threadSeconds();
    double elapsed = 0;
    do {
        fn();
        ++runs;
        elapsed = threadSeconds() - start;
    } while (elapsed < minSeconds);
    return elapsed / runs;
}

} // namespace

int main(int argc, char** argv)
{
    const uint64_t rows = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 4096;
    const uint64_t cols = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 4096;
    if (rows == 0 || cols == 0 || cols % 256 != 0) {
        std::fprintf(stderr, "usage: bench_ggml [ROWS [COLS]]  (COLS a multiple of 256)\n");
        return 2;
    }
    const uint64_t n = rows * cols;
    std::mt19937 rng(42);
    const std::vector<float> x = benchWeights(n, rng);
    std::normal_distribution<float> gauss(0.0f, 0.02f);
    std::vector<float> importance(cols);
    for (float& v : importance)
        v = std::exp(2.0f * gauss(rng) / 0.02f) + 1e-3f;

    const qs::DType types[] = {qs::DType::F16,    qs::DType::BF16,   qs::DType::Q8_0, qs::DType::Q4_0,
                               qs::DType::Q4_1,   qs::DType::Q5_0,   qs::DType::Q5_1, qs::DType::Q2_K,
                               qs::DType::Q3_K,   qs::DType::Q4_K,   qs::DType::Q5_K, qs::DType::Q6_K,
                               qs::DType::IQ4_NL, qs::DType::IQ4_XS, qs::DType::MXFP4};
    const double gb = static_cast<double>(n) * 4 / 1e9;
    std::printf("ggml codecs, single thread (thread CPU time), %llu x %llu F32 (%.1f MB)\n",
                static_cast<unsigned long long>(rows), static_cast<unsigned long long>(cols), gb * 1e3);
    std::printf("%-8s %8s %14s %18s %14s %12s\n", "type", "bpw", "quantize GB/s", "quantize+imx GB/s",
                "decode GB/s", "rel. RMSE");
    std::vector<float> y(n);
    for (const qs::DType t : types) {
        std::vector<unsigned char> q(qs::dtypeByteSize(t, n).value());
        const double tq = timeIt([&] { qs::ggml::quantize(t, x.data(), rows, cols, q.data()); });
        const double tqi =
            timeIt([&] { qs::ggml::quantize(t, x.data(), rows, cols, q.data(), importance.data()); });
        qs::ggml::quantize(t, x.data(), rows, cols, q.data());
        const double td = timeIt([&] { qs::ggml::decode(t, q.data(), n, y.data()); });
        double err = 0, ref = 0;
        for (uint64_t i = 0; i < n; ++i) {
            err += static_cast<double>(x[i] - y[i]) * (x[i] - y[i]);
            ref += static_cast<double>(x[i]) * x[i];
        }
        std::printf("%-8s %8.4f %14.3f %18.3f %14.3f %12.3e\n", qs::dtypeName(t), qs::dtypeBitsPerWeight(t),
                    gb / tq, gb / tqi, gb / td, std::sqrt(err / ref));
    }
    return 0;
}
