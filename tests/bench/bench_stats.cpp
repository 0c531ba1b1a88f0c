// Throughput of the statistics engine (full statistics + histogram) on a 1 GiB BF16 and a 1 GiB F32
// tensor held in a memory-mapped temporary file, single- and multi-threaded, with peak memory; and, for
// comparison, numpy.histogram on the same data when python3 with numpy is available.
// Usage: bench_stats [MiB] [dir]   (default 1024 MiB in $TMPDIR)
#include "core/model/model.h"
#include "core/stats/stats.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

double cpuSeconds()
{
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

long statusKiB(const char* field)
{
    std::ifstream in("/proc/self/status");
    std::string line;
    const size_t len = std::strlen(field);
    while (std::getline(in, line))
        if (line.compare(0, len, field) == 0)
            return std::atol(line.c_str() + len + 1);
    return -1;
}

// Gaussian weights with a few heavy outliers, generated quickly from a table of normal samples.
void writeData(const std::filesystem::path& path, qs::DType type, uint64_t elements)
{
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> table(1 << 16);
    for (auto& v : table)
        v = normal(rng);
    for (int i = 0; i < 64; ++i)
        table[static_cast<size_t>(i) * 997] *= 40.0f;
    std::ofstream out(path, std::ios::binary);
    std::vector<char> buffer(1 << 22);
    const size_t width = type == qs::DType::BF16 ? 2 : 4;
    uint64_t state = 0x9E3779B97F4A7C15ull, done = 0;
    while (done < elements) {
        const size_t n = std::min<uint64_t>(buffer.size() / width, elements - done);
        for (size_t i = 0; i < n; ++i) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            const float v = table[state & 0xFFFF];
            if (width == 2) {
                const uint16_t h = qs::floatToBf16(v);
                std::memcpy(buffer.data() + 2 * i, &h, 2);
            } else {
                std::memcpy(buffer.data() + 4 * i, &v, 4);
            }
        }
        out.write(buffer.data(), static_cast<std::streamsize>(n * width));
        done += n;
    }
}

// The roofline: a plain read of the same mapped bytes (64-bit sums), split over `threads` threads.
double readBandwidth(const std::byte* data, uint64_t bytes, unsigned threads)
{
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
        std::vector<uint64_t> sums(threads);
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> workers;
        for (unsigned k = 0; k < threads; ++k)
            workers.emplace_back([&, k] {
                const uint64_t words = bytes / 8 / threads;
                const auto* p = reinterpret_cast<const uint64_t*>(data) + k * words;
                uint64_t a = 0, b = 0, c = 0, d = 0;
                for (uint64_t i = 0; i + 4 <= words; i += 4) {
                    a += p[i];
                    b += p[i + 1];
                    c += p[i + 2];
                    d += p[i + 3];
                }
                sums[k] = a + b + c + d;
            });
        for (auto& w : workers)
            w.join();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        if (sums[0] == 42) // keep the sums alive
            std::printf(" ");
    }
    return double(bytes) / best / 1e9;
}

