#include "app/cli/plan_gpufit.h"

#include "app/cli/command.h"
#include "core/jobs/gpufitjob.h"
#include "core/plan/gpucatalog.h"
#include "core/plan/target.h"

#include <QCommandLineParser>
#include <QJsonArray>
#include <cstdio>

namespace cli {

namespace {

QJsonObject solutionJson(const qs::BudgetSolution& s)
{
    QJsonObject o;
    o[QStringLiteral("error")] = s.error;
    o[QStringLiteral("lower_bound")] = s.lowerBound;
    o[QStringLiteral("gap")] = s.gap;
    o[QStringLiteral("gap_relative")] = s.error > 0 ? s.gap / s.error : 0.0;
    o[QStringLiteral("optimal")] = s.optimal;
    return o;
}

} // namespace

void addPlanGpuFitOptions(QCommandLineParser& p)
{
    p.addOption({QStringLiteral("gpu"),
                 QStringLiteral("Fit the weights, the KV-cache type, the cache and the runtime overhead on this GPU."),
                 QStringLiteral("NAME")});
    p.addOption({QStringLiteral("ctx"), QStringLiteral("Context for --gpu (4096)."), QStringLiteral("N")});
    p.addOption({QStringLiteral("batch"), QStringLiteral("Batch for --gpu (1)."), QStringLiteral("N")});
    p.addOption({QStringLiteral("gpu-count"), QStringLiteral("GPUs for --gpu, tensor parallel (1)."),
                 QStringLiteral("N")});
    p.addOption({QStringLiteral("runtime"),
                 QStringLiteral("Runtime for --gpu: llama.cpp (default; vllm for vLLM-style targets), vllm, "
                                "transformers."),
                 QStringLiteral("R")});
    p.addOption({{QStringLiteral("kv-dtype"), QStringLiteral("kv-type")},
                 QStringLiteral("KV cache type for --gpu: auto (default: chosen with the weights among the "
                                "runtime's types: llama.cpp f16/q8_0/q4_0, vLLM bf16/fp8), or one type."),
                 QStringLiteral("T")});
    p.addOption({QStringLiteral("max-error"),
                 QStringLiteral("With --gpu: find the longest context whose best plan has at most this "
                                "predicted error (instead of the best plan at --ctx)."),
                 QStringLiteral("E")});
}

int fitPlanToGpu(const QCommandLineParser& parser, const qs::ModelLayout& layout, const qs::Plan& plan,
                 const qs::BudgetProblem& problem, QJsonObject& json, qs::BudgetSolution& solution,
                 uint64_t& budget)
{
    const qs::GpuCatalog catalog = qs::GpuCatalog::load();
    const auto* gpu = catalog.find(parser.value(QStringLiteral("gpu")).toStdString());
    if (!gpu)
        return fail(QStringLiteral("unknown or ambiguous GPU '%1'").arg(parser.value(QStringLiteral("gpu"))));
    qs::JointFitRequest request;
    qs::FootprintRequest& req = request.footprint;
    bool ok = true;
    req.context = parser.isSet(QStringLiteral("ctx")) ? parser.value(QStringLiteral("ctx")).toULongLong(&ok) : 4096;
    if (!ok || req.context == 0)
        return fail(QStringLiteral("--ctx needs a positive number"));
    const uint batch = parser.isSet(QStringLiteral("batch")) ? parser.value(QStringLiteral("batch")).toUInt(&ok) : 1;
    if (!ok || batch == 0)
        return fail(QStringLiteral("--batch needs a positive number"));
    req.batch = batch;
    const uint count =
        parser.isSet(QStringLiteral("gpu-count")) ? parser.value(QStringLiteral("gpu-count")).toUInt(&ok) : 1;
    if (!ok || count == 0 || count > 64)
        return fail(QStringLiteral("--gpu-count needs a number from 1 to 64"));
    req.gpuCount = count;
    req.gpuArchitecture = gpu->architecture;
    // The runtime that runs the target's output unless --runtime says otherwise.
    if (qs::targetFusesGroups(plan.target()))
        req.runtime.runtime = qs::Runtime::Vllm;
    if (parser.isSet(QStringLiteral("runtime"))) {
        auto rt = qs::runtimeFromName(parser.value(QStringLiteral("runtime")).toStdString());
        if (!rt)
            return fail(QStringLiteral("unknown runtime '%1' (llama.cpp, vllm, transformers)")
                            .arg(parser.value(QStringLiteral("runtime"))));
        req.runtime.runtime = *rt;
    }
    const QString kvName = parser.value(QStringLiteral("kv-dtype"));
    if (!kvName.isEmpty() && kvName.compare(QLatin1String("auto"), Qt::CaseInsensitive) != 0) {
        auto kv = qs::kvCacheTypeFromName(kvName.toStdString());
        if (!kv || !qs::runtimeSupportsKvType(req.runtime.runtime, *kv))
            return fail(QStringLiteral("KV dtype '%1' is unknown or not supported by %2")
                            .arg(kvName, QString::fromLatin1(qs::runtimeName(req.runtime.runtime))));
        request.kvTypes = {*kv};
    }
    if (parser.isSet(QStringLiteral("max-error"))) {
        const double e = parser.value(QStringLiteral("max-error")).toDouble(&ok);
        if (!ok || !(e >= 0))
            return fail(QStringLiteral("--max-error needs a number >= 0"));
        request.maxError = e;
    }

    qs::GpuFitJob job({problem, plan, layout, *gpu, request});
    if (const int code = runJob(job, QStringLiteral("fitting")))
        return code;
    const qs::JointFitResult fit = job.takeResult().fit;

    json[QStringLiteral("gpu")] = QString::fromStdString(gpu->id);
    json[QStringLiteral("gpu_count")] = static_cast<qint64>(req.gpuCount);
    json[QStringLiteral("runtime")] = QString::fromLatin1(qs::runtimeName(req.runtime.runtime));
    json[QStringLiteral("mode")] = request.maxError ? QStringLiteral("quality") : QStringLiteral("context");
    if (request.maxError)
        json[QStringLiteral("max_error")] = *request.maxError;
    json[QStringLiteral("reason")] = QString::fromStdString(fit.reason);
    QJsonArray alternatives;
    for (size_t i = 0; i < fit.alternatives.size(); ++i) {
        const auto& a = fit.alternatives[i];
        QJsonObject o;
        o[QStringLiteral("kv_type")] = QString::fromLatin1(qs::kvCacheTypeName(a.kvType));
        o[QStringLiteral("chosen")] = fit.chosen == i;
        o[QStringLiteral("fits")] = a.fits;
        o[QStringLiteral("context")] = static_cast<qint64>(a.context);
        o[QStringLiteral("max_context_any_plan")] = static_cast<qint64>(a.maxContextAnyPlan);
        if (a.fits) {
            o[QStringLiteral("weight_budget_bytes")] = static_cast<qint64>(a.weightBudgetBytes);
            o[QStringLiteral("weights_bytes")] = static_cast<qint64>(a.weightsBytes);
            o[QStringLiteral("total_bytes")] = static_cast<qint64>(a.totalBytes);
            o[QStringLiteral("max_context")] = static_cast<qint64>(a.maxContext);
            const QJsonObject s = solutionJson(a.solution);
            for (auto it = s.begin(); it != s.end(); ++it)
                o[it.key()] = it.value();
        }
        alternatives.append(o);
    }
    json[QStringLiteral("alternatives")] = alternatives;
    QJsonArray suggestions;
    for (const auto& s : fit.suggestions) {
        QJsonObject o;
        o[QStringLiteral("kind")] = QString::fromLatin1(qs::fitChangeKindName(s.kind));
        o[QStringLiteral("kv_type")] = QString::fromLatin1(qs::kvCacheTypeName(s.kvType));
        o[QStringLiteral("context")] = static_cast<qint64>(s.context);
        o[QStringLiteral("weights_bytes")] = static_cast<qint64>(s.weightsBytes);
        if (s.kind == qs::FitChangeKind::Format)
            o[QStringLiteral("format")] = QString::fromStdString(s.format);
        if (s.kind == qs::FitChangeKind::Gpus)
            o[QStringLiteral("gpus")] = static_cast<qint64>(s.gpus);
        o[QStringLiteral("text")] = QString::fromStdString(s.text);
        suggestions.append(o);
    }
    json[QStringLiteral("suggestions")] = suggestions;

    if (!fit.chosen) {
        solution = {};
        if (!parser.isSet(QStringLiteral("json"))) {
            std::fprintf(stderr, "error: nothing fits %s: %s\n", gpu->name.c_str(), fit.reason.c_str());
            for (const auto& s : fit.suggestions)
                std::fprintf(stderr, "  smallest change (%s): %s\n", qs::fitChangeKindName(s.kind), s.text.c_str());
        }
        return 0;
    }
    const auto& chosen = fit.alternatives[*fit.chosen];
    solution = chosen.solution;
    budget = chosen.weightBudgetBytes;
    json[QStringLiteral("kv_type")] = QString::fromLatin1(qs::kvCacheTypeName(chosen.kvType));
    json[QStringLiteral("context")] = static_cast<qint64>(chosen.context);
    json[QStringLiteral("total_bytes")] = static_cast<qint64>(chosen.totalBytes);
    json[QStringLiteral("max_context")] = static_cast<qint64>(chosen.maxContext);
    if (!parser.isSet(QStringLiteral("json"))) {
        std::printf("%s: KV %s at %llu tokens (%s)\n", gpu->name.c_str(), qs::kvCacheTypeName(chosen.kvType),
                    static_cast<unsigned long long>(chosen.context), fit.reason.c_str());
        for (const auto& a : fit.alternatives)
            if (!a.fits)
                std::printf("  KV %-5s does not fit\n", qs::kvCacheTypeName(a.kvType));
            else
                std::printf("  KV %-5s context %llu: error %.6g (gap %.3g%%), weights %.3f GiB, max context %llu\n",
                            qs::kvCacheTypeName(a.kvType), static_cast<unsigned long long>(a.context),
                            a.solution.error, a.solution.error > 0 ? 100.0 * a.solution.gap / a.solution.error : 0.0,
                            static_cast<double>(a.weightsBytes) / (1ull << 30),
                            static_cast<unsigned long long>(a.maxContext));
    }
    return 0;
}

} // namespace cli
