// How fast the quantize job turns a Llama-3.2-1B-shaped F16 GGUF (hidden 2048, FFN 8192, 16 layers, 32/8
// heads, vocabulary 128256, tied embeddings: 1.24 B parameters, 2.5 GB) into llama.cpp's Q4_K_M mix, and how
// much memory it needs. The weights are random (uniform, |w| < 0.05); quantization speed does not depend
// on the values much. Usage: bench_quantize [MODEL.gguf] [THREADS]; the model is generated when missing.
#include "llama1b_model.h"
#include "core/model/model.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"
#include "core/quant/quantize.h"
#include "core/util/threadpool.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

int main(int argc, char** argv)
{
    const fs::path model =
        argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "qs-bench-llama-1b-f16.gguf";
    const unsigned threads = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 0;
    if (!qsbench::ensureLlama1b(model))
        return 1;
    qs::QuantizeParams p;
    p.model = qs::openModel(model);
    p.plan = qs::makePreset("llama.cpp-Q4_K_M", qs::layoutFromModel(*p.model));
    p.output = fs::temp_directory_path() / "qs-bench-llama-1b-Q4_K_M.gguf";
    p.threads = threads;
    const uint64_t inputBytes = p.model->totalBytes(), params = p.model->parameterCount();
    qs::QuantizeJob job(p);
    const auto t0 = std::chrono::steady_clock::now();
    const auto status = job.run();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (status != qs::JobStatus::Succeeded) {
        std::fprintf(stderr, "quantize failed: %s\n", job.errorMessage().c_str());
        return 1;
    }
    const auto& r = job.result();
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    size_t largest = 0;
    for (const auto& t : p.model->tensors())
        largest = std::max<size_t>(largest, t.bytes);
    std::printf("model: %.3f B parameters, %.2f GB F16 (largest tensor %.0f MB); threads %u\n",
                double(params) / 1e9, double(inputBytes) / 1e9, double(largest) / 1e6,
                qs::resolveThreads(threads));
    std::printf("Q4_K_M: %.2f GB written (tensor data %llu bytes, plan predicted %llu)\n",
                double(r.bytesWritten) / 1e9, static_cast<unsigned long long>(r.weightBytesWritten),
                static_cast<unsigned long long>(r.predictedWeightBytes));
    std::printf("wall %.1f s, user+sys CPU %.1f s; %.1f M weights/s, %.0f MB/s of F16 input\n", wall,
                double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                    double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6,
                double(params) / wall / 1e6, double(inputBytes) / wall / 1e6);
    std::printf("peak RSS %.0f MB\n", double(usage.ru_maxrss) / 1024.0);
    fs::remove(p.output);
    return 0;
}
