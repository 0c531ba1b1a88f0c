// quantscope-cli compare: an original and its quantized copy (any pair of models our loaders open), tensor by
// tensor: SQNR, RMSE, max |difference|, cosine, and with --histogram the difference's histogram.
#include "app/cli/command.h"
#include "core/quant/compare.h"
#include "core/util/error.h"
#include "core/util/namepattern.h"

#include <QCommandLineParser>
#include <QJsonArray>
#include <cmath>
#include <cstdio>
#include <optional>

namespace {

QJsonValue finite(double v)
{
    return std::isfinite(v) ? QJsonValue(v) : QJsonValue(); // JSON has no infinity: null (identical values)
}

int runCompare(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    if (pos.size() != 2)
        return cli::fail(QStringLiteral("compare needs a REFERENCE and a CANDIDATE model"));
    qs::CompareParams params;
    std::optional<qs::NamePattern> regex;
    if (parser.isSet(QStringLiteral("tensor"))) {
        const std::string pattern = parser.value(QStringLiteral("tensor")).toStdString();
        if (const std::string why = qs::NamePattern::check(pattern); !why.empty())
            return cli::fail(QStringLiteral("invalid --tensor regex: %1").arg(QString::fromStdString(why)));
        regex.emplace(pattern);
        params.filter = [&regex](const qs::TensorInfo& t) { return regex->search(t.name); };
    }
    int bins = 0;
    if (parser.isSet(QStringLiteral("histogram"))) {
        bool ok = false;
        bins = parser.value(QStringLiteral("histogram")).toInt(&ok);
        if (!ok || bins < 1 || bins > 4096)
            return cli::fail(QStringLiteral("--histogram needs a number of bins from 1 to 4096"));
    }
    params.reference = qs::openModel(pos[0].toStdString());
    params.candidatePath = pos[1].toStdString();
    qs::CompareJob job(std::move(params));
    if (const int code = cli::runJob(job, QStringLiteral("comparing")))
        return code;
    const qs::CompareResult& r = job.result();

    if (parser.isSet(QStringLiteral("json"))) {
        QJsonArray tensors;
        for (const auto& t : r.tensors) {
            QJsonObject o;
            o[QStringLiteral("tensor")] = QString::fromStdString(t.reference);
            o[QStringLiteral("candidate")] = QString::fromStdString(t.candidate);
            o[QStringLiteral("reference_type")] = QString::fromStdString(t.referenceType);
            o[QStringLiteral("candidate_type")] = QString::fromStdString(t.candidateType);
            if (!t.ok()) {
                o[QStringLiteral("error")] = QString::fromStdString(t.error);
                tensors.append(o);
                continue;
            }
            o[QStringLiteral("values")] = static_cast<qint64>(t.metrics.count);
            o[QStringLiteral("sqnr_db")] = finite(t.metrics.sqnrDb);
            o[QStringLiteral("rmse")] = std::sqrt(t.metrics.mse);
            o[QStringLiteral("max_abs_diff")] = t.metrics.maxAbsErr;
            o[QStringLiteral("cosine")] = t.metrics.cosine;
            if (bins > 0 && !t.difference.empty()) {
                const double lo = t.differenceBounds.min, hi = t.differenceBounds.max;
                const qs::BinnedHistogram h = t.difference.linear(size_t(bins), lo, hi, t.differenceBounds);
                QJsonArray edges, counts;
                for (double e : h.edges)
                    edges.append(e);
                for (uint64_t c : h.counts)
                    counts.append(static_cast<qint64>(c));
                o[QStringLiteral("difference_histogram")] =
                    QJsonObject{{QStringLiteral("edges"), edges}, {QStringLiteral("counts"), counts}};
            }
            tensors.append(o);
        }
        QJsonArray extra;
        for (const auto& n : r.onlyInCandidate)
            extra.append(QString::fromStdString(n));
        cli::printJson(QJsonObject{{QStringLiteral("reference"), pos[0]},
                                   {QStringLiteral("candidate"), pos[1]},
                                   {QStringLiteral("tensors"), tensors},
                                   {QStringLiteral("only_in_candidate"), extra}});
        return 0;
    }
    int width = 6;
    for (const auto& t : r.tensors)
        width = std::max(width, cli::displayWidth(cli::shown(t.reference)));
    std::printf("%s  %-8s %-8s %10s %12s %12s %9s\n", cli::padRight("tensor", width).c_str(), "ref", "cand",
                "SQNR dB", "RMSE", "max|diff|", "cosine");
    size_t failed = 0;
    for (const auto& t : r.tensors) {
        const std::string name = cli::padRight(cli::shown(t.reference), width);
        if (!t.ok()) {
            ++failed;
            std::printf("%s  %s\n", name.c_str(), t.error.c_str());
            continue;
        }
        std::printf("%s  %-8s %-8s %10s %12.5g %12.5g %9.6f\n", name.c_str(), t.referenceType.c_str(),
                    t.candidateType.c_str(),
                    std::isfinite(t.metrics.sqnrDb) ? QByteArray::number(t.metrics.sqnrDb, 'f', 2).constData()
                                                    : "identical",
                    std::sqrt(t.metrics.mse), t.metrics.maxAbsErr, t.metrics.cosine);
    }
    if (!r.onlyInCandidate.empty())
        std::printf("only in the candidate: %zu tensor(s)\n", r.onlyInCandidate.size());
    if (failed > 0)
        std::printf("not compared: %zu tensor(s)\n", failed);
    return 0;
}

const CliRegistrar compare(
    {"compare", "compare REFERENCE CANDIDATE [--tensor REGEX] [--histogram BINS] [--json]",
     "compare an original and its quantized copy tensor by tensor (SQNR, RMSE, max difference)",
     [](QCommandLineParser& p) {
         p.addOption({QStringLiteral("tensor"), QStringLiteral("Only tensors whose name matches this regex."),
                      QStringLiteral("REGEX")});
         p.addOption({QStringLiteral("histogram"),
                      QStringLiteral("JSON: add the difference's histogram with this many bins."),
                      QStringLiteral("BINS")});
         p.addOption({QStringLiteral("json"), QStringLiteral("Print JSON.")});
         p.addPositionalArgument(QStringLiteral("REFERENCE"), QStringLiteral("The original model."));
         p.addPositionalArgument(QStringLiteral("CANDIDATE"), QStringLiteral("Its quantized or converted copy."));
     },
     runCompare, true});

} // namespace