void run(const std::filesystem::path& dir, qs::DType type, uint64_t bytes)
{
    const size_t width = type == qs::DType::BF16 ? 2 : 4;
    const uint64_t cols = 16384, rows = bytes / width / cols;
    const auto path = dir / (std::string("bench_stats_") + qs::dtypeName(type) + ".bin");
    writeData(path, type, rows * cols);
    auto model = std::make_shared<qs::Model>(qs::ModelFormat::Safetensors, path);
    const uint32_t file = model->addFile(qs::MappedFile::open(path));
    qs::TensorInfo t;
    t.name = "bench.weight";
    t.shape = {rows, cols};
    t.dtype = type;
    t.bytes = rows * cols * width;
    t.fileIndex = file;
    model->addTensor(t);
    model->finalize();

    // Peak anonymous memory (what the engine allocates; the mapped file's pages are reclaimable cache).
    std::atomic<bool> sampling{true};
    std::atomic<long> peakAnon{0};
    std::thread sampler([&] {
        while (sampling) {
            peakAnon = std::max(peakAnon.load(), statusKiB("RssAnon:"));
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    });
    const auto raw = model->rawData(model->tensors()[0]);
    std::printf(
        "%-5s plain read of the mapped data (memory-bandwidth roofline): %.2f GB/s 1 thread, %.2f GB/s "
        "2 threads\n",
        qs::dtypeName(type), readBandwidth(raw.data(), raw.size(), 1),
        readBandwidth(raw.data(), raw.size(), 2));
    for (unsigned threads : {1u, 2u}) {
        double best = 1e30, bestCpu = 1e30;
        qs::TensorStats s;
        for (int rep = 0; rep < 3; ++rep) {
            qs::StatsOptions o;
            o.threads = threads;
            const auto t0 = std::chrono::steady_clock::now();
            const double c0 = cpuSeconds();
            s = qs::computeTensorStats(*model, model->tensors()[0], o);
            const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            best = std::min(best, sec);
            bestCpu = std::min(bestCpu, cpuSeconds() - c0);
        }
        std::printf("%-5s %.2f GiB  threads %u  %.3f s  %.2f GB/s  [cpu %.3f s: %.2f GB/s per core]  (mean "
                    "%.3g std %.3g kurt %.3g >3s %.4f%% "
                    "hist keys %zu)\n",
                    qs::dtypeName(type), double(t.bytes) / (1 << 30), threads, best,
                    double(t.bytes) / best / 1e9, bestCpu, double(t.bytes) / bestCpu / 1e9, s.mean, s.std,
                    s.kurtosis, 100 * s.share3Sigma(), s.histogram.keys().size());
        if (threads == 1) {
            // The exact plotted histograms (edges moved off straddled keys) from the key histogram.
            const int reps = 200;
            const auto b0 = std::chrono::steady_clock::now();
            size_t bins = 0;
            for (int rep = 0; rep < reps; ++rep)
                bins += s.linearHistogram(128).counts.size() + s.symlogHistogram(128).counts.size();
            const double us =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - b0).count() * 1e6 / reps / 2;
            std::printf("%-5s binned histogram (128 bins, linear and symlog, exact): %.1f us each (%zu bins)\n",
                        qs::dtypeName(type), us, bins / size_t(reps));
        }
    }
    sampling = false;
    sampler.join();
    std::printf(
        "      peak anonymous memory (RssAnon) %.1f MiB; peak RSS incl. the mapped file's pages (VmHWM) "
        "%ld MiB\n",
        double(peakAnon.load()) / 1024, statusKiB("VmHWM:") / 1024);

    // numpy for comparison, on the same file.
    const char* py = "/usr/bin/python3";
    if (std::filesystem::exists(py)) {
        const std::string conv =
            type == qs::DType::BF16
                ? "x=(np.memmap(p,dtype=np.uint16,mode='r').astype(np.uint32)<<16).view(np.float32)"
                : "x=np.array(np.memmap(p,dtype=np.float32,mode='r'))";
        const std::string cmd =
            std::string(py) + " -c \"import numpy as np,time,sys;p=sys.argv[1];" + conv +
            ";t=time.perf_counter();c=time.process_time();np.histogram(x,bins=256);"
            "c=time.process_time()-c;t=time.perf_counter()-t;"
            "print('      numpy.histogram(x, bins=256) alone, x already decoded: %.3f s, %.2f GB/s "
            "[cpu %.3f s: %.2f GB/s per core] of %s input' % (t, " +
            std::to_string(t.bytes) + "/t/1e9, c, " + std::to_string(t.bytes) + "/c/1e9, '" +
            qs::dtypeName(type) + "'))\" " + path.string() + " 2>/dev/null";
        std::fflush(stdout);
        if (std::system(cmd.c_str()) != 0)
            std::printf("      (numpy not available)\n");
    }
    model.reset();
    std::filesystem::remove(path);
}

// Per-tensor overhead: a whole-model analysis of many small BF16 tensors (norms, biases, small experts).
void runMany(const std::filesystem::path& dir, uint64_t elements, int count)
{
    const auto path = dir / "bench_stats_many.bin";
    writeData(path, qs::DType::BF16, elements * uint64_t(count));
    auto model = std::make_shared<qs::Model>(qs::ModelFormat::Safetensors, path);
    const uint32_t file = model->addFile(qs::MappedFile::open(path));
    for (int i = 0; i < count; ++i) {
        qs::TensorInfo t;
        t.name = "t" + std::to_string(i);
        t.shape = {elements / 4096, 4096};
        t.dtype = qs::DType::BF16;
        t.bytes = elements * 2;
        t.fileIndex = file;
        t.offset = uint64_t(i) * t.bytes;
        model->addTensor(t);
    }
    model->finalize();
    qs::StatsOptions o;
    o.useCache = false;
    o.threads = 1;
    double best = 1e30, bestCpu = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        const double c0 = cpuSeconds();
        qs::analyzeModel(*model, o);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        bestCpu = std::min(bestCpu, cpuSeconds() - c0);
    }
    std::printf("%d BF16 tensors of %llu values, 1 thread: %.1f us per tensor wall, %.1f us CPU\n", count,
                static_cast<unsigned long long>(elements), best * 1e6 / count, bestCpu * 1e6 / count);
    model.reset();
    std::filesystem::remove(path);
}

} // namespace

int main(int argc, char** argv)
{
    const uint64_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1024;
    const std::filesystem::path dir = argc > 2 ? argv[2] : std::filesystem::temp_directory_path();
    std::printf("bench_stats: %llu MiB per tensor, %u hardware threads\n",
                static_cast<unsigned long long>(mib), std::thread::hardware_concurrency());
    run(dir, qs::DType::BF16, mib << 20);
    run(dir, qs::DType::F32, mib << 20);
    runMany(dir, 4096, 2000);
    runMany(dir, 65536, 2000);
    return 0;
}
