// quantscope-cli estimate: GPU memory footprint of a model (or of a plan for it) on catalogue GPUs.
#include "app/cli/command.h"
#include "core/plan/gpucatalog.h"
#include "core/plan/memory.h"
#include "core/plan/modellayout.h"
#include "core/plan/planio.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QCommandLineParser>
#include <QJsonArray>
#include <cstdio>

namespace {

bool parseUInt(QCommandLineParser& parser, const QString& name, uint64_t& out, uint64_t min, uint64_t max)
{
    if (!parser.isSet(name))
        return true;
    bool ok = false;
    const qulonglong v = parser.value(name).toULongLong(&ok);
    if (!ok || v < min || v > max) {
        cli::fail(QStringLiteral("--%1 needs an integer in [%2, %3]").arg(name).arg(min).arg(max));
        return false;
    }
    out = v;
    return true;
}

QJsonObject fitJson(const qs::GpuSpec& gpu, const qs::GpuFit& fit)
{
    QJsonObject o;
    const auto& f = fit.footprint;
    o[QStringLiteral("gpu")] = QString::fromStdString(gpu.id);
    o[QStringLiteral("gpu_name")] = QString::fromStdString(gpu.name);
    o[QStringLiteral("weights_bytes")] = static_cast<qint64>(f.weightsBytes);
    o[QStringLiteral("host_weights_bytes")] = static_cast<qint64>(f.hostWeightsBytes);
    o[QStringLiteral("kv_cache_bytes")] = static_cast<qint64>(f.kvCacheBytes);
    o[QStringLiteral("activation_bytes")] = static_cast<qint64>(f.activationBytes);
    o[QStringLiteral("fixed_overhead_bytes")] = static_cast<qint64>(f.fixedOverheadBytes);
    o[QStringLiteral("overhead_bytes")] = static_cast<qint64>(f.overheadBytes());
    if (f.outsideBudgetBytes)
        o[QStringLiteral("outside_budget_bytes")] = static_cast<qint64>(f.outsideBudgetBytes);
    o[QStringLiteral("total_bytes")] = static_cast<qint64>(f.totalBytes());
    o[QStringLiteral("gpu_bytes")] = static_cast<qint64>(fit.gpuBytes);
    o[QStringLiteral("gpu_memory_bytes")] = static_cast<qint64>(gpu.memoryBytes);
    o[QStringLiteral("gpu_usable_bytes")] = static_cast<qint64>(gpu.usableBytes());
    o[QStringLiteral("gpu_memory_source")] = QString::fromStdString(gpu.memorySource);
    o[QStringLiteral("fits")] = fit.fits;
    o[QStringLiteral("headroom_bytes")] = static_cast<qint64>(fit.headroomBytes);
    o[QStringLiteral("max_context")] = static_cast<qint64>(fit.maxContext);
    o[QStringLiteral("max_context_by_memory")] = static_cast<qint64>(fit.maxContextByMemory);
    o[QStringLiteral("gpus_needed")] = static_cast<qint64>(fit.gpusNeeded);
    o[QStringLiteral("max_decode_tokens_per_s")] = fit.maxDecodeTokensPerSecond;
    o[QStringLiteral("bandwidth_gb_s")] = gpu.bandwidthGBps;
    QJsonArray terms;
    for (const auto& t : f.terms) {
        QJsonObject term;
        term[QStringLiteral("name")] = QString::fromStdString(t.name);
        term[QStringLiteral("bytes")] = static_cast<qint64>(t.bytes);
        term[QStringLiteral("detail")] = QString::fromStdString(t.detail);
        terms.append(term);
    }
    o[QStringLiteral("terms")] = terms;
    return o;
}

double gib(uint64_t b)
{
    return static_cast<double>(b) / (1ull << 30);
}

int runEstimate(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    QString path;
    if (parser.isSet(QStringLiteral("config")))
        path = parser.value(QStringLiteral("config"));
    if (!pos.isEmpty()) {
        if (!path.isEmpty() || pos.size() != 1)
            return cli::fail(QStringLiteral("estimate takes one PATH or --config FILE"));
        path = pos[0];
    }
    if (path.isEmpty())
        return cli::fail(QStringLiteral("estimate needs a model PATH or --config config.json"));
    const QStringList gpuNames = parser.values(QStringLiteral("gpu"));
    if (gpuNames.isEmpty())
        return cli::fail(QStringLiteral("estimate needs --gpu NAME (see 'quantscope-cli gpus')"));

    qs::FootprintRequest req;
    uint64_t batch = 1, gpuCount = 1, ubatch = req.runtime.ubatch, maxNumSeqs = 0;
    req.context = 4096;
    if (!parseUInt(parser, QStringLiteral("ctx"), req.context, 0, 1ull << 32) ||
        !parseUInt(parser, QStringLiteral("batch"), batch, 1, 1 << 20) ||
        !parseUInt(parser, QStringLiteral("gpu-count"), gpuCount, 1, 64) ||
        !parseUInt(parser, QStringLiteral("ubatch"), ubatch, 1, 1 << 20) ||
        !parseUInt(parser, QStringLiteral("max-num-batched-tokens"), req.runtime.maxNumBatchedTokens, 1,
                   1ull << 24) ||
        !parseUInt(parser, QStringLiteral("max-num-seqs"), maxNumSeqs, 1, 1 << 20))
        return 1;
    req.runtime.maxNumSeqs = static_cast<uint32_t>(maxNumSeqs);
    req.batch = static_cast<uint32_t>(batch);
    req.gpuCount = static_cast<uint32_t>(gpuCount);
    req.runtime.ubatch = static_cast<uint32_t>(ubatch);
    if (parser.isSet(QStringLiteral("runtime"))) {
        auto r = qs::runtimeFromName(parser.value(QStringLiteral("runtime")).toStdString());
        if (!r)
            return cli::fail(QStringLiteral("unknown runtime '%1' (llama.cpp, vllm, transformers)")
                                 .arg(parser.value(QStringLiteral("runtime"))));
        req.runtime.runtime = *r;
    }
    if (parser.isSet(QStringLiteral("kv-dtype"))) {
        auto t = qs::kvCacheTypeFromName(parser.value(QStringLiteral("kv-dtype")).toStdString());
        if (!t)
            return cli::fail(QStringLiteral("unknown KV dtype '%1' (f16, bf16, fp8, q8_0, q4_0)")
                                 .arg(parser.value(QStringLiteral("kv-dtype"))));
        req.kvType = *t;
    }
    if (!qs::runtimeSupportsKvType(req.runtime.runtime, req.kvType))
        return cli::fail(QStringLiteral("%1 cannot keep its KV cache in %2")
                             .arg(QString::fromLatin1(qs::runtimeName(req.runtime.runtime)),
                                  QString::fromLatin1(qs::kvCacheTypeName(req.kvType))));
    if (parser.isSet(QStringLiteral("gpu-memory-utilization"))) {
        bool ok = false;
        const double u = parser.value(QStringLiteral("gpu-memory-utilization")).toDouble(&ok);
        if (!ok || !(u > 0 && u <= 1))
            return cli::fail(QStringLiteral("--gpu-memory-utilization needs a number in (0, 1]"));
        req.runtime.gpuMemoryUtilization = u;
    }
    req.runtime.flashAttention = !parser.isSet(QStringLiteral("no-flash-attn"));
    req.runtime.swaFull = parser.isSet(QStringLiteral("swa-full"));
    if (parser.isSet(QStringLiteral("attn-impl"))) {
        auto a = qs::attnImplFromName(parser.value(QStringLiteral("attn-impl")).toStdString());
        if (!a)
            return cli::fail(QStringLiteral("unknown attention implementation '%1' (sdpa, eager)")
                                 .arg(parser.value(QStringLiteral("attn-impl"))));
        req.runtime.attnImpl = *a;
    }
    req.runtime.paddedBatch = !parser.isSet(QStringLiteral("no-padding"));
    if (parser.isSet(QStringLiteral("fixed-overhead"))) {
        uint64_t fixed = 0;
        if (!parseUInt(parser, QStringLiteral("fixed-overhead"), fixed, 0, 1ull << 40))
            return 1;
        req.runtime.fixedOverheadBytes = fixed;
    }

    const qs::GpuCatalog catalog = qs::GpuCatalog::load();
    std::vector<const qs::GpuSpec*> gpus;
    for (const auto& name : gpuNames) {
        const auto* g = catalog.find(name.toStdString());
        if (!g)
            return cli::fail(
                QStringLiteral("unknown or ambiguous GPU '%1' (see 'quantscope-cli gpus')").arg(name));
        gpus.push_back(g);
    }

    cli::ProgressPrinter progress(QStringLiteral("loading"));
    qs::JobControl job([&](double f, const std::string& stage) { progress.update(f, stage); });
    const qs::ModelLayout layout = qs::openLayout(path.toStdString(), &job);
    if (!parser.isSet(QStringLiteral("ctx")) && layout.config.contextLength > 0)
        req.context = std::min<uint64_t>(req.context, layout.config.contextLength);

    qs::TensorBytesFn bytesOf;
    if (parser.isSet(QStringLiteral("plan"))) {
        const qs::Plan plan = qs::loadPlan(parser.value(QStringLiteral("plan")).toStdString());
        std::string why;
        if (!qs::planMatchesModel(plan, layout, &why))
            return cli::fail(
                QStringLiteral("the plan does not fit this model: %1").arg(QString::fromStdString(why)));
        bytesOf = qs::planBytesFn(plan);
        // A plan for a vLLM-style target runs on vLLM unless --runtime says otherwise.
        if (!parser.isSet(QStringLiteral("runtime")) && qs::targetFusesGroups(plan.target())) {
            req.runtime.runtime = qs::Runtime::Vllm;
            if (!qs::runtimeSupportsKvType(req.runtime.runtime, req.kvType))
                return cli::fail(QStringLiteral("the plan is for %1, run by vLLM, which cannot keep its KV cache in %2")
                                     .arg(QString::fromLatin1(qs::exportTargetName(plan.target())),
                                          QString::fromLatin1(qs::kvCacheTypeName(req.kvType))));
        }
    }
    const qs::WeightSummary weights = qs::summarizeWeights(layout, bytesOf);

    std::vector<qs::GpuFit> fits;
    for (const auto* g : gpus)
        fits.push_back(qs::fitOnGpu(layout, weights, req, *g));

    if (parser.isSet(QStringLiteral("json"))) {
        QJsonObject root = fitJson(*gpus.front(), fits.front());
        root[QStringLiteral("model")] = path;
        root[QStringLiteral("derived_from_config")] = layout.derivedFromConfig;
        root[QStringLiteral("architecture")] = QString::fromStdString(layout.config.architecture);
        root[QStringLiteral("parameters")] = static_cast<qint64>(weights.parameters);
        root[QStringLiteral("model_weights_bytes")] = static_cast<qint64>(weights.bytes);
        root[QStringLiteral("weights_read_per_token_bytes")] = static_cast<qint64>(weights.readPerTokenBytes);
        root[QStringLiteral("context")] = static_cast<qint64>(req.context);
        root[QStringLiteral("batch")] = static_cast<qint64>(req.batch);
        root[QStringLiteral("gpu_count")] = static_cast<qint64>(req.gpuCount);
        root[QStringLiteral("kv_dtype")] = QString::fromLatin1(qs::kvCacheTypeName(req.kvType));
        root[QStringLiteral("runtime")] = QString::fromLatin1(qs::runtimeName(req.runtime.runtime));
        if (req.runtime.runtime == qs::Runtime::Transformers) {
            root[QStringLiteral("attn_impl")] = QString::fromLatin1(qs::attnImplName(req.runtime.attnImpl));
            root[QStringLiteral("padded_batch")] = req.runtime.paddedBatch && req.batch > 1;
        }
        root[QStringLiteral("kv_bytes_per_token")] = static_cast<qint64>(
            qs::hasAttentionConfig(layout.config) ? qs::kvCacheBytes(layout.config, 1, 1, req.kvType) : 0);
        if (parser.isSet(QStringLiteral("plan")))
            root[QStringLiteral("plan")] = parser.value(QStringLiteral("plan"));
        QJsonArray all;
        for (size_t i = 0; i < gpus.size(); ++i)
            all.append(fitJson(*gpus[i], fits[i]));
        root[QStringLiteral("per_gpu")] = all;
        cli::printJson(root);
        return 0;
    }

    std::printf("%s (%s%s), %llu parameters, weights %.2f GiB\n", qPrintable(path),
                layout.config.architecture.empty() ? "unknown architecture"
                                                   : layout.config.architecture.c_str(),
                layout.derivedFromConfig ? ", shapes derived from config.json" : "",
                static_cast<unsigned long long>(weights.parameters), gib(weights.bytes));
    std::printf("runtime %s, context %llu x batch %u, KV %s, %u GPU(s)\n\n",
                qs::runtimeName(req.runtime.runtime), static_cast<unsigned long long>(req.context), req.batch,
                qs::kvCacheTypeName(req.kvType), req.gpuCount);
    for (size_t i = 0; i < gpus.size(); ++i) {
        const auto& fit = fits[i];
        std::printf("%s\n", gpus[i]->name.c_str());
        for (const auto& t : fit.footprint.terms)
            std::printf("  %-22s %9.3f GiB  %s\n", t.name.c_str(), gib(t.bytes), t.detail.c_str());
        std::printf("  %-22s %9.3f GiB of %.3f GiB (%s) -> %s, headroom %+.3f GiB\n", "total",
                    gib(fit.footprint.totalBytes()), gib(fit.gpuBytes), gpus[i]->memorySource.c_str(),
                    fit.fits ? "FITS" : "DOES NOT FIT", static_cast<double>(fit.headroomBytes) / (1ull << 30));
        if (fit.footprint.hostWeightsBytes)
            std::printf("  %-22s %9.3f GiB  in host memory, not counted on the GPU\n", "host",
                        gib(fit.footprint.hostWeightsBytes));
        std::printf("  max context %llu, GPUs needed %u, decode <= %.1f tokens/s\n\n",
                    static_cast<unsigned long long>(fit.maxContext), fit.gpusNeeded,
                    fit.maxDecodeTokensPerSecond);
    }
    return 0;
}

const CliRegistrar estimate(
    {"estimate",
     "estimate (PATH | --config config.json) [--plan plan.json] --gpu NAME [--ctx N] [--batch N] [--kv-dtype "
     "T] "
     "[--runtime R] [--no-flash-attn] [--swa-full] [--attn-impl sdpa|eager] [--no-padding] [--json]",
     "GPU memory footprint, fit, maximum context and decode speed bound",
     [](QCommandLineParser& p) {
         p.addOption({QStringLiteral("config"), QStringLiteral("Plan from a Hugging Face config.json alone."),
                      QStringLiteral("FILE")});
         p.addOption({QStringLiteral("plan"), QStringLiteral("Size the weights as this plan stores them."),
                      QStringLiteral("FILE")});
         p.addOption({QStringLiteral("gpu"),
                      QStringLiteral("GPU id or name from the catalogue (repeatable)."),
                      QStringLiteral("NAME")});
         p.addOption({QStringLiteral("ctx"), QStringLiteral("Context length per sequence (default 4096)."),
                      QStringLiteral("N")});
         p.addOption({QStringLiteral("batch"), QStringLiteral("Concurrent sequences (default 1)."),
                      QStringLiteral("N")});
         p.addOption({QStringLiteral("kv-dtype"),
                      QStringLiteral("KV cache type: f16, bf16, fp8, q8_0, q4_0."), QStringLiteral("T")});
         p.addOption({QStringLiteral("runtime"), QStringLiteral("llama.cpp (default), vllm or transformers."),
                      QStringLiteral("R")});
         p.addOption({QStringLiteral("gpu-count"),
                      QStringLiteral("GPUs the model is split over (default 1)."), QStringLiteral("N")});
         p.addOption({QStringLiteral("gpu-memory-utilization"),
                      QStringLiteral("vLLM's share of GPU memory (0.9)."), QStringLiteral("U")});
         p.addOption({QStringLiteral("max-num-batched-tokens"),
                      QStringLiteral("vLLM profiling batch (vllm serve's default: 8192 on a GPU of 70 GiB or "
                                     "more except the A100, else 2048)."),
                      QStringLiteral("N")});
         p.addOption({QStringLiteral("max-num-seqs"),
                      QStringLiteral("vLLM sequences of the sampler warm-up (default 1024, or 256 where the "
                                     "batch default is 2048)."),
                      QStringLiteral("N")});
         p.addOption({QStringLiteral("ubatch"), QStringLiteral("llama.cpp physical batch (512)."),
                      QStringLiteral("N")});
         p.addOption({QStringLiteral("fixed-overhead"),
                      QStringLiteral("Measured fixed overhead per GPU in bytes (replaces the default)."),
                      QStringLiteral("BYTES")});
         p.addOption({QStringLiteral("no-flash-attn"), QStringLiteral("llama.cpp without flash attention.")});
         p.addOption({QStringLiteral("swa-full"),
                      QStringLiteral("llama.cpp: sliding-window layers hold every cell (--swa-full; the C API's "
                                     "default), not window + ubatch.")});
         p.addOption({QStringLiteral("attn-impl"),
                      QStringLiteral("transformers: attention implementation, sdpa (default) or eager."),
                      QStringLiteral("IMPL")});
         p.addOption({QStringLiteral("no-padding"),
                      QStringLiteral("transformers: the batch's prompts have equal length (no padding mask).")});
         p.addOption({QStringLiteral("json"), QStringLiteral("Print JSON.")});
         p.addPositionalArgument(QStringLiteral("PATH"),
                                 QStringLiteral("Model file or folder, or config.json."));
     },
     runEstimate, true});

} // namespace
