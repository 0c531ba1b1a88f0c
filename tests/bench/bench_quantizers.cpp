// Our ggml quantizers against ggml's own, in the same run, on the same F32 rows (no importance).
//
//   bench_quantizers [ROWS COLS] [--ggml PATH] [--level scalar|sse2|avx2]
//
// Writes ROWS x COLS Gaussian F32 values (default 4096 x 4096 = 64 MiB; std 0.02, 0.1% outliers 10x larger)
// to a temporary file, runs ggml's `ggml_speed` on it (default ../shared/tools/ggml-bench/ggml_speed
// relative to the working directory, or $QS_GGML_SPEED; skipped when absent), then times
// qs::ggml::quantize on the same rows. Both sides report the best of two runs in CPU seconds of one
// thread; ours also runs on all threads (wall time, rows split across the thread pool). Prints GB/s of
// F32 input per type and our/ggml ratio.
#include "core/model/dtype.h"
#include "core/quant/ggml.h"
#include "bench_weights.h"
#include "core/quant/ggml_vec.h"
#include "core/util/threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

double threadSeconds()
{
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double wallSeconds()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Type {
    qs::DType type;
    const char* ggmlName;
};

} // namespace

int main(int argc, char** argv)
{
    uint64_t rows = 4096, cols = 4096;
    std::string ggml = getenv("QS_GGML_SPEED") ? getenv("QS_GGML_SPEED") : "../shared/tools/ggml-bench/ggml_speed";
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--ggml" && i + 1 < argc) {
            ggml = argv[++i];
        } else if (a == "--level" && i + 1 < argc) {
            const std::string l = argv[++i];
            using qs::ggml::detail::QuantSimd;
            qs::ggml::detail::setQuantSimd(l == "scalar" ? QuantSimd::Scalar
                                           : l == "sse2" ? QuantSimd::Sse2
                                                         : QuantSimd::Avx2);
        } else {
            positional.push_back(a);
        }
    }
    if (positional.size() >= 2) {
        rows = std::strtoull(positional[0].c_str(), nullptr, 10);
        cols = std::strtoull(positional[1].c_str(), nullptr, 10);
    }
    if (rows == 0 || cols == 0 || cols % 256 != 0) {
        std::fprintf(stderr, "usage: bench_quantizers [ROWS COLS] [--ggml PATH] [--level scalar|sse2|avx2]\n");
        return 2;
    }
    const uint64_t n = rows * cols;
    std::mt19937 rng(42);
    const std::vector<float> x = benchWeights(n, rng);

    const Type types[] = {{qs::DType::Q4_0, "q4_0"},   {qs::DType::Q4_1, "q4_1"},   {qs::DType::Q5_0, "q5_0"},
                          {qs::DType::Q5_1, "q5_1"},   {qs::DType::Q8_0, "q8_0"},   {qs::DType::Q2_K, "q2_K"},
                          {qs::DType::Q3_K, "q3_K"},   {qs::DType::Q4_K, "q4_K"},   {qs::DType::Q5_K, "q5_K"},
                          {qs::DType::Q6_K, "q6_K"},   {qs::DType::IQ4_NL, "iq4_nl"}, {qs::DType::IQ4_XS, "iq4_xs"},
                          {qs::DType::MXFP4, "mxfp4"}};

    // ggml's figures first, from its own binary on the same bytes.
    std::map<std::string, double> ggmlSeconds;
    if (access(ggml.c_str(), X_OK) == 0) {
        char path[] = "/tmp/bench_quantizers_XXXXXX";
        const int fd = mkstemp(path);
        if (fd >= 0) {
            const size_t bytes = n * sizeof(float);
            bool ok = write(fd, x.data(), bytes) == static_cast<ssize_t>(bytes);
            close(fd);
            std::string cmd = "'" + ggml + "' " + path + " " + std::to_string(cols);
            for (const Type& t : types)
                cmd += std::string(" ") + t.ggmlName;
            if (FILE* p = ok ? popen(cmd.c_str(), "r") : nullptr) {
                char name[32];
                double secs = 0;
                unsigned long long outBytes = 0;
                while (std::fscanf(p, "%31s %lf %llu", name, &secs, &outBytes) == 3)
                    ggmlSeconds[name] = secs;
                pclose(p);
            }
            unlink(path);
        }
    } else {
        std::printf("(ggml's ggml_speed not found at %s: ggml columns empty)\n", ggml.c_str());
    }

    const double gb = static_cast<double>(n) * 4 / 1e9;
    const unsigned threads = qs::resolveThreads(0);
    std::printf("quantizers, %llu x %llu F32 (%.1f MB), vector level %s, %u threads\n",
                static_cast<unsigned long long>(rows), static_cast<unsigned long long>(cols), gb * 1e3,
                qs::ggml::detail::quantSimdName(qs::ggml::detail::quantSimd()), threads);
    std::printf("%-8s %12s %12s %8s %16s\n", "type", "ours 1T", "ggml 1T", "ratio", "ours all thr.");
    std::printf("%-8s %12s %12s %8s %16s\n", "", "GB/s (CPU)", "GB/s (CPU)", "", "GB/s (wall)");
    for (const Type& t : types) {
        const uint64_t rowBytes = qs::dtypeByteSize(t.type, cols).value();
        std::vector<unsigned char> q(rowBytes * rows);
        double best = 1e30;
        for (int r = 0; r < 2; ++r) {
            const double t0 = threadSeconds();
            qs::ggml::quantize(t.type, x.data(), rows, cols, q.data());
            best = std::min(best, threadSeconds() - t0);
        }
        double bestWall = 1e30;
        for (int r = 0; r < 2; ++r) {
            std::atomic<uint64_t> next{0};
            constexpr uint64_t kRowsPerTask = 16;
            const double t0 = wallSeconds();
            qs::ThreadPool::instance().runWorkers(threads, [&](unsigned) {
                for (uint64_t r0; (r0 = next.fetch_add(kRowsPerTask)) < rows;) {
                    const uint64_t m = std::min(kRowsPerTask, rows - r0);
                    qs::ggml::quantize(t.type, x.data() + r0 * cols, m, cols, q.data() + r0 * rowBytes);
                }
            });
            bestWall = std::min(bestWall, wallSeconds() - t0);
        }
        const auto g = ggmlSeconds.find(t.ggmlName);
        char ggmlText[32] = "-", ratio[32] = "-";
        if (g != ggmlSeconds.end() && g->second > 0) {
            std::snprintf(ggmlText, sizeof ggmlText, "%.3f", gb / g->second);
            std::snprintf(ratio, sizeof ratio, "%.2f", g->second / best);
        }
        std::printf("%-8s %12.3f %12s %8s %16.3f\n", qs::dtypeName(t.type), gb / best, ggmlText, ratio,
                    gb / bestWall);
        std::fflush(stdout);
    }
    return 0;
}
