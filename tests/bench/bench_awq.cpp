// What AWQ's calibration pass costs on a real-sized model: the Llama-3.2-1B-shaped F16 GGUF of
// llama1b_model.h, llama.cpp's Q4_K_M mix as the target formats, SEQUENCES calibration sequences of CTX
// random token ids (AWQ's cost does not depend on which tokens), through runAwq (core/infer/awqmodel.h):
// wall time, CPU time, peak RSS, and the groups it scaled.
// Usage: bench_awq [MODEL.gguf] [THREADS] [SEQUENCES] [CTX] [SAMPLE_WEIGHTS] [COARSE] [LAYERS]; the model is
// generated when missing. SAMPLE_WEIGHTS / COARSE set AwqOptions::sampleWeights / coarse (default: the
// defaults); LAYERS > 0 plans only the first LAYERS blocks (a partial run for quick measurements).
#include "llama1b_model.h"

#include "core/infer/awqmodel.h"
#include "core/model/model.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"
#include "core/util/job.h"
#include "core/util/threadpool.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sys/resource.h>

namespace fs = std::filesystem;

int main(int argc, char** argv)
{
    const fs::path model =
        argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "qs-bench-llama-1b-f16.gguf";
    const unsigned threads = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 0;
    const uint32_t sequences = argc > 3 ? static_cast<uint32_t>(std::atoi(argv[3])) : 4;
    const uint32_t ctx = argc > 4 ? static_cast<uint32_t>(std::atoi(argv[4])) : 256;
    if (!qsbench::ensureLlama1b(model))
        return 1;
    qs::AwqModelParams p;
    p.model = qs::openModel(model);
    p.plan = qs::makePreset("llama.cpp-Q4_K_M", qs::layoutFromModel(*p.model));
    p.ctx = ctx;
    p.maxChunks = sequences;
    p.options.threads = threads;
    if (argc > 5)
        p.options.sampleWeights = std::strtoull(argv[5], nullptr, 10);
    if (argc > 6)
        p.options.coarse = std::atoi(argv[6]);
    const uint32_t planLayers = argc > 7 ? static_cast<uint32_t>(std::atoi(argv[7])) : 0;
    if (planLayers > 0) {
        qs::Plan part;
        for (const auto& [name, format] : p.plan.assignments())
            if (name.rfind("blk.", 0) == 0 && std::stoul(name.substr(4)) < planLayers)
                part.assign(name, format);
        p.plan = part;
    }
    std::mt19937 rng(7);
    std::uniform_int_distribution<int32_t> id(0, int32_t(p.model->config().vocabSize) - 1);
    p.tokens.resize(size_t(sequences) * ctx);
    for (auto& t : p.tokens)
        t = id(rng);
    const uint64_t params = p.model->parameterCount();
    // Every stage (layer) with its wall and CPU time so far.
    const auto start = std::chrono::steady_clock::now();
    qs::JobControl control([&](double fraction, const std::string& stage) {
        static std::string last;
        if (stage == last)
            return;
        last = stage;
        rusage u{};
        getrusage(RUSAGE_SELF, &u);
        std::fprintf(stderr, "%3d%% %-16s wall %6.1f s  CPU %6.1f s\n", int(fraction * 100), stage.c_str(),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                     double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                         double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6);
    });
    rusage before{};
    getrusage(RUSAGE_SELF, &before);
    const auto t0 = std::chrono::steady_clock::now();
    const qs::AwqModelResult r = qs::runAwq(p, &control);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rusage after{};
    getrusage(RUSAGE_SELF, &after);
    auto seconds = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
    const double cpu = seconds(after.ru_utime) - seconds(before.ru_utime) + seconds(after.ru_stime) -
                       seconds(before.ru_stime);
    size_t scaled = 0;
    for (const auto& g : r.groups)
        scaled += g.scaled;
    std::printf("model: %.3f B parameters; %u sequences x %u tokens; threads %u; sampleWeights %llu, coarse %d\n",
                double(params) / 1e9, r.chunks, r.ctx, qs::resolveThreads(threads),
                static_cast<unsigned long long>(p.options.sampleWeights), p.options.coarse);
    std::printf("AWQ (Q4_K_M targets): %zu groups, %zu scaled, %zu tensors transformed\n", r.groups.size(), scaled,
                r.transformedTensors.size());
    std::printf("wall %.1f s, user+sys CPU %.1f s; %.2f s per layer\n", wall, cpu,
                wall / double(p.model->config().layers));
    std::printf("peak RSS %.0f MB\n", double(after.ru_maxrss) / 1024.0);
    return 0;
}
