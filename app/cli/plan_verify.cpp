#include "app/cli/plan_verify.h"

#include "app/cli/command.h"
#include "core/infer/evaluate.h"
#include "core/model/model.h"
#include "core/plan/plan.h"

#include <QCommandLineParser>

namespace cli {

namespace {

const char* const kCounts[] = {"verify-ctx", "verify-chunks", "verify-first-chunk"};

std::optional<uint32_t> count(const QCommandLineParser& parser, const char* name, uint32_t minimum)
{
    bool ok = false;
    const uint v = parser.value(QLatin1String(name)).toUInt(&ok);
    if (!ok || v < minimum)
        return std::nullopt;
    return v;
}

} // namespace

void addPlanVerifyOptions(QCommandLineParser& p)
{
    p.addOption({QStringLiteral("verify"),
                 QStringLiteral("Measure the plan's KL divergence over --text with the evaluation job (as 'eval "
                                "--plan'), beside the predicted KL when --sensitivity holds ΔKL.")});
    p.addOption({QStringLiteral("text"), QStringLiteral("With --verify: the evaluation text (UTF-8)."),
                 QStringLiteral("FILE")});
    p.addOption({QStringLiteral("verify-ctx"),
                 QStringLiteral("With --verify: tokens per chunk (default 512, at most the model's maximum)."),
                 QStringLiteral("N")});
    p.addOption({QStringLiteral("verify-chunks"), QStringLiteral("With --verify: at most N chunks."),
                 QStringLiteral("N")});
    p.addOption({QStringLiteral("verify-first-chunk"),
                 QStringLiteral("With --verify: skip the first N chunks (e.g. those the ΔKL was measured on)."),
                 QStringLiteral("N")});
}

int checkPlanVerifyOptions(const QCommandLineParser& parser)
{
    const bool verify = parser.isSet(QStringLiteral("verify"));
    if (verify && !parser.isSet(QStringLiteral("text")))
        return fail(QStringLiteral("--verify needs --text FILE"));
    if (!verify && parser.isSet(QStringLiteral("text")))
        return fail(QStringLiteral("--text applies to --verify only"));
    for (const char* name : kCounts) {
        if (!parser.isSet(QLatin1String(name)))
            continue;
        if (!verify)
            return fail(QStringLiteral("--%1 applies to --verify only").arg(QLatin1String(name)));
        const uint32_t minimum = std::string_view(name) == "verify-ctx" ? 4 : std::string_view(name) == "verify-chunks" ? 1 : 0;
        if (!count(parser, name, minimum))
            return fail(QStringLiteral("--%1 needs a whole number, at least %2").arg(QLatin1String(name)).arg(minimum));
    }
    return 0;
}

int runPlanVerify(const QCommandLineParser& parser, const QString& modelPath, const qs::Plan& plan,
                  std::optional<double> predictedKl, QJsonObject* out)
{
    if (!parser.isSet(QStringLiteral("verify")))
        return 0;
    qs::EvalParams params;
    params.model = qs::openModel(modelPath.toStdString());
    params.plan = plan;
    if (parser.isSet(QStringLiteral("verify-ctx")))
        params.ctx = *count(parser, "verify-ctx", 4);
    if (parser.isSet(QStringLiteral("verify-chunks")))
        params.maxChunks = *count(parser, "verify-chunks", 1);
    const uint32_t first =
        parser.isSet(QStringLiteral("verify-first-chunk")) ? *count(parser, "verify-first-chunk", 0) : 0;
    const std::string textFile = parser.value(QStringLiteral("text")).toStdString();
    if (first == 0) {
        params.textFile = textFile;
    } else {
        // The same windows as `sensitivity --measure kl --first-chunk`: the text's chunks from `first` on.
        const qs::TokenWindows w = qs::tokenWindows(*params.model, params.ctx, 0, {}, textFile, {}, 1);
        if (uint64_t(first) + 2 > w.chunks)
            return fail(QStringLiteral("--verify-first-chunk %1 leaves fewer than two chunks of %2 tokens (the "
                                       "text has %3)")
                            .arg(first)
                            .arg(w.ctx)
                            .arg(w.chunks));
        params.tokens.assign(w.tokens.begin() + ptrdiff_t(size_t(first) * w.ctx), w.tokens.end());
        params.ctx = w.ctx;
    }
    qs::EvalJob job(std::move(params));
    if (const int code = runJob(job, QStringLiteral("verifying")))
        return code;
    const qs::EvalResult& r = job.result();
    QJsonObject v;
    v[QStringLiteral("text")] = parser.value(QStringLiteral("text"));
    v[QStringLiteral("ctx")] = qint64(r.ctx);
    v[QStringLiteral("first_chunk")] = qint64(first);
    v[QStringLiteral("chunks")] = qint64(r.chunks);
    v[QStringLiteral("scored")] = qint64(r.positions);
    if (predictedKl)
        v[QStringLiteral("predicted_kl")] = *predictedKl;
    v[QStringLiteral("measured_kl")] = r.kldMean;
    v[QStringLiteral("kld_median")] = r.kldMedian;
    v[QStringLiteral("kld_p99")] = r.kldP99;
    v[QStringLiteral("kld_exact")] = r.kldExact;
    v[QStringLiteral("same_top")] = r.sameTop;
    v[QStringLiteral("perplexity")] = r.perplexity;
    v[QStringLiteral("perplexity_quantized")] = r.perplexityQuantized;
    *out = v;
    return 0;
}

} // namespace cli
